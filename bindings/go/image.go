package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_image_resolve(const ocicas_engine *engine, const char *ref, const ocicas_platform *platform, ocicas_image **out, char **message) {
    return ocicas_go_result(ocicas_image_resolve(engine, ref, platform, out), message);
}
*/
import "C"

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
)

// Image is an image resolved for one platform (Engine.ResolveImage): what a runtime needs to
// unpack and start it.
type Image struct {
	// Manifest is the image manifest chosen, with its platform when an index named one.
	Manifest Descriptor
	// Config is the descriptor of the image config blob.
	Config Descriptor
	// Layers are the layer blobs, base first; Layers[i] unpacks to the tar DiffIDs[i].
	Layers []Descriptor
	// ImageConfig is the image config, parsed: its platform (OS, Architecture, Variant),
	// DiffIDs and runtime config (Env, Cmd, …), as Engine.ReadDocument gives it.
	ImageConfig
}

// Layer is layer i with its DiffID, as OpenLayer takes it.
func (img *Image) Layer(i int) LayerDescriptor {
	layer := img.Layers[i]
	return LayerDescriptor{MediaType: layer.MediaType, Digest: layer.Digest, Size: layer.Size, DiffID: img.DiffIDs[i]}
}

// ResolveImage resolves reference ref to the image for platform: an index (OCI image index or
// Docker manifest list, nested ones too) leads to its manifest whose platform has the same OS
// and architecture (and Variant, when platform names one). With platform nil: the index's
// only manifest, else the one for this host. An index's only entry without a platform is
// followed too. With a platform, the config of the manifest reached must be for it. Only
// platform's OS, Architecture and Variant are compared.
//
// ErrNotFound when the reference does not exist, a blob is not stored, no manifest is for the
// platform (the message lists the platforms there are) or the config reached is for another;
// ErrInvalidImage when the reference leads to something other than an index or manifest, a
// document does not parse as its media type, or the layers and DiffIDs do not pair up;
// ErrInvalidArgument for a ref name outside the OCI grammar or a platform without OS or
// Architecture.
func (e *Engine) ResolveImage(ref string, platform *Platform) (*Image, error) {
	var args cArgs
	defer args.free()
	cRef := args.str("ref", ref)
	var cPlatform *C.ocicas_platform
	if platform != nil {
		// "" is NULL, which the library refuses for OS and Architecture.
		cPlatform = &C.ocicas_platform{
			os:           args.optionalStr("platform.OS", platform.OS),
			architecture: args.optionalStr("platform.Architecture", platform.Architecture),
			variant:      args.optionalStr("platform.Variant", platform.Variant),
		}
	}
	if args.err != nil {
		return nil, args.err
	}
	var image *C.ocicas_image
	var message *C.char
	status := C.go_image_resolve(e.use(), cRef, cPlatform, &image, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return nil, err
	}
	defer C.ocicas_image_free(image)
	return goImage(image)
}

// goImage copies everything an ocicas_image holds into Go values.
func goImage(image *C.ocicas_image) (*Image, error) {
	count := int(C.ocicas_image_layer_count(image))
	img := &Image{
		Layers:      make([]Descriptor, count),
		ImageConfig: goConfig(C.ocicas_image_parsed_config(image)),
	}
	var err error
	if img.Manifest, err = goDescriptor(C.ocicas_image_manifest(image)); err != nil {
		return nil, err
	}
	if img.Config, err = goDescriptor(C.ocicas_image_config(image)); err != nil {
		return nil, err
	}
	for i := range count {
		if img.Layers[i], err = goDescriptor(C.ocicas_image_layer(image, C.size_t(i))); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// goDescriptor copies a descriptor the library owns. The library hands on what a document
// says; two things a Go Descriptor cannot hold are errors, with the descriptor copied as far as
// it can be: a size over the int64 range (ErrTooLarge; Size is then math.MaxInt64, never
// negative) and data that is not base64 (ErrInvalidImage; Data is then nil).
func goDescriptor(descriptor *C.ocicas_descriptor) (Descriptor, error) {
	var errs []error
	d := Descriptor{
		MediaType: C.GoString(C.ocicas_descriptor_media_type(descriptor)),
		Digest:    C.GoString(C.ocicas_descriptor_digest(descriptor)),
	}
	if size := uint64(C.ocicas_descriptor_size(descriptor)); size > math.MaxInt64 {
		d.Size = math.MaxInt64
		errs = append(errs, &Error{Code: CodeTooLarge,
			Message: fmt.Sprintf("descriptor %s: size %d is over the int64 range", d.Digest, size)})
	} else {
		d.Size = int64(size)
	}
	if annotations := goKeyValues(C.ocicas_descriptor_annotations(descriptor)); len(annotations) > 0 {
		d.Annotations = annotations
	}
	if urls := goStrings(C.ocicas_descriptor_urls(descriptor)); len(urls) > 0 {
		d.URLs = urls
	}
	if artifactType := C.ocicas_descriptor_artifact_type(descriptor); artifactType != nil {
		d.ArtifactType = C.GoString(artifactType)
	}
	if data := C.ocicas_descriptor_data(descriptor); data != nil {
		decoded, err := base64.StdEncoding.DecodeString(C.GoString(data))
		if err != nil {
			errs = append(errs, &Error{Code: CodeInvalidImage,
				Message: fmt.Sprintf("descriptor %s: data is not base64: %v", d.Digest, err)})
		} else {
			d.Data = decoded
		}
	}
	if os := C.ocicas_descriptor_platform_os(descriptor); os != nil {
		d.Platform = &Platform{
			OS:           C.GoString(os),
			Architecture: C.GoString(C.ocicas_descriptor_platform_architecture(descriptor)),
			Variant:      C.GoString(C.ocicas_descriptor_platform_variant(descriptor)),
			OSVersion:    C.GoString(C.ocicas_descriptor_platform_os_version(descriptor)),
		}
		if features := goStrings(C.ocicas_descriptor_platform_os_features(descriptor)); len(features) > 0 {
			d.Platform.OSFeatures = features
		}
	}
	return d, joinErrors(errs...)
}

// joinErrors is nil, the one error of errs that is not nil as it is (a caller's type
// assertion to *Error keeps working), or errors.Join of them.
func joinErrors(errs ...error) error {
	var found []error
	for _, err := range errs {
		if err != nil {
			found = append(found, err)
		}
	}
	if len(found) == 1 {
		return found[0]
	}
	return errors.Join(found...)
}

// takeDescriptor copies a descriptor returned through an out argument and frees it.
func takeDescriptor(descriptor *C.ocicas_descriptor) (Descriptor, error) {
	defer C.ocicas_descriptor_free(descriptor)
	return goDescriptor(descriptor)
}

func goStrings(list *C.ocicas_string_list) []string {
	items := make([]string, int(C.ocicas_string_list_count(list)))
	for i := range items {
		items[i] = C.GoString(C.ocicas_string_list_get(list, C.size_t(i)))
	}
	return items
}

func goKeyValues(list *C.ocicas_key_value_list) map[string]string {
	pairs := make(map[string]string)
	for i := range int(C.ocicas_key_value_list_count(list)) {
		pairs[C.GoString(C.ocicas_key_value_list_key(list, C.size_t(i)))] = C.GoString(C.ocicas_key_value_list_value(list, C.size_t(i)))
	}
	return pairs
}
