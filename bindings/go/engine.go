package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_engine_open(const char *path, uint32_t flags, ocicas_engine **out, char **message) {
    return ocicas_go_result(ocicas_engine_open(path, flags, out), message);
}

static ocicas_status go_fsck(const ocicas_engine *engine, char **out, char **message) {
    return ocicas_go_result(ocicas_fsck(engine, out), message);
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
type FsckReport struct {
	Sound        bool     `json:"sound"`
	Problems     []string `json:"problems"`
	BlobsChecked int64    `json:"blobsChecked"`
	Reachable    int64    `json:"reachable"`
}

// Fsck checks that every blob hashes to its name and that every descriptor reachable from
// index.json is stored with its size and parses as its media type.
func (e *Engine) Fsck() (FsckReport, error) {
	var report FsckReport
	var out, message *C.char
	status := C.go_fsck(e.use(), &out, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return report, err
	}
	return report, decodeJSON("fsck report", takeString(out), &report)
}
