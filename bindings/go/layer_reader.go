package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_layer_reader_open(const ocicas_engine *engine, const char *media_type, const char *digest, uint64_t size, const char *diff_id, ocicas_layer_reader **out, char **message) {
    return ocicas_go_result(ocicas_layer_reader_open(engine, media_type, digest, size, diff_id, out), message);
}

static ocicas_status go_layer_reader_read(ocicas_layer_reader *reader, uint8_t *buf, size_t len, size_t *out, char **message) {
    return ocicas_go_result(ocicas_layer_reader_read(reader, buf, len, out), message);
}
*/
import "C"

import (
	"io"
	"runtime"
)

// layerReader reads a stored layer's uncompressed tar; see Engine.OpenLayer.
type layerReader struct {
	handle[*C.ocicas_layer_reader]
	cleanup runtime.Cleanup
}

// OpenLayer opens the stored layer (its media type, compressed digest and size, and the
// DiffID from its image config's rootfs.diff_ids) as its uncompressed tar, decompressed as
// the media type says: OCI's tar, tar+gzip and tar+zstd (distributable or not) and Docker's
// tar and tar.gzip (foreign or not) and tar.zstd. Anything else is ErrUnsupportedMediaType; a blob that is
// not stored ErrNotFound, one of another size ErrSizeMismatch, a blob path that is a symlink
// or a FIFO ErrInvalidImage.
//
// Read gives io.EOF only once the blob matched its digest and size and the tar its DiffID;
// the Read that reaches the end returns ErrDigestMismatch instead when one does not match, and
// ErrInvalidImage when the blob does not decompress or has bytes after its compressed stream.
// Act on what was read only after io.EOF. The reader is for one goroutine at a time (Reads
// from several take turns); it holds the layer's open file, not the engine, so it may outlive
// the Engine. Close it to release the file.
func (e *Engine) OpenLayer(layer LayerDescriptor) (io.ReadCloser, error) {
	if layer.Size < 0 {
		return nil, invalidArgument("negative layer size %d", layer.Size)
	}
	var args cArgs
	defer args.free()
	mediaType := args.str("layer.MediaType", layer.MediaType)
	digest := args.str("layer.Digest", layer.Digest)
	diffID := args.str("layer.DiffID", layer.DiffID)
	if args.err != nil {
		return nil, args.err
	}
	var reader *C.ocicas_layer_reader
	var message *C.char
	status := C.go_layer_reader_open(e.use(), mediaType, digest, C.uint64_t(layer.Size), diffID, &reader, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return nil, err
	}
	r := &layerReader{handle: newSerialHandle("layer reader", reader)}
	r.cleanup = runtime.AddCleanup(r, func(reader *C.ocicas_layer_reader) { C.ocicas_layer_reader_free(reader) }, reader)
	return r, nil
}

// Read reads uncompressed tar bytes; io.EOF at the verified end (see OpenLayer).
func (r *layerReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n C.size_t
	var message *C.char
	status := C.go_layer_reader_read(r.use(), bytesPointer(p), C.size_t(len(p)), &n, &message)
	r.done()
	if err := toError(status, message); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	return int(n), nil
}

// Close frees the reader once a Read in flight in another goroutine ended; closing it again
// does nothing. The error is always nil.
func (r *layerReader) Close() error {
	reader, open := r.close()
	if !open {
		return nil
	}
	r.cleanup.Stop()
	C.ocicas_layer_reader_free(reader)
	return nil
}
