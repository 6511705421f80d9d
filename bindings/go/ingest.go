package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_ingest_status(const ocicas_engine *engine, const char *ref, ocicas_ingest_status **out, char **message) {
    return ocicas_go_result(ocicas_ingest_status_get(engine, ref, out), message);
}

static ocicas_status go_ingest_list(const ocicas_engine *engine, const char *const *filters, size_t n_filters,
                                    uintptr_t handle, char **message) {
    return ocicas_go_result(ocicas_ingest_list(engine, filters, n_filters, ocicas_go_visit_ingest_status_cb, (void *)handle), message);
}

static ocicas_status go_ingest_abort(const ocicas_engine *engine, const char *ref, char **message) {
    return ocicas_go_result(ocicas_ingest_abort(engine, ref), message);
}
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// goStatus copies an ingest status the library owns.
func goStatus(status *C.ocicas_ingest_status) Status {
	ingest := Status{
		Ref:       C.GoString(C.ocicas_ingest_status_ref(status)),
		Offset:    int64(C.ocicas_ingest_status_offset(status)),
		StartedAt: goTime(C.ocicas_ingest_status_started_at(status)),
		UpdatedAt: goTime(C.ocicas_ingest_status_updated_at(status)),
	}
	// Go says 0 for an unknown total.
	if total := C.ocicas_ingest_status_total(status); total != C.OCICAS_SIZE_UNKNOWN {
		ingest.Total = int64(total)
	}
	if expected := C.ocicas_ingest_status_expected(status); expected != nil {
		ingest.Expected = C.GoString(expected)
	}
	return ingest
}

// takeStatus copies an ingest status returned through an out argument and frees it.
func takeStatus(status *C.ocicas_ingest_status) Status {
	defer C.ocicas_ingest_status_free(status)
	return goStatus(status)
}

// IngestStatus is the state of the ingest of ref, whether or not a Writer holds it.
// ErrNotFound when there is none.
func (e *Engine) IngestStatus(ref string) (Status, error) {
	var args cArgs
	defer args.free()
	cref := args.str("ref", ref)
	if args.err != nil {
		return Status{}, args.err
	}
	var out *C.ocicas_ingest_status
	var message *C.char
	status := C.go_ingest_status(e.use(), cref, &out, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return Status{}, err
	}
	return takeStatus(out), nil
}

// ListIngests returns the ingests in progress matching any of filters (containerd's syntax
// over ref, expected, total and offset; no filter matches all), sorted by ref.
func (e *Engine) ListIngests(filters ...string) ([]Status, error) {
	var args cArgs
	defer args.free()
	cfilters, nfilters := args.array("filters", filters)
	if args.err != nil {
		return nil, args.err
	}
	var ingests []Status
	callback := &visitValueCallback{visit: func(status unsafe.Pointer) error {
		ingests = append(ingests, goStatus((*C.ocicas_ingest_status)(status)))
		return nil
	}}
	handle := cgo.NewHandle(callback)
	defer handle.Delete()
	var message *C.char
	status := C.go_ingest_list(e.use(), cfilters, nfilters, C.uintptr_t(handle), &message)
	e.done()
	err := toError(status, message)
	callback.repanic()
	if callback.err != nil {
		return nil, callback.err
	}
	if err != nil {
		return nil, err
	}
	return ingests, nil
}

// AbortIngest removes the ingest of ref. ErrNotFound when there is none, ErrLocked while a
// live Writer holds it.
func (e *Engine) AbortIngest(ref string) error {
	var args cArgs
	defer args.free()
	cref := args.str("ref", ref)
	if args.err != nil {
		return args.err
	}
	var message *C.char
	status := C.go_ingest_abort(e.use(), cref, &message)
	e.done()
	return toError(status, message)
}
