package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_engine_open(const char *path, uint32_t flags, ocicas_engine **out, char **message) {
    return ocicas_go_result(ocicas_engine_open(path, flags, out), message);
}

static ocicas_status go_fsck(const ocicas_engine *engine, uint32_t flags, ocicas_fsck_report **out, char **message) {
    return ocicas_go_result(ocicas_fsck_ext(engine, flags, out), message);
}
*/
import "C"

import "runtime"

// Engine is an open OCI image layout. One Engine may be used by many goroutines at once;
// several Engines, in this or other processes, may open one layout at once.
type Engine struct {
	handle[*C.ocicas_engine]
	cleanup runtime.Cleanup
}

// OpenOptions says what Open does when no layout is at the path. nil means open an existing
// layout only.
type OpenOptions struct {
	// Create makes the layout when nothing, or an empty directory, is at the path.
	Create bool
	// Exclusive, with Create, fails with ErrAlreadyExists when anything is at the path.
	Exclusive bool
}

// Open opens the OCI image layout at path, checking oci-layout, index.json and blobs/.
// ErrInvalidImage when path holds no valid layout (the message names the file).
func Open(path string, opts *OpenOptions) (*Engine, error) {
	var flags C.uint32_t
	if opts != nil && opts.Create {
		flags |= C.OCICAS_OPEN_CREATE
	}
	if opts != nil && opts.Exclusive {
		flags |= C.OCICAS_OPEN_EXCLUSIVE
	}
	var args cArgs
	defer args.free()
	cpath := args.str("path", path)
	if args.err != nil {
		return nil, args.err
	}
	var engine *C.ocicas_engine
	var message *C.char
	if err := toError(C.go_engine_open(cpath, flags, &engine, &message), message); err != nil {
		return nil, err
	}
	e := &Engine{handle: newHandle("Engine", engine)}
	e.cleanup = runtime.AddCleanup(e, func(engine *C.ocicas_engine) { C.ocicas_engine_close(engine) }, engine)
	return e, nil
}

// Close closes the engine; closing it again does nothing. Calls in flight in other goroutines
// end first (Close waits for them); a call that starts after Close panics. A callback must not
// close the Engine whose call runs it. Writers, Readers and LayerWriters opened from it stay
// usable. The error is always nil: it is there so Engine is an io.Closer.
func (e *Engine) Close() error {
	engine, open := e.close()
	if !open {
		return nil
	}
	e.cleanup.Stop()
	C.ocicas_engine_close(engine)
	return nil
}

// FsckReport is what Fsck found. Problems are not an error: Sound is false and Problems says why.
// Each problem and note names the blob and the path of descriptors that leads to it.
type FsckReport struct {
	Sound        bool     `json:"sound"`
	Problems     []string `json:"problems"`
	BlobsChecked int64    `json:"blobsChecked"`
	Reachable    int64    `json:"reachable"`
	// Unreachable counts the stored blobs nothing in index.json reaches (GC removes them unless
	// a lease or label keeps them); UnreachableSample names the first ten in digest order.
	Unreachable       int64    `json:"unreachable"`
	UnreachableSample []string `json:"unreachableSample"`
	// Notes are worth knowing but not problems: how many blobs are unreachable, manifests an index lists
	// that are not stored, index entries that are not images.
	Notes []string `json:"notes"`
}

// FsckOptions says what FsckWith checks beyond Fsck.
type FsckOptions struct {
	// Deep decompresses every layer of every image and checks it against its DiffID.
	Deep bool
	// NoHash checks the structure only (the graph, each reachable blob's presence and size)
	// and reads no blob to hash it: much faster on a big store, but a blob whose bytes were
	// changed in place is not found. BlobsChecked is then 0.
	NoHash bool
}

// Fsck checks that every blob hashes to its name and that every descriptor reachable from
// index.json is stored with its size and parses as its media type, and that each image's
// manifest, config and layers fit together. It sees one committed state while other
// processes tag and collect.
func (e *Engine) Fsck() (FsckReport, error) {
	return e.FsckWith(FsckOptions{})
}

// FsckWith is Fsck with options.
func (e *Engine) FsckWith(opts FsckOptions) (FsckReport, error) {
	var flags C.uint32_t
	if opts.Deep {
		flags |= C.OCICAS_FSCK_DEEP
	}
	if opts.NoHash {
		flags |= C.OCICAS_FSCK_NO_HASH
	}
	var out *C.ocicas_fsck_report
	var message *C.char
	status := C.go_fsck(e.use(), flags, &out, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return FsckReport{}, err
	}
	defer C.ocicas_fsck_report_free(out)
	return FsckReport{
		Sound:             bool(C.ocicas_fsck_report_sound(out)),
		Problems:          goStrings(C.ocicas_fsck_report_problems(out)),
		BlobsChecked:      int64(C.ocicas_fsck_report_blobs_checked(out)),
		Reachable:         int64(C.ocicas_fsck_report_reachable(out)),
		Unreachable:       int64(C.ocicas_fsck_report_unreachable(out)),
		UnreachableSample: goStrings(C.ocicas_fsck_report_unreachable_sample(out)),
		Notes:             goStrings(C.ocicas_fsck_report_notes(out)),
	}, nil
}
