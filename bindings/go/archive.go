package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_archive_import_file(const ocicas_engine *engine, const char *path, const char *tag,
                                            int64_t index, const char *ref_name, const ocicas_cancel *cancel,
                                            ocicas_imported_images **out, char **message) {
    return ocicas_go_result(ocicas_archive_import(engine, path, NULL, NULL, tag, index, ref_name, cancel, out), message);
}

static ocicas_status go_archive_import_reader(const ocicas_engine *engine, uintptr_t handle, const char *tag,
                                              int64_t index, const char *ref_name, const ocicas_cancel *cancel,
                                              ocicas_imported_images **out, char **message) {
    return ocicas_go_result(ocicas_archive_import(engine, NULL, ocicas_go_read_cb, (void *)handle, tag, index, ref_name, cancel, out), message);
}

static ocicas_status go_archive_export(const ocicas_engine *engine, const char *const *refs,
                                       const char *const *const *repo_tags, size_t n_refs, uint32_t format,
                                       uintptr_t handle, const ocicas_cancel *cancel, char **message) {
    return ocicas_go_result(ocicas_archive_export(engine, refs, repo_tags, n_refs, format, ocicas_go_write_cb, (void *)handle, cancel), message);
}
*/
import "C"

import (
	"context"
	"fmt"
	"io"
	"runtime/cgo"
	"unsafe"
)

// ImportOptions choose what ImportArchive imports; nil imports every image under its RepoTags.
type ImportOptions struct {
	// Tag imports only the first image with this RepoTag, both normalized as docker does
	// ("busybox" matches "docker.io/library/busybox:latest").
	Tag string
	// Index, when not nil (and Tag is ""), imports only the image at this position in the
	// archive's manifest.json.
	Index *int
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
	// RepoTags, when not nil, has the RepoTags ("name:tag") of each ref, in order. By default
	// (or when a ref's list is empty) an image's RepoTags is its reference name when that has
	// the form repo:tag.
	RepoTags [][]string
	// Format is ArchiveLegacy (the default) or ArchiveOCI.
	Format ArchiveFormat
}

// ImportArchiveFile imports the images of a docker-archive file (docker save output, legacy
// or docker 25+, plain, gzip or zstd). ErrInvalidImage for a malformed or unsafe archive,
// ErrDigestMismatch when a layer does not hash to its DiffID, ErrTooLarge past a size limit
// (LimitArchiveImportSize, LimitArchiveExpansion); on failure nothing is tagged.
//
// When ctx is done, the import stops at its next chunk read or stored, with an error that is
// both ctx's and ErrCancelled: nothing is tagged or stored (what it had staged is removed).
// Once every member checked out, it publishes and tags in one short step, whatever ctx does.
func (e *Engine) ImportArchiveFile(ctx context.Context, path string, opts *ImportOptions) ([]ImportedImage, error) {
	var images []ImportedImage
	err := withContext(ctx, func(cancel *C.ocicas_cancel) error {
		var args cArgs
		defer args.free()
		cpath := args.str("path", path)
		ctag, index, cref := importArgs(&args, opts)
		if args.err != nil {
			return args.err
		}
		var out *C.ocicas_imported_images
		var message *C.char
		status := C.go_archive_import_file(e.use(), cpath, ctag, index, cref, cancel, &out, &message)
		e.done()
		if err := toError(status, message); err != nil {
			return err
		}
		var err error
		images, err = takeImportedImages(out)
		return err
	})
	return images, err
}

// ImportArchive is ImportArchiveFile reading the archive once from source, which need not
// seek (a pipe, a network stream); it is never spooled to disk whole. ctx stops it as it stops
// ImportArchiveFile (a Read of source in flight ends first).
func (e *Engine) ImportArchive(ctx context.Context, source io.Reader, opts *ImportOptions) ([]ImportedImage, error) {
	var images []ImportedImage
	err := withContext(ctx, func(cancel *C.ocicas_cancel) error {
		var args cArgs
		defer args.free()
		ctag, index, cref := importArgs(&args, opts)
		if args.err != nil {
			return args.err
		}
		callback := &readCallback{source: source}
		handle := cgo.NewHandle(callback)
		defer handle.Delete()
		var out *C.ocicas_imported_images
		var message *C.char
		status := C.go_archive_import_reader(e.use(), C.uintptr_t(handle), ctag, index, cref, cancel, &out, &message)
		e.done()
		if err := withReadError(toError(status, message), callback, "the archive"); err != nil {
			return err
		}
		var err error
		images, err = takeImportedImages(out)
		return err
	})
	return images, err
}

