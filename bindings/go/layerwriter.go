package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_layer_stream_new(const ocicas_engine *engine, const ocicas_layer_options *options,
                                         ocicas_layer_stream **out, char **message) {
    return ocicas_go_result(ocicas_layer_stream_new(engine, options, out), message);
}

static ocicas_status go_layer_stream_write(ocicas_layer_stream *stream, const uint8_t *data, size_t len, char **message) {
    return ocicas_go_result(ocicas_layer_stream_write(stream, data, len), message);
}

static ocicas_status go_layer_stream_finish(ocicas_layer_stream *stream, ocicas_descriptor **out, char **out_diff_id,
                                           char **message) {
    return ocicas_go_result(ocicas_layer_stream_finish(stream, out, out_diff_id), message);
}

// Makes the layer's descriptor, appends it and frees it.
static ocicas_status go_image_append(const ocicas_engine *engine, const char *ref, const char *media_type,
                                     const char *digest, uint64_t size, const char *diff_id, ocicas_descriptor **out,
                                     char **message) {
    ocicas_descriptor *layer = NULL;
    ocicas_status status = ocicas_descriptor_new(media_type, digest, size, &layer);
    if (status == OCICAS_OK) {
        status = ocicas_image_append(engine, ref, layer, diff_id, out);
        ocicas_descriptor_free(layer);
    }
    return ocicas_go_result(status, message);
}
*/
import "C"

import (
	"runtime"
)

// LayerWriter stores a layer as its uncompressed tar is written to it: the library hashes
// the tar (DiffID), compresses it and commits the compressed blob at Commit. Memory stays
// bounded whatever the layer's size. Calls from several goroutines take turns (the order of
// their writes is theirs to arrange); Close waits for the one in flight.
type LayerWriter struct {
	handle[*C.ocicas_layer_stream]
	cleanup runtime.Cleanup
}

// NewLayerWriter starts a layer to be stored. ErrInvalidArgument for bad options (a level
// out of range, Docker media types with zstd).
func (e *Engine) NewLayerWriter(opts ...LayerOption) (*LayerWriter, error) {
	var args cArgs
	defer args.free()
	options := newLayerOptions(opts).toC(&args)
	if args.err != nil {
		return nil, args.err
	}
	var stream *C.ocicas_layer_stream
	var message *C.char
	status := C.go_layer_stream_new(e.use(), &options, &stream, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return nil, err
	}
	w := &LayerWriter{handle: newSerialHandle("LayerWriter", stream)}
	w.cleanup = runtime.AddCleanup(w, func(stream *C.ocicas_layer_stream) { C.ocicas_layer_stream_free(stream) }, stream)
	return w, nil
}

// Write takes more of the uncompressed tar. ErrInvalidArgument after Commit.
func (w *LayerWriter) Write(p []byte) (int, error) {
	var message *C.char
	status := C.go_layer_stream_write(w.use(), bytesPointer(p), C.size_t(len(p)), &message)
	w.done()
	runtime.KeepAlive(p)
	if err := toError(status, message); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Commit ends the tar, stores the compressed blob (a blob already stored is fine) and returns
// the layer. ErrInvalidArgument when called again.
func (w *LayerWriter) Commit() (LayerDescriptor, error) {
	var out *C.ocicas_descriptor
	var diffID, message *C.char
	status := C.go_layer_stream_finish(w.use(), &out, &diffID, &message)
	w.done()
	if err := toError(status, message); err != nil {
		return LayerDescriptor{}, err
	}
	diff := takeString(diffID)
	layer, err := takeDescriptor(out)
	if err != nil {
		return LayerDescriptor{}, err
	}
	return LayerDescriptor{MediaType: layer.MediaType, Digest: layer.Digest, Size: layer.Size, DiffID: diff}, nil
}

// Close frees the writer, once a call in flight in another goroutine ended; before Commit it
// aborts the layer's ingest. Closing again does nothing. The error is always nil.
func (w *LayerWriter) Close() error {
	stream, open := w.close()
	if !open {
		return nil
	}
	w.cleanup.Stop()
	C.ocicas_layer_stream_free(stream)
	return nil
}

// AppendLayer appends a stored layer to image ref, or makes a one-layer image for this host
// when ref does not exist: a new config (DiffID and history added) and manifest, then ref
// moved atomically. It returns the new manifest's descriptor. ErrClobber when another writer
// moved ref meanwhile; ErrNotFound when the layer's blob is not stored; ErrInvalidArgument
// when ref is not an image manifest.
func (e *Engine) AppendLayer(ref string, layer LayerDescriptor) (Descriptor, error) {
	if layer.Size < 0 {
		return Descriptor{}, invalidArgument("layer size %d is negative", layer.Size)
	}
	var args cArgs
	defer args.free()
	cref := args.str("ref", ref)
	cmediaType := args.str("layer.MediaType", layer.MediaType)
	cdigest := args.str("layer.Digest", layer.Digest)
	cdiffID := args.str("layer.DiffID", layer.DiffID)
	if args.err != nil {
		return Descriptor{}, args.err
	}
	var out *C.ocicas_descriptor
	var message *C.char
	status := C.go_image_append(e.use(), cref, cmediaType, cdigest, C.uint64_t(layer.Size), cdiffID, &out, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return Descriptor{}, err
	}
	return takeDescriptor(out)
}
