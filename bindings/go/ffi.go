// Package ocicas is the Go binding of libocicas, an OCI content-addressable blob store: an OCI
// image layout on disk with containerd-style ingest writers, streaming layers, references,
// leases, GC and docker-archive import/export.
//
// It links through cgo against the installed library found by pkg-config:
//
//	PKG_CONFIG_PATH=$prefix/lib/pkgconfig LD_LIBRARY_PATH=$prefix/lib go test ./...
//
// where $prefix is what `cmake --install build --prefix $prefix` installed into.
//
// Every handle type (Engine, Writer, Reader, LayerWriter) has an idempotent Close; using a
// handle after Close panics. A handle forgotten without Close is freed by a cleanup once it
// is unreachable, but Close releases locks and files at a known time.
//
// # Cancellation
//
// Push, Pull, PushLayer, GC, ImportArchive(File), ExportArchive and NewLayer take a
// context.Context. A call given a ctx that is already done does not start; one whose ctx ends
// while it runs stops at the library's next check (between chunks, blobs, requests and GC
// phases). Either way the error is both ctx's (errors.Is(err, context.Canceled) or
// context.DeadlineExceeded) and ErrCancelled, and nothing partial is stored: a resumable
// ingest at most. A failure of another kind found before the stop was seen (a wrong digest, a
// ref that points elsewhere) is reported as it is, not as ErrCancelled.
//
// What a stop does not interrupt, because the library only looks at the flag between its own
// steps: a Read of a source or a Write of a sink the caller gave (an io.Reader or io.Writer)
// that blocks; the call returns after it does, so give a source that ends when ctx does (or
// close it) if it may block. A registry that stops sending or accepting a body: the read or
// send in flight ends when the registry moves again or at the engine's LimitRegistryTimeout,
// then the stop is seen; a document request in flight ends within the same deadline.
package ocicas

/*
#cgo pkg-config: ocicas
#include "ocicas_go.h"
*/
import "C"

import (
	"strings"
	"time"
	"unsafe"
)

// Version is the version of the loaded libocicas, e.g. "0.1.0".
func Version() string {
	return C.GoString(C.ocicas_version())
}

// toError turns a shim's status and copied message into an *Error, freeing the copy.
func toError(status C.ocicas_status, message *C.char) error {
	if status == C.OCICAS_OK {
		return nil
	}
	defer C.free(unsafe.Pointer(message))
	return &Error{Code: Code(status), Message: C.GoString(message)}
}

// takeString copies a string the library returned and frees it.
func takeString(text *C.char) string {
	defer C.ocicas_string_free(text)
	return C.GoString(text)
}

// goTime is a time the library gives in nanoseconds since the Unix epoch.
func goTime(nanos C.int64_t) time.Time {
	return time.Unix(0, int64(nanos)).UTC()
}

// bytesPointer is the address of p's first byte, or NULL for an empty p (the ABI takes NULL
// with length 0).
func bytesPointer(p []byte) *C.uint8_t {
	if len(p) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&p[0]))
}

// cArgs holds the C copies of one call's string arguments until free. Strings and string
// arrays are copied into C memory, so the library never sees Go memory it could keep. A string
// with a NUL inside would silently end early in C, so it is refused (err).
type cArgs struct {
	allocations []unsafe.Pointer
	err         error
}

func (a *cArgs) str(name, text string) *C.char {
	if strings.IndexByte(text, 0) >= 0 {
		a.err = invalidArgument("argument %s has a NUL byte: %q", name, text)
	}
	copied := C.CString(text)
	a.allocations = append(a.allocations, unsafe.Pointer(copied))
	return copied
}

// optionalStr is str, except that "" becomes NULL (the ABI's "none" for optional strings).
func (a *cArgs) optionalStr(name, text string) *C.char {
	if text == "" {
		return nil
	}
	return a.str(name, text)
}

// array is a C array of C strings with its length, NULL for none.
func (a *cArgs) array(name string, texts []string) (**C.char, C.size_t) {
	if len(texts) == 0 {
		return nil, 0
	}
	base := (**C.char)(C.malloc(C.size_t(len(texts)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	a.allocations = append(a.allocations, unsafe.Pointer(base))
	items := unsafe.Slice(base, len(texts))
	for i, text := range texts {
		items[i] = a.str(name, text)
	}
	return base, C.size_t(len(texts))
}

func (a *cArgs) free() {
	for _, allocation := range a.allocations {
		C.free(allocation)
	}
}
