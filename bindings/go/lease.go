package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_lease_new(const ocicas_engine *engine, const char *id, int64_t expiry_seconds, char **out, char **message) {
    return ocicas_go_result(ocicas_lease_new(engine, id, expiry_seconds, out), message);
}

static ocicas_status go_lease_add_blob(const ocicas_engine *engine, const char *id, const char *digest, char **message) {
    return ocicas_go_result(ocicas_lease_add_blob(engine, id, digest), message);
}

static ocicas_status go_lease_add_ingest(const ocicas_engine *engine, const char *id, const char *ref, char **message) {
    return ocicas_go_result(ocicas_lease_add_ingest(engine, id, ref), message);
}

static ocicas_status go_lease_release(const ocicas_engine *engine, const char *id, char **message) {
    return ocicas_go_result(ocicas_lease_release(engine, id), message);
}

static ocicas_status go_lease_list(const ocicas_engine *engine, uintptr_t handle, char **message) {
    return ocicas_go_result(ocicas_lease_list(engine, ocicas_go_visit_lease_cb, (void *)handle), message);
}
*/
import "C"

import (
	"runtime/cgo"
	"time"
	"unsafe"
)

// Lease keeps blobs and ingests from GC until it is released or expires.
type Lease struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
	// ExpiresAt is zero for a lease that never expires. Times past the year 2262 (what int64
	// nanoseconds since 1970 hold) read as that year's last nanosecond.
	ExpiresAt time.Time `json:"expiresAt"`
	Digests   []string  `json:"digests"`
	Ingests   []string  `json:"ingests"`
}

// NewLease creates a lease and returns its id: id, or a generated one when id is "".
// expiry <= 0 means never (a shorter one than a second is rounded up). ErrAlreadyExists when
// the id is taken, ErrInvalidArgument for an id outside 1–128 of [A-Za-z0-9._-].
func (e *Engine) NewLease(id string, expiry time.Duration) (string, error) {
	var args cArgs
	defer args.free()
	cid := args.optionalStr("id", id)
	if args.err != nil {
		return "", args.err
	}
	expirySeconds := int64(-1) // never
	if expiry > 0 {
		expirySeconds = wholeSeconds(expiry)
	}
	var out, message *C.char
	status := C.go_lease_new(e.use(), cid, C.int64_t(expirySeconds), &out, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return "", err
	}
	return takeString(out), nil
}

// AddLeaseBlob makes lease id keep the blob (adding it twice is fine). ErrNotFound for an
// unknown lease.
func (e *Engine) AddLeaseBlob(id, digest string) error {
	var args cArgs
	defer args.free()
	cid := args.str("id", id)
	cdigest := args.str("digest", digest)
	if args.err != nil {
		return args.err
	}
	var message *C.char
	status := C.go_lease_add_blob(e.use(), cid, cdigest, &message)
	e.done()
	return toError(status, message)
}

// AddLeaseIngest makes lease id keep the ingest of ref, however old it gets.
func (e *Engine) AddLeaseIngest(id, ref string) error {
	var args cArgs
	defer args.free()
	cid := args.str("id", id)
	cref := args.str("ref", ref)
	if args.err != nil {
		return args.err
	}
	var message *C.char
	status := C.go_lease_add_ingest(e.use(), cid, cref, &message)
	e.done()
	return toError(status, message)
}

// ReleaseLease removes lease id. ErrNotFound when there is none.
func (e *Engine) ReleaseLease(id string) error {
	var args cArgs
	defer args.free()
	cid := args.str("id", id)
	if args.err != nil {
		return args.err
	}
	var message *C.char
	status := C.go_lease_release(e.use(), cid, &message)
	e.done()
	return toError(status, message)
}

// ListLeases returns every lease, live or expired, sorted by id.
func (e *Engine) ListLeases() ([]Lease, error) {
	var leases []Lease
	callback := &visitValueCallback{visit: func(value unsafe.Pointer) error {
		leases = append(leases, goLease((*C.ocicas_lease)(value)))
		return nil
	}}
	handle := cgo.NewHandle(callback)
	defer handle.Delete()
	var message *C.char
	status := C.go_lease_list(e.use(), C.uintptr_t(handle), &message)
	e.done()
	err := toError(status, message)
	callback.repanic()
	if callback.err != nil {
		return nil, callback.err
	}
	if err != nil {
		return nil, err
	}
	return leases, nil
}

// goLease copies a lease the library lends to a callback.
func goLease(lease *C.ocicas_lease) Lease {
	copied := Lease{
		ID:        C.GoString(C.ocicas_lease_id(lease)),
		CreatedAt: goTime(C.ocicas_lease_created_at(lease)),
		Digests:   goStrings(C.ocicas_lease_digests(lease)),
		Ingests:   goStrings(C.ocicas_lease_ingests(lease)),
	}
	if C.ocicas_lease_expires(lease) {
		copied.ExpiresAt = goTime(C.ocicas_lease_expires_at(lease))
	}
	return copied
}
