package ocicas

/*
#include "ocicas_go.h"

// One step of ocicas_image_walk, gathered for the one-pointer Go callback. message is the
// library's message for a step whose status is not OCICAS_OK, read during the callback (it
// is per thread).
struct ocicas_go_walk_step {
    const ocicas_descriptor *descriptor;
    uint64_t depth;
    const char *parent;
    ocicas_status status;
    const char *message;
};

static int ocicas_go_walk_cb(const ocicas_descriptor *descriptor, uint64_t depth, const char *parent,
                             ocicas_status status, void *user_data) {
    struct ocicas_go_walk_step step = {descriptor, depth, parent, status,
                                       status == OCICAS_OK ? NULL : ocicas_last_error_message()};
    return ocicasGoVisitValue(&step, (uintptr_t)user_data);
}

static ocicas_status go_image_walk(const ocicas_engine *engine, const char *ref, uintptr_t handle, char **message) {
    return ocicas_go_result(ocicas_image_walk(engine, ref, ocicas_go_walk_cb, (void *)handle), message);
}

// Reads the document media_type/digest/size points at, through a descriptor made for the call.
static ocicas_status go_document_read(const ocicas_engine *engine, const char *media_type, const char *digest,
                                      uint64_t size, ocicas_document **out, char **message) {
    ocicas_descriptor *descriptor = NULL;
    ocicas_status status = ocicas_go_result(ocicas_descriptor_new(media_type, digest, size, &descriptor), message);
    if (status != OCICAS_OK) return status;
    status = ocicas_go_result(ocicas_document_read(engine, descriptor, out), message);
    ocicas_descriptor_free(descriptor);
    return status;
}
*/
import "C"

import (
	"context"
	"fmt"
	"runtime/cgo"
	"unsafe"
)

// ImageConfig is an image config, parsed: its platform, its layers' DiffIDs and the runtime
// config a container of the image starts with. Fields the config does not set are empty. Its
// strings are the config's exactly: a config with a NUL in a string (which the C library
// cannot hand over) is ErrInvalidImage from ReadDocument and ResolveImage.
type ImageConfig struct {
	// OS, Architecture and Variant are the config's platform ("" when no variant).
	OS           string
	Architecture string
	Variant      string
	// DiffIDs are the digests of the layers' uncompressed tars, base first.
	DiffIDs      []string
	Env          []string
	Cmd          []string
	Entrypoint   []string
	WorkingDir   string
	User         string
	Labels       map[string]string
	ExposedPorts []string
	Volumes      []string
	StopSignal   string
}

// goConfig copies an ocicas_config the library owns.
func goConfig(config *C.ocicas_config) ImageConfig {
	return ImageConfig{
		OS:           C.GoString(C.ocicas_config_os(config)),
		Architecture: C.GoString(C.ocicas_config_architecture(config)),
		Variant:      C.GoString(C.ocicas_config_variant(config)),
		DiffIDs:      goStrings(C.ocicas_config_diff_ids(config)),
		Env:          goStrings(C.ocicas_config_env(config)),
		Cmd:          goStrings(C.ocicas_config_cmd(config)),
		Entrypoint:   goStrings(C.ocicas_config_entrypoint(config)),
		WorkingDir:   C.GoString(C.ocicas_config_working_dir(config)),
		User:         C.GoString(C.ocicas_config_user(config)),
		Labels:       goKeyValues(C.ocicas_config_labels(config)),
		ExposedPorts: goStrings(C.ocicas_config_exposed_ports(config)),
		Volumes:      goStrings(C.ocicas_config_volumes(config)),
		StopSignal:   C.GoString(C.ocicas_config_stop_signal(config)),
	}
}

