package ocicas

// This file exports the Go side of the library's callbacks. A file with //export may only
// declare in its preamble, so the trampolines that call these live in ocicas_go.h.

/*
#include <stddef.h>
#include <stdint.h>
*/
import "C"

import (
	"io"
	"math"
	"runtime/cgo"
	"unsafe"
)

// outcome is how a Go callback ended, kept for the Go code that made the C call: the error
// that made it stop the library, or a panic caught so that it does not unwind through the
// library's frames.
type outcome struct {
	err      error
	panicked any
}

// repanic raises again, on the calling goroutine, a panic caught inside the callback.
func (o *outcome) repanic() {
	if o.panicked != nil {
		panic(o.panicked)
	}
}

// readCallback feeds an io.Reader to an ocicas_read_cb.
type readCallback struct {
	outcome
	source io.Reader
}

// writeCallback feeds an ocicas_write_cb to an io.Writer.
type writeCallback struct {
	outcome
	sink io.Writer
}

// visitCallback receives each string of a list or walk.
type visitCallback struct {
	outcome
	visit func(text string) error
}

// visitValueCallback receives each typed value of a walk or list (a blob info, an ingest
// status, a lease), borrowed by the callback for the call only.
type visitValueCallback struct {
	outcome
	visit func(value unsafe.Pointer) error
}

// visitRefCallback receives each reference of ocicas_ref_list, its descriptor borrowed for
// the call only.
type visitRefCallback struct {
	outcome
	visit func(name string, descriptor unsafe.Pointer) error
}

// maxEmptyReads bounds how often a reader may return (0, nil) in a row, as bufio does.
const maxEmptyReads = 100

//export ocicasGoRead
func ocicasGoRead(buf *C.uint8_t, length C.size_t, handle C.uintptr_t) (n C.int64_t) {
	callback := cgo.Handle(handle).Value().(*readCallback)
	defer func() {
		if r := recover(); r != nil {
			callback.panicked = r
			n = -1
		}
	}()
	// An error that came with bytes is reported on the next call, the one after those bytes.
	if callback.err == io.EOF {
		return 0
	}
	if callback.err != nil {
		return -1
	}
	if length == 0 {
		return 0
	}
	dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(length))
	for range maxEmptyReads {
		got, err := callback.source.Read(dst)
		callback.err = err
		switch {
		case got > 0:
			return C.int64_t(got)
		case err == io.EOF:
			return 0
		case err != nil:
			return -1
		}
	}
	callback.err = io.ErrNoProgress
	return -1
}

//export ocicasGoWrite
func ocicasGoWrite(data *C.uint8_t, length C.size_t, handle C.uintptr_t) (failed C.int32_t) {
	callback := cgo.Handle(handle).Value().(*writeCallback)
	defer func() {
		if r := recover(); r != nil {
			callback.panicked = r
			failed = 1
		}
	}()
	if _, err := callback.sink.Write(unsafe.Slice((*byte)(unsafe.Pointer(data)), int(length))); err != nil {
		callback.err = err
		return 1
	}
	return 0
}

//export ocicasGoVisit
func ocicasGoVisit(text *C.char, handle C.uintptr_t) (stop C.int) {
	callback := cgo.Handle(handle).Value().(*visitCallback)
	defer func() {
		if r := recover(); r != nil {
			callback.panicked = r
			stop = 1
		}
	}()
	if err := callback.visit(C.GoString(text)); err != nil {
		callback.err = err
		return 1
	}
	return 0
}

//export ocicasGoVisitValue
func ocicasGoVisitValue(value unsafe.Pointer, handle C.uintptr_t) (stop C.int) {
	callback := cgo.Handle(handle).Value().(*visitValueCallback)
	defer func() {
		if r := recover(); r != nil {
			callback.panicked = r
			stop = 1
		}
	}()
	if err := callback.visit(value); err != nil {
		callback.err = err
		return 1
	}
	return 0
}

//export ocicasGoVisitRef
func ocicasGoVisitRef(name *C.char, descriptor unsafe.Pointer, handle C.uintptr_t) (stop C.int) {
	callback := cgo.Handle(handle).Value().(*visitRefCallback)
	defer func() {
		if r := recover(); r != nil {
			callback.panicked = r
			stop = 1
		}
	}()
	if err := callback.visit(C.GoString(name), descriptor); err != nil {
		callback.err = err
		return 1
	}
	return 0
}

// progressCallback receives the progress of a push or pull.
type progressCallback struct {
	outcome
	report func(Progress)
}

//export ocicasGoProgress
func ocicasGoProgress(digest *C.char, done, total C.uint64_t, handle C.uintptr_t) {
	callback := cgo.Handle(handle).Value().(*progressCallback)
	if callback.panicked != nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			callback.panicked = r
		}
	}()
	progress := Progress{Done: int64(done), Total: -1}
	if digest != nil {
		progress.Digest = C.GoString(digest)
	}
	if uint64(total) != math.MaxUint64 {
		progress.Total = int64(total)
	}
	callback.report(progress)
}
