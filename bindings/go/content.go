package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_blob_put(const ocicas_engine *engine, const uint8_t *data, size_t len, char **out, char **message) {
    return ocicas_go_result(ocicas_blob_put(engine, data, len, out), message);
}

static ocicas_status go_blob_put_many(const ocicas_engine *engine, const ocicas_blob_input *blobs, size_t count, char **out, char **message) {
    return ocicas_go_result(ocicas_blob_put_many(engine, blobs, count, out), message);
}

static ocicas_status go_blob_put_json(const ocicas_engine *engine, const char *media_type, const char *json, ocicas_descriptor **out, char **message) {
    return ocicas_go_result(ocicas_blob_put_json(engine, media_type, json, out), message);
}

static ocicas_status go_blob_read(const ocicas_engine *engine, const char *digest, uint64_t limit, uint8_t **out_data, size_t *out_len, char **message) {
    return ocicas_go_result(ocicas_blob_read(engine, digest, limit, out_data, out_len), message);
}

static ocicas_status go_blob_size(const ocicas_engine *engine, const char *digest, uint64_t *out, char **message) {
    return ocicas_go_result(ocicas_blob_size(engine, digest, out), message);
}

static ocicas_status go_blob_delete(const ocicas_engine *engine, const char *digest, char **message) {
    return ocicas_go_result(ocicas_blob_delete(engine, digest), message);
}

static ocicas_status go_blob_list(const ocicas_engine *engine, uintptr_t handle, char **message) {
    return ocicas_go_result(ocicas_blob_list(engine, ocicas_go_visit_cb, (void *)handle), message);
}

static ocicas_status go_blob_info(const ocicas_engine *engine, const char *digest, ocicas_blob_info **out, char **message) {
    return ocicas_go_result(ocicas_blob_info_get(engine, digest, out), message);
}

static ocicas_status go_blob_update_labels(const ocicas_engine *engine, const char *digest, const char *labels_json,
                                           const char *const *field_paths, size_t n_field_paths, ocicas_blob_info **out, char **message) {
    return ocicas_go_result(ocicas_blob_update_labels(engine, digest, labels_json, field_paths, n_field_paths, out), message);
}

static ocicas_status go_blob_walk(const ocicas_engine *engine, const char *const *filters, size_t n_filters, uintptr_t handle, char **message) {
    return ocicas_go_result(ocicas_blob_walk(engine, filters, n_filters, ocicas_go_visit_blob_info_cb, (void *)handle), message);
}
*/
import "C"

import (
	"encoding/json"
	"math"
	"runtime"
	"runtime/cgo"
	"time"
	"unsafe"
)

