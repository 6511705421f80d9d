package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_archive_reader_open_file(const ocicas_engine *engine, const char *path,
                                                 ocicas_archive_reader **out, char **message) {
    return ocicas_go_result(ocicas_archive_reader_open(engine, path, NULL, NULL, out), message);
}

static ocicas_status go_archive_reader_open_stream(const ocicas_engine *engine, uintptr_t handle,
                                                   ocicas_archive_reader **out, char **message) {
    return ocicas_go_result(ocicas_archive_reader_open(engine, NULL, ocicas_go_read_cb, (void *)handle, out), message);
}

static ocicas_status go_archive_reader_manifest(const ocicas_archive_reader *reader, const char *tag, int64_t index,
                                                uint32_t format, char **out, char **message) {
    return ocicas_go_result(ocicas_archive_reader_manifest(reader, tag, index, format, out), message);
}

static ocicas_status go_archive_reader_read_blob(const ocicas_archive_reader *reader, const char *tag, int64_t index,
                                                 const char *digest, uintptr_t handle, uint64_t *size,
                                                 char **message) {
    return ocicas_go_result(
        ocicas_archive_reader_read_blob(reader, tag, index, digest, ocicas_go_write_cb, (void *)handle, size), message);
}
*/
import "C"

import (
	"io"
	"runtime"
	"runtime/cgo"
)

// ArchiveItem is one image of a docker-archive's manifest.json (containers/image's
// ManifestItem).
type ArchiveItem struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// ArchiveChoice picks one image of an archive: by Tag (normalized as docker does, so
// "busybox" matches "docker.io/library/busybox:latest"), else by Index (its position in
// manifest.json) when not nil, else the archive's only image.
type ArchiveChoice struct {
	Tag   string
	Index *int
}

// ManifestFormat is the kind of manifest an ArchiveReader synthesizes for an image.
type ManifestFormat uint32

const (
	// ManifestDocker is a Docker schema2 manifest.
	ManifestDocker ManifestFormat = C.OCICAS_MANIFEST_DOCKER
	// ManifestOCI is an OCI image manifest.
	ManifestOCI ManifestFormat = C.OCICAS_MANIFEST_OCI
)

// ArchiveReader is an open docker-archive (containers/image's tarfile Reader and Source): its
// images, and any blob of one of them. A plain file is read in place; a compressed file or a
// stream is read once, its members staged in the engine's store (never published) until
// Close, under a lease that lasts an hour past the reader's last read of a staged member: a
// reader that read none for longer fails its next such read with ErrNotFound and must be
// opened again. Use it from one goroutine at a time;
// the Engine must stay open while it is.
type ArchiveReader struct {
	handle[*C.ocicas_archive_reader]
	engine  *Engine
	cleanup runtime.Cleanup
}

// OpenArchiveFile opens the docker-archive at path. ErrInvalidImage for a malformed or unsafe
// archive, ErrTooLarge past a limit.
func (e *Engine) OpenArchiveFile(path string) (*ArchiveReader, error) {
	var args cArgs
	defer args.free()
	cpath := args.str("path", path)
	if args.err != nil {
		return nil, args.err
	}
	var reader *C.ocicas_archive_reader
	var message *C.char
	status := C.go_archive_reader_open_file(e.use(), cpath, &reader, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return nil, err
	}
	return newArchiveReader(e, reader), nil
}

// OpenArchive reads a docker-archive once from source, which need not seek.
func (e *Engine) OpenArchive(source io.Reader) (*ArchiveReader, error) {
	callback := &readCallback{source: source}
	handle := cgo.NewHandle(callback)
	defer handle.Delete()
	var reader *C.ocicas_archive_reader
	var message *C.char
	status := C.go_archive_reader_open_stream(e.use(), C.uintptr_t(handle), &reader, &message)
	e.done()
	if err := withReadError(toError(status, message), callback, "the archive"); err != nil {
		return nil, err
	}
	return newArchiveReader(e, reader), nil
}

func newArchiveReader(engine *Engine, reader *C.ocicas_archive_reader) *ArchiveReader {
	r := &ArchiveReader{handle: newSerialHandle("ArchiveReader", reader), engine: engine}
	r.cleanup = runtime.AddCleanup(r, func(reader *C.ocicas_archive_reader) { C.ocicas_archive_reader_free(reader) }, reader)
	return r
}

// Items returns the images of the archive's manifest.json (or of a pre-1.10 archive's
// repositories).
func (r *ArchiveReader) Items() []ArchiveItem {
	reader := r.use()
	defer r.done()
	items := make([]ArchiveItem, int(C.ocicas_archive_reader_item_count(reader)))
	for i := range items {
		item := C.ocicas_archive_reader_item(reader, C.size_t(i))
		items[i] = ArchiveItem{
			Config:   C.GoString(C.ocicas_archive_item_config(item)),
			RepoTags: goStrings(C.ocicas_archive_item_repo_tags(item)),
			Layers:   goStrings(C.ocicas_archive_item_layers(item)),
		}
	}
	return items
}

// Manifest returns the chosen image's manifest, synthesized in format: its config, and its
// layers by DiffID, uncompressed. These are the manifest's exact bytes (its digest is their
// sha256). ErrNotFound when no image matches the choice.
func (r *ArchiveReader) Manifest(choice ArchiveChoice, format ManifestFormat) ([]byte, error) {
	var args cArgs
	defer args.free()
	ctag := args.optionalStr("Tag", choice.Tag)
	index := indexArg(&args, choice.Index)
	if args.err != nil {
		return nil, args.err
	}
	var out, message *C.char
	status := C.go_archive_reader_manifest(r.use(), ctag, index, C.uint32_t(format), &out, &message)
	r.done()
	if err := toError(status, message); err != nil {
		return nil, err
	}
	return []byte(takeString(out)), nil
}

// ReadBlob writes a blob of the chosen image to sink: its config by digest, or a layer by
// DiffID (uncompressed); it returns the blob's size. The bytes are verified as they pass:
// ErrDigestMismatch after the last of them when they do not hash to digest (discard them).
// ErrNotFound when the image has no such blob.
func (r *ArchiveReader) ReadBlob(choice ArchiveChoice, digest string, sink io.Writer) (int64, error) {
	var args cArgs
	defer args.free()
	ctag := args.optionalStr("Tag", choice.Tag)
	index := indexArg(&args, choice.Index)
	cdigest := args.str("digest", digest)
	if args.err != nil {
		return 0, args.err
	}
	callback := &writeCallback{sink: sink}
	handle := cgo.NewHandle(callback)
	defer handle.Delete()
	var size C.uint64_t
	var message *C.char
	status := C.go_archive_reader_read_blob(r.use(), ctag, index, cdigest, C.uintptr_t(handle), &size, &message)
	r.done()
	if err := withWriteError(toError(status, message), callback, "the blob"); err != nil {
		return 0, err
	}
	return int64(size), nil
}

// Close frees the reader and what it staged; closing it again does nothing. The error is
// always nil.
func (r *ArchiveReader) Close() error {
	reader, open := r.close()
	if !open {
		return nil
	}
	r.cleanup.Stop()
	C.ocicas_archive_reader_free(reader)
	runtime.KeepAlive(r.engine)
	return nil
}