func importArgs(args *cArgs, opts *ImportOptions) (tag *C.char, index C.int64_t, refName *C.char) {
	if opts == nil {
		return nil, -1, nil
	}
	return args.optionalStr("Tag", opts.Tag), indexArg(args, opts.Index), args.optionalStr("RefName", opts.RefName)
}

// indexArg is the ABI's image index: -1 for none.
func indexArg(args *cArgs, index *int) C.int64_t {
	switch {
	case index == nil:
		return -1
	case *index < 0:
		args.err = invalidArgument("negative image index %d", *index)
		return -1
	}
	return C.int64_t(*index)
}

// tagLists is the ABI's RepoTags: one NULL-terminated array of strings per image, NULL for none.
func tagLists(args *cArgs, lists [][]string) ***C.char {
	if lists == nil {
		return nil
	}
	pointerSize := C.size_t(unsafe.Sizeof((*C.char)(nil)))
	outer := (***C.char)(C.malloc(C.size_t(max(len(lists), 1)) * C.size_t(unsafe.Sizeof((**C.char)(nil)))))
	args.allocations = append(args.allocations, unsafe.Pointer(outer))
	for i, tags := range lists {
		inner := (**C.char)(C.malloc(C.size_t(len(tags)+1) * pointerSize))
		args.allocations = append(args.allocations, unsafe.Pointer(inner))
		items := unsafe.Slice(inner, len(tags)+1)
		for j, tag := range tags {
			items[j] = args.str("RepoTags", tag)
		}
		items[len(tags)] = nil
		unsafe.Slice(outer, len(lists))[i] = inner
	}
	return outer
}

// ExportArchive writes the images refs point at to sink as one docker-archive, which docker
// load and skopeo read. Layers shared by several images are written once. When ctx is done,
// the export stops at its next chunk read or written (a Write of sink in flight ends first),
// with an error that is both ctx's and ErrCancelled: sink then holds an archive cut short.
func (e *Engine) ExportArchive(ctx context.Context, sink io.Writer, refs []string, opts *ExportOptions) error {
	var options ExportOptions
	if opts != nil {
		options = *opts
	}
	if options.RepoTags != nil && len(options.RepoTags) != len(refs) {
		// The ABI reads one RepoTag per ref: a shorter list would be read past its end.
		return invalidArgument("%d RepoTags for %d refs", len(options.RepoTags), len(refs))
	}
	return withContext(ctx, func(cancel *C.ocicas_cancel) error {
		var args cArgs
		defer args.free()
		crefs, nrefs := args.array("refs", refs)
		ctags := tagLists(&args, options.RepoTags)
		if args.err != nil {
			return args.err
		}
		callback := &writeCallback{sink: sink}
		handle := cgo.NewHandle(callback)
		defer handle.Delete()
		var message *C.char
		status := C.go_archive_export(e.use(), crefs, ctags, nrefs, C.uint32_t(options.Format), C.uintptr_t(handle), cancel, &message)
		e.done()
		return withWriteError(toError(status, message), callback, "the archive")
	})
}

// withReadError is err with the source's own error, when reading it is what failed; a panic of
// the source is raised again here.
func withReadError(err error, callback *readCallback, what string) error {
	callback.repanic()
	if err != nil && callback.err != nil && callback.err != io.EOF {
		return fmt.Errorf("%w (reading %s failed: %w)", err, what, callback.err)
	}
	return err
}

// withWriteError is err with the sink's own error, when writing to it is what failed; a panic
// of the sink is raised again here.
func withWriteError(err error, callback *writeCallback, what string) error {
	callback.repanic()
	if err != nil && callback.err != nil {
		return fmt.Errorf("%w (writing %s failed: %w)", err, what, callback.err)
	}
	return err
}

// takeImportedImages copies the images an import returned through an out argument and frees
// them.
func takeImportedImages(list *C.ocicas_imported_images) ([]ImportedImage, error) {
	defer C.ocicas_imported_images_free(list)
	images := make([]ImportedImage, int(C.ocicas_imported_images_count(list)))
	for i := range images {
		image := C.ocicas_imported_images_get(list, C.size_t(i))
		manifest, err := goDescriptor(C.ocicas_imported_image_manifest(image))
		if err != nil {
			return nil, err
		}
		images[i] = ImportedImage{
			Manifest: manifest,
			Refs:     goStrings(C.ocicas_imported_image_refs(image)),
			RepoTags: goStrings(C.ocicas_imported_image_repo_tags(image)),
		}
	}
	return images, nil
}