// Info is what the store knows of one blob. CreatedAt is when it was first stored (storing it
// again does not move it); UpdatedAt is its last label change, never before CreatedAt.
type Info struct {
	Digest    string            `json:"digest"`
	Size      int64             `json:"size"`
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`
	Labels    map[string]string `json:"labels"`
}

// goInfo copies a blob info the library owns.
func goInfo(info *C.ocicas_blob_info) Info {
	return Info{
		Digest:    C.GoString(C.ocicas_blob_info_digest(info)),
		Size:      int64(C.ocicas_blob_info_size(info)),
		CreatedAt: goTime(C.ocicas_blob_info_created_at(info)),
		UpdatedAt: goTime(C.ocicas_blob_info_updated_at(info)),
		Labels:    goKeyValues(C.ocicas_blob_info_labels(info)),
	}
}

// takeInfo copies a blob info returned through an out argument and frees it.
func takeInfo(info *C.ocicas_blob_info) Info {
	defer C.ocicas_blob_info_free(info)
	return goInfo(info)
}

// PutBlob stores data as a sha256 blob and returns its digest; storing a blob that is already
// there is not an error.
func (e *Engine) PutBlob(data []byte) (string, error) {
	var out, message *C.char
	status := C.go_blob_put(e.use(), bytesPointer(data), C.size_t(len(data)), &out, &message)
	e.done()
	runtime.KeepAlive(data)
	if err := toError(status, message); err != nil {
		return "", err
	}
	return takeString(out), nil
}

// PutBlobs stores each of blobs as a sha256 blob, as durably as PutBlob, and returns their
// digests in order. It costs far fewer fsyncs than a PutBlob per blob: blobs are fsynced
// together and their directory once per group of 256. On an error no digest is returned; the
// groups stored before it stay stored. Every blob has the commit grace from the call's return,
// as one PutBlob has from its own: a GC does not take it before the caller tags or leases it
// next. A GC waits for the batch.
func (e *Engine) PutBlobs(blobs [][]byte) ([]string, error) {
	if len(blobs) == 0 {
		return nil, nil
	}
	// The inputs array lives in C memory and points at the Go slices, which are pinned for the
	// call so that the garbage collector neither moves nor frees them.
	inputs := unsafe.Slice((*C.ocicas_blob_input)(C.calloc(C.size_t(len(blobs)), C.sizeof_ocicas_blob_input)), len(blobs))
	defer C.free(unsafe.Pointer(&inputs[0]))
	digests := unsafe.Slice((**C.char)(C.calloc(C.size_t(len(blobs)), C.size_t(unsafe.Sizeof((*C.char)(nil))))), len(blobs))
	defer C.free(unsafe.Pointer(&digests[0]))
	var pinner runtime.Pinner
	defer pinner.Unpin()
	for i, blob := range blobs {
		if len(blob) > 0 {
			pinner.Pin(&blob[0])
		}
		inputs[i] = C.ocicas_blob_input{data: bytesPointer(blob), len: C.size_t(len(blob))}
	}
	var message *C.char
	status := C.go_blob_put_many(e.use(), &inputs[0], C.size_t(len(blobs)), &digests[0], &message)
	e.done()
	if err := toError(status, message); err != nil {
		return nil, err
	}
	out := make([]string, len(blobs))
	for i, digest := range digests {
		out[i] = takeString(digest)
	}
	return out, nil
}

// PutJSON stores document as canonical JSON (sorted keys, no insignificant whitespace), so
// equal documents get equal digests, and returns its descriptor. ErrInvalidArgument when
// document is not JSON.
func (e *Engine) PutJSON(mediaType string, document []byte) (Descriptor, error) {
	var args cArgs
	defer args.free()
	cmediaType := args.str("mediaType", mediaType)
	cdocument := args.str("document", string(document))
	if args.err != nil {
		return Descriptor{}, args.err
	}
	var out *C.ocicas_descriptor
	var message *C.char
	status := C.go_blob_put_json(e.use(), cmediaType, cdocument, &out, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return Descriptor{}, err
	}
	return takeDescriptor(out)
}

// NoLimit is the limit of ReadBlob that lets a blob of any size through.
const NoLimit int64 = math.MaxInt64

// ReadBlob reads the whole blob and checks that it hashes to its digest (ErrDigestMismatch
// otherwise). A blob larger than limit bytes is ErrTooLarge, before anything is read: as
// ocicas_blob_read's limit in C, 0 allows only the empty blob and NoLimit any size. A negative
// limit is ErrInvalidArgument.
func (e *Engine) ReadBlob(digest string, limit int64) ([]byte, error) {
	if limit < 0 {
		return nil, invalidArgument("negative limit %d (NoLimit is the limit for none)", limit)
	}
	var args cArgs
	defer args.free()
	cdigest := args.str("digest", digest)
	if args.err != nil {
		return nil, args.err
	}
	climit := C.uint64_t(limit)
	var data *C.uint8_t
	var length C.size_t
	var message *C.char
	status := C.go_blob_read(e.use(), cdigest, climit, &data, &length, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return nil, err
	}
	defer C.ocicas_bytes_free(data, length)
	return append([]byte{}, unsafe.Slice((*byte)(unsafe.Pointer(data)), int(length))...), nil
}

// BlobSize is the size of the stored blob; ErrNotFound when it is not stored.
func (e *Engine) BlobSize(digest string) (int64, error) {
	var args cArgs
	defer args.free()
	cdigest := args.str("digest", digest)
	if args.err != nil {
		return 0, args.err
	}
	var size C.uint64_t
	var message *C.char
	status := C.go_blob_size(e.use(), cdigest, &size, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return 0, err
	}
	return int64(size), nil
}

// DeleteBlob removes the blob; deleting a blob that is not stored is not an error.
func (e *Engine) DeleteBlob(digest string) error {
	var args cArgs
	defer args.free()
	cdigest := args.str("digest", digest)
	if args.err != nil {
		return args.err
	}
	var message *C.char
	status := C.go_blob_delete(e.use(), cdigest, &message)
	e.done()
	return toError(status, message)
}

// ListBlobs returns the digest of every stored blob, sorted.
func (e *Engine) ListBlobs() ([]string, error) {
	var digests []string
	callback := &visitCallback{visit: func(digest string) error {
		digests = append(digests, digest)
		return nil
	}}
	handle := cgo.NewHandle(callback)
	defer handle.Delete()
	var message *C.char
	status := C.go_blob_list(e.use(), C.uintptr_t(handle), &message)
	e.done()
	err := toError(status, message)
	callback.repanic()
	if err != nil {
		return nil, err
	}
	return digests, nil
}

// Info is what the store knows of the blob; ErrNotFound when it is not stored.
func (e *Engine) Info(digest string) (Info, error) {
	var args cArgs
	defer args.free()
	cdigest := args.str("digest", digest)
	if args.err != nil {
		return Info{}, args.err
	}
	var out *C.ocicas_blob_info
	var message *C.char
	status := C.go_blob_info(e.use(), cdigest, &out, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return Info{}, err
	}
	return takeInfo(out), nil
}

// UpdateLabels changes the blob's labels by containerd's rules and returns its new Info. With no
// field paths (or "labels") the labels become labels; "labels.<key>" sets that key from labels,
// or removes it when labels has no such key. ErrInvalidArgument for any other path.
func (e *Engine) UpdateLabels(digest string, labels map[string]string, fieldPaths ...string) (Info, error) {
	var args cArgs
	defer args.free()
	cdigest := args.str("digest", digest)
	var clabels *C.char // NULL: no labels
	if labels != nil {
		encoded, err := json.Marshal(labels)
		if err != nil {
			return Info{}, err
		}
		clabels = args.str("labels", string(encoded))
	}
	cpaths, npaths := args.array("fieldPaths", fieldPaths)
	if args.err != nil {
		return Info{}, args.err
	}
	var out *C.ocicas_blob_info
	var message *C.char
	status := C.go_blob_update_labels(e.use(), cdigest, clabels, cpaths, npaths, &out, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return Info{}, err
	}
	return takeInfo(out), nil
}

// WalkFunc is called by Walk for each blob; an error stops the walk and Walk returns it.
type WalkFunc func(Info) error

// Walk calls fn with the Info of every blob matching any of filters (containerd's syntax over
// digest, size and labels.<key>; no filter matches every blob), in digest order.
func (e *Engine) Walk(fn WalkFunc, filters ...string) error {
	var args cArgs
	defer args.free()
	cfilters, nfilters := args.array("filters", filters)
	if args.err != nil {
		return args.err
	}
	callback := &visitValueCallback{visit: func(info unsafe.Pointer) error {
		return fn(goInfo((*C.ocicas_blob_info)(info)))
	}}
	handle := cgo.NewHandle(callback)
	defer handle.Delete()
	var message *C.char
	status := C.go_blob_walk(e.use(), cfilters, nfilters, C.uintptr_t(handle), &message)
	e.done()
	err := toError(status, message)
	callback.repanic()
	if callback.err != nil {
		return callback.err
	}
	return err
}
