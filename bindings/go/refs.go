package ocicas

/*
#include "ocicas_go.h"

// The JSON form carries every field of a Go Descriptor (annotations, platform, URLs).
static ocicas_status go_ref_put(const ocicas_engine *engine, const char *name, const char *descriptor_json, bool force, char **message) {
    return ocicas_go_result(ocicas_ref_put_json(engine, name, descriptor_json, force), message);
}

static ocicas_status go_ref_get(const ocicas_engine *engine, const char *name, ocicas_descriptor **out, char **message) {
    return ocicas_go_result(ocicas_ref_get(engine, name, out), message);
}

static ocicas_status go_ref_delete(const ocicas_engine *engine, const char *name, char **message) {
    return ocicas_go_result(ocicas_ref_delete(engine, name), message);
}

static ocicas_status go_ref_list(const ocicas_engine *engine, uintptr_t handle, char **message) {
    return ocicas_go_result(ocicas_ref_list(engine, ocicas_go_visit_ref_cb, (void *)handle), message);
}
*/
import "C"

import (
	"encoding/json"
	"runtime/cgo"
	"unsafe"
)

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Data         []byte            `json:"data,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
}

// Platform is the platform an image in an index runs on.
type Platform struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
}

// Ref is a named reference: an index.json entry whose org.opencontainers.image.ref.name
// annotation is Name.
type Ref struct {
	Name       string     `json:"name"`
	Descriptor Descriptor `json:"descriptor"`
}

// PutRef points reference name at descriptor, whose blob must be stored with that size
// (ErrNotFound, ErrSizeMismatch) and, for a document media type (an index, manifest or config,
// OCI or Docker), parse as that type (ErrInvalidImage); blobs of other media types are not
// read. Putting an equal descriptor again is not an error; a different one is ErrClobber
// unless force. ErrInvalidArgument for a name outside the OCI ref.name grammar.
func (e *Engine) PutRef(name string, descriptor Descriptor, force bool) error {
	encoded, err := json.Marshal(descriptor)
	if err != nil {
		return err
	}
	var args cArgs
	defer args.free()
	cname := args.str("name", name)
	cdescriptor := args.str("descriptor", string(encoded))
	if args.err != nil {
		return args.err
	}
	var message *C.char
	status := C.go_ref_put(e.use(), cname, cdescriptor, C.bool(force), &message)
	e.done()
	return toError(status, message)
}

// GetRef is the descriptor reference name points at; ErrNotFound when there is none.
func (e *Engine) GetRef(name string) (Descriptor, error) {
	var args cArgs
	defer args.free()
	cname := args.str("name", name)
	if args.err != nil {
		return Descriptor{}, args.err
	}
	var out *C.ocicas_descriptor
	var message *C.char
	status := C.go_ref_get(e.use(), cname, &out, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return Descriptor{}, err
	}
	return takeDescriptor(out)
}

// DeleteRef removes reference name; removing an absent reference is not an error.
func (e *Engine) DeleteRef(name string) error {
	var args cArgs
	defer args.free()
	cname := args.str("name", name)
	if args.err != nil {
		return args.err
	}
	var message *C.char
	status := C.go_ref_delete(e.use(), cname, &message)
	e.done()
	return toError(status, message)
}

// ListRefs returns every reference, in index.json order.
func (e *Engine) ListRefs() ([]Ref, error) {
	var refs []Ref
	callback := &visitRefCallback{visit: func(name string, descriptor unsafe.Pointer) error {
		ref := Ref{Name: name}
		var err error
		if ref.Descriptor, err = goDescriptor((*C.ocicas_descriptor)(descriptor)); err != nil {
			return err
		}
		refs = append(refs, ref)
		return nil
	}}
	handle := cgo.NewHandle(callback)
	defer handle.Delete()
	var message *C.char
	status := C.go_ref_list(e.use(), C.uintptr_t(handle), &message)
	e.done()
	err := toError(status, message)
	callback.repanic()
	if callback.err != nil {
		return nil, callback.err
	}
	if err != nil {
		return nil, err
	}
	return refs, nil
}
