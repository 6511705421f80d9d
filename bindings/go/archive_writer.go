package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_archive_writer_new(uint32_t format, uintptr_t handle, ocicas_archive_writer **out,
                                           char **message) {
    return ocicas_go_result(ocicas_archive_writer_new(format, ocicas_go_write_cb, (void *)handle, out), message);
}

static ocicas_status go_archive_writer_has_blob(ocicas_archive_writer *writer, const char *digest, bool *out,
                                                char **message) {
    return ocicas_go_result(ocicas_archive_writer_has_blob(writer, digest, out), message);
}

static ocicas_status go_archive_writer_put_blob(ocicas_archive_writer *writer, uint32_t kind, const char *digest,
                                                uint64_t size, uintptr_t handle, char **message) {
    return ocicas_go_result(
        ocicas_archive_writer_put_blob(writer, kind, digest, size, ocicas_go_read_cb, (void *)handle), message);
}

static ocicas_status go_archive_writer_add_image(ocicas_archive_writer *writer, const char *config,
                                                 const char *const *diff_ids, size_t n_layers,
                                                 const char *const *repo_tags, size_t n_tags, char **message) {
    return ocicas_go_result(ocicas_archive_writer_add_image(writer, config, diff_ids, n_layers, repo_tags, n_tags),
                            message);
}

static ocicas_status go_archive_writer_commit(ocicas_archive_writer *writer, char **message) {
    return ocicas_go_result(ocicas_archive_writer_commit(writer), message);
}
*/
import "C"

import (
	"io"
	"runtime"
	"runtime/cgo"
)

// ArchiveBlobKind is what a blob is to an archive, which decides where it goes.
type ArchiveBlobKind uint32

const (
	// ArchiveConfig is an image config.
	ArchiveConfig ArchiveBlobKind = C.OCICAS_ARCHIVE_BLOB_CONFIG
	// ArchiveLayer is an uncompressed layer tar, named by its DiffID.
	ArchiveLayer ArchiveBlobKind = C.OCICAS_ARCHIVE_BLOB_LAYER
)

// ArchiveWriter writes a docker-archive to a sink (containers/image's tarfile Writer and
// Destination): blobs as they are put, each verified against its digest on the way, then
// manifest.json on Commit, so an archive abandoned before Commit is not loadable. After any
// failure the writer takes nothing more. Use it from one goroutine at a time.
type ArchiveWriter struct {
	handle[*C.ocicas_archive_writer]
	callback *writeCallback
	sink     cgo.Handle
	cleanup  runtime.Cleanup
}

// archiveWriterResources is what a dropped ArchiveWriter's cleanup frees.
type archiveWriterResources struct {
	writer *C.ocicas_archive_writer
	handle cgo.Handle
}

// NewArchiveWriter starts an archive in format (ArchiveLegacy or ArchiveOCI) written to sink.
func NewArchiveWriter(sink io.Writer, format ArchiveFormat) (*ArchiveWriter, error) {
	callback := &writeCallback{sink: sink}
	handle := cgo.NewHandle(callback)
	var writer *C.ocicas_archive_writer
	var message *C.char
	if err := toError(C.go_archive_writer_new(C.uint32_t(format), C.uintptr_t(handle), &writer, &message), message); err != nil {
		handle.Delete()
		return nil, err
	}
	w := &ArchiveWriter{handle: newSerialHandle("ArchiveWriter", writer), callback: callback, sink: handle}
	w.cleanup = runtime.AddCleanup(w, func(r archiveWriterResources) {
		C.ocicas_archive_writer_free(r.writer)
		r.handle.Delete()
	}, archiveWriterResources{writer, handle})
	return w, nil
}

// failure is err with the sink's own error, when writing to the sink is what failed.
func (w *ArchiveWriter) failure(err error) error {
	return withWriteError(err, w.callback, "the archive")
}

// HasBlob is whether the archive already holds the blob (TryReusingBlob): put it once only.
func (w *ArchiveWriter) HasBlob(digest string) (bool, error) {
	var args cArgs
	defer args.free()
	cdigest := args.str("digest", digest)
	if args.err != nil {
		return false, args.err
	}
	var has C.bool
	var message *C.char
	status := C.go_archive_writer_has_blob(w.use(), cdigest, &has, &message)
	w.done()
	return bool(has), toError(status, message)
}

// PutBlob writes a blob of size bytes read from source, checking that they are exactly size
// bytes hashing to digest (ErrSizeMismatch, ErrDigestMismatch). A blob already written is
// skipped without reading source.
func (w *ArchiveWriter) PutBlob(kind ArchiveBlobKind, digest string, size int64, source io.Reader) error {
	if size < 0 {
		return invalidArgument("negative blob size %d", size)
	}
	var args cArgs
	defer args.free()
	cdigest := args.str("digest", digest)
	if args.err != nil {
		return args.err
	}
	callback := &readCallback{source: source}
	handle := cgo.NewHandle(callback)
	defer handle.Delete()
	var message *C.char
	status := C.go_archive_writer_put_blob(w.use(), C.uint32_t(kind), cdigest, C.uint64_t(size), C.uintptr_t(handle), &message)
	w.done()
	return withReadError(w.failure(toError(status, message)), callback, "the blob")
}

// AddImage records an image whose config and layers (by DiffID) were put, under repoTags
// (each "name:tag").
func (w *ArchiveWriter) AddImage(config string, diffIDs, repoTags []string) error {
	var args cArgs
	defer args.free()
	cconfig := args.str("config", config)
	cdiffIDs, nlayers := args.array("diffIDs", diffIDs)
	ctags, ntags := args.array("repoTags", repoTags)
	if args.err != nil {
		return args.err
	}
	var message *C.char
	status := C.go_archive_writer_add_image(w.use(), cconfig, cdiffIDs, nlayers, ctags, ntags, &message)
	w.done()
	return w.failure(toError(status, message))
}

// Commit writes manifest.json (and the rest of the format) and ends the archive.
func (w *ArchiveWriter) Commit() error {
	var message *C.char
	status := C.go_archive_writer_commit(w.use(), &message)
	w.done()
	return w.failure(toError(status, message))
}

// Close frees the writer; one not committed is abandoned. Closing it again does nothing. The
// error is always nil.
func (w *ArchiveWriter) Close() error {
	writer, open := w.close()
	if !open {
		return nil
	}
	w.cleanup.Stop()
	C.ocicas_archive_writer_free(writer)
	w.sink.Delete()
	return nil
}