// WalkStep is one blob reached by Engine.WalkImage.
type WalkStep struct {
	// Descriptor is the blob as its referrer describes it (annotations, and a platform for an
	// index entry).
	Descriptor Descriptor
	// Depth is 0 for the ref's own target, 1 for what it references, and so on.
	Depth int
	// Parent is the digest of the document that referenced the blob (or of the blob whose
	// ocicas.gc.ref.* label did); "" for the root.
	Parent string
	// Err is nil when the blob was read (a document) or found stored (a layer, which is not
	// read), else why the walk did not go into it: ErrNotFound (not stored), ErrSizeMismatch,
	// ErrDigestMismatch, ErrInvalidImage (not what its media type says), ErrTooLarge (over the
	// JSON limit or nested past the walk depth limit) or ErrIO. It is also ErrTooLarge for a
	// declared size over the int64 range (Descriptor.Size is then math.MaxInt64) and
	// ErrInvalidImage for a data field that is not base64 (Descriptor.Data is then nil); the
	// walk goes on past either.
	Err error
}

// WalkImage walks the graph of reference ref: its index or manifest, then what each document
// references (an index's manifests, a manifest's config and layers, a subject), calling fn
// once per blob. It is the walk GC makes (ocicas.gc.ref.* labels followed to their targets,
// which have no MediaType and Size 0; Parent is then the labelled blob), so it reaches what
// GC keeps for the ref:
// each blob once, at its shallowest depth, breadth-first except that a manifest's layers come
// right after it (its config comes in its turn, after the documents of the manifest's depth). A
// blob the walk cannot go into is a step with its Err and the walk goes on: fn decides
// whether that ends it. An error from fn stops the walk and is what WalkImage returns; once
// ctx is done, the walk stops before the next step with ctx's error and ErrCancelled.
//
// ErrNotFound when the reference does not exist; ErrInvalidArgument for a ref name outside the
// OCI grammar.
func (e *Engine) WalkImage(ctx context.Context, ref string, fn func(WalkStep) error) error {
	if err := doneError(ctx); err != nil {
		return err
	}
	var args cArgs
	defer args.free()
	cRef := args.str("ref", ref)
	if args.err != nil {
		return args.err
	}
	callback := &visitValueCallback{visit: func(value unsafe.Pointer) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ctx.Err(), &Error{Code: CodeCancelled, Message: "image walk cancelled"})
		}
		return fn(goWalkStep((*C.struct_ocicas_go_walk_step)(value)))
	}}
	handle := cgo.NewHandle(callback)
	defer handle.Delete()
	var message *C.char
	status := C.go_image_walk(e.use(), cRef, C.uintptr_t(handle), &message)
	e.done()
	err := toError(status, message)
	callback.repanic()
	if callback.err != nil {
		return callback.err
	}
	return err
}

// goWalkStep copies a step the library gave the callback. A descriptor Go cannot hold as it
// is (see goDescriptor) is the step's error, joined to the library's: one hostile descriptor
// does not end the walk.
func goWalkStep(step *C.struct_ocicas_go_walk_step) WalkStep {
	descriptor, descriptorErr := goDescriptor(step.descriptor)
	walkStep := WalkStep{Descriptor: descriptor, Depth: int(step.depth)}
	if step.parent != nil {
		walkStep.Parent = C.GoString(step.parent)
	}
	var stepErr error
	if step.status != C.OCICAS_OK {
		stepErr = &Error{Code: Code(step.status), Message: C.GoString(step.message)}
	}
	walkStep.Err = joinErrors(stepErr, descriptorErr)
	return walkStep
}

// DocumentKind is what a Document is.
type DocumentKind int

const (
	// DocumentIndex is an OCI image index or a Docker manifest list: Manifests.
	DocumentIndex DocumentKind = C.OCICAS_DOCUMENT_INDEX
	// DocumentManifest is an OCI or Docker image manifest: Config and Layers.
	DocumentManifest DocumentKind = C.OCICAS_DOCUMENT_MANIFEST
	// DocumentConfig is an OCI or Docker image config: ImageConfig.
	DocumentConfig DocumentKind = C.OCICAS_DOCUMENT_CONFIG
)

