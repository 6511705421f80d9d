package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_archive_import_file(const ocicas_engine *engine, const char *path, const char *tag,
                                            const char *ref_name, char **out, char **message) {
    return ocicas_go_result(ocicas_archive_import(engine, path, NULL, NULL, tag, ref_name, out), message);
}

static ocicas_status go_archive_import_reader(const ocicas_engine *engine, uintptr_t handle, const char *tag,
                                              const char *ref_name, char **out, char **message) {
    return ocicas_go_result(ocicas_archive_import(engine, NULL, ocicas_go_read_cb, (void *)handle, tag, ref_name, out), message);
}

static ocicas_status go_archive_export(const ocicas_engine *engine, const char *const *refs, const char *const *repo_tags,
                                       size_t n_refs, uint32_t format, uintptr_t handle, char **message) {
    return ocicas_go_result(ocicas_archive_export(engine, refs, repo_tags, n_refs, format, ocicas_go_write_cb, (void *)handle), message);
}
*/
import "C"

import (
	"fmt"
	"io"
	"runtime"
	"runtime/cgo"
)

// ImportOptions choose what ImportArchive imports; nil imports every image under its RepoTags.
type ImportOptions struct {
	// Tag imports only the image with this RepoTag ("": every image).
	Tag string
	// RefName names the reference of the single image imported ("": its RepoTags).
	RefName string
}

// ImportedImage is an image an import stored and tagged.
type ImportedImage struct {
	Manifest Descriptor `json:"manifest"`
	Refs     []string   `json:"refs"`
	RepoTags []string   `json:"repoTags"`
}

// ArchiveFormat is the layout of an exported docker-archive.
type ArchiveFormat uint32

const (
	// ArchiveLegacy has <id>/layer.tar directories, as docker save wrote before 25.
	ArchiveLegacy ArchiveFormat = C.OCICAS_ARCHIVE_LEGACY
	// ArchiveOCI is the docker 25+ form, an OCI layout inside.
	ArchiveOCI ArchiveFormat = C.OCICAS_ARCHIVE_OCI
)

// ExportOptions change what ExportArchive writes; nil means the defaults.
type ExportOptions struct {
	// RepoTags, when not nil, has one RepoTag per ref, in order. By default an image's
	// RepoTags is its reference name when that has the form repo:tag.
	RepoTags []string
	// Format is ArchiveLegacy (the default) or ArchiveOCI.
	Format ArchiveFormat
}

// ImportArchiveFile imports the images of a docker-archive file (docker save output, legacy
// or docker 25+, plain, gzip or zstd). ErrInvalidImage for a malformed or unsafe archive,
// ErrDigestMismatch when a layer does not hash to its DiffID, ErrTooLarge past a size limit;
// on failure nothing is tagged.
func (e *Engine) ImportArchiveFile(path string, opts *ImportOptions) ([]ImportedImage, error) {
	var args cArgs
	defer args.free()
	cpath := args.str("path", path)
	ctag, cref := importArgs(&args, opts)
	if args.err != nil {
		return nil, args.err
	}
	var out, message *C.char
	status := C.go_archive_import_file(e.ptr(), cpath, ctag, cref, &out, &message)
	runtime.KeepAlive(e)
	if err := toError(status, message); err != nil {
		return nil, err
	}
	var images []ImportedImage
	return images, decodeJSON("import result", takeString(out), &images)
}

// ImportArchive is ImportArchiveFile reading the archive once from source, which need not
// seek (a pipe, a network stream); it is never spooled to disk whole.
func (e *Engine) ImportArchive(source io.Reader, opts *ImportOptions) ([]ImportedImage, error) {
	var args cArgs
	defer args.free()
	ctag, cref := importArgs(&args, opts)
	if args.err != nil {
		return nil, args.err
	}
	callback := &readCallback{source: source}
	handle := cgo.NewHandle(callback)
	defer handle.Delete()
	var out, message *C.char
	status := C.go_archive_import_reader(e.ptr(), C.uintptr_t(handle), ctag, cref, &out, &message)
	runtime.KeepAlive(e)
	err := toError(status, message)
	callback.repanic()
	if err != nil {
		if callback.err != nil && callback.err != io.EOF {
			return nil, fmt.Errorf("%w (reading the archive failed: %w)", err, callback.err)
		}
		return nil, err
	}
	var images []ImportedImage
	return images, decodeJSON("import result", takeString(out), &images)
}

func importArgs(args *cArgs, opts *ImportOptions) (tag, refName *C.char) {
	if opts == nil {
		return nil, nil
	}
	return args.optionalStr("Tag", opts.Tag), args.optionalStr("RefName", opts.RefName)
}

// ExportArchive writes the images refs point at to sink as one docker-archive, which docker
// load and skopeo read. Layers shared by several images are written once.
func (e *Engine) ExportArchive(sink io.Writer, refs []string, opts *ExportOptions) error {
	var options ExportOptions
	if opts != nil {
		options = *opts
	}
	if options.RepoTags != nil && len(options.RepoTags) != len(refs) {
		// The ABI reads one RepoTag per ref: a shorter list would be read past its end.
		return invalidArgument("%d RepoTags for %d refs", len(options.RepoTags), len(refs))
	}
	var args cArgs
	defer args.free()
	crefs, nrefs := args.array("refs", refs)
	ctags, _ := args.array("RepoTags", options.RepoTags)
	if args.err != nil {
		return args.err
	}
	callback := &writeCallback{sink: sink}
	handle := cgo.NewHandle(callback)
	defer handle.Delete()
	var message *C.char
	status := C.go_archive_export(e.ptr(), crefs, ctags, nrefs, C.uint32_t(options.Format), C.uintptr_t(handle), &message)
	runtime.KeepAlive(e)
	err := toError(status, message)
	callback.repanic()
	if err != nil && callback.err != nil {
		return fmt.Errorf("%w (writing the archive failed: %w)", err, callback.err)
	}
	return err
}