// Document is a blob read and parsed by its descriptor's media type (Engine.ReadDocument).
// Only the fields of its Kind are set.
type Document struct {
	Kind DocumentKind
	// Annotations are an index's or manifest's.
	Annotations map[string]string
	// Subject is an index's or manifest's subject, nil when it has none.
	Subject *Descriptor
	// Manifests are an index's entries, with their platforms.
	Manifests []Descriptor
	// Config is the descriptor of a manifest's config (as in Image).
	Config *Descriptor
	// Layers are a manifest's layers, base first.
	Layers []Descriptor
	// ImageConfig is an image config, parsed (as in Image).
	ImageConfig *ImageConfig
}

// ReadDocument reads the blob d points at (only its MediaType, Digest and Size are used) and
// parses it as its media type says: an index or Docker manifest list, an image manifest or an
// image config (umoci's casext FromDescriptor). The size is checked against the JSON limit
// before anything is read, then against the blob, whose digest is verified.
//
// ErrUnsupportedMediaType for any other media type (layers, artifacts, Docker schema 1);
// ErrNotFound when the blob is not stored; ErrTooLarge, ErrSizeMismatch, ErrDigestMismatch;
// ErrInvalidImage when it does not parse as its media type or holds a descriptor whose data
// is not base64; ErrTooLarge too for a descriptor in it whose size is over the int64 range;
// ErrInvalidArgument for a malformed digest, an empty media type or a negative size.
func (e *Engine) ReadDocument(d Descriptor) (*Document, error) {
	var args cArgs
	defer args.free()
	mediaType := args.str("descriptor media type", d.MediaType)
	digest := args.str("descriptor digest", d.Digest)
	if args.err != nil {
		return nil, args.err
	}
	if d.Size < 0 {
		return nil, invalidArgument("descriptor size %d is negative", d.Size)
	}
	var document *C.ocicas_document
	var message *C.char
	status := C.go_document_read(e.use(), mediaType, digest, C.uint64_t(d.Size), &document, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return nil, err
	}
	defer C.ocicas_document_free(document)
	return goDocument(document)
}

// goDocument copies everything an ocicas_document holds into Go values.
func goDocument(document *C.ocicas_document) (*Document, error) {
	doc := &Document{Kind: DocumentKind(C.ocicas_document_get_kind(document))}
	var err error
	optional := func(descriptor *C.ocicas_descriptor) *Descriptor {
		if descriptor == nil || err != nil {
			return nil
		}
		var d Descriptor
		d, err = goDescriptor(descriptor)
		return &d
	}
	list := func(count C.size_t, at func(C.size_t) *C.ocicas_descriptor) []Descriptor {
		descriptors := make([]Descriptor, 0, int(count))
		for i := C.size_t(0); i < count && err == nil; i++ {
			var d Descriptor
			d, err = goDescriptor(at(i))
			descriptors = append(descriptors, d)
		}
		return descriptors
	}
	switch doc.Kind {
	case DocumentIndex:
		doc.Manifests = list(C.ocicas_document_manifest_count(document), func(i C.size_t) *C.ocicas_descriptor {
			return C.ocicas_document_manifest(document, i)
		})
	case DocumentManifest:
		doc.Config = optional(C.ocicas_document_config_descriptor(document))
		doc.Layers = list(C.ocicas_document_layer_count(document), func(i C.size_t) *C.ocicas_descriptor {
			return C.ocicas_document_layer(document, i)
		})
	case DocumentConfig:
		config := goConfig(C.ocicas_document_config(document))
		doc.ImageConfig = &config
	}
	if doc.Kind != DocumentConfig {
		doc.Annotations = goKeyValues(C.ocicas_document_annotations(document))
		doc.Subject = optional(C.ocicas_document_subject(document))
	}
	if err != nil {
		return nil, err
	}
	return doc, nil
}
