package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_layer_stream_from_reader(uintptr_t handle, const ocicas_layer_options *options,
                                                 ocicas_layer_stream **out, char **message) {
    return ocicas_go_result(ocicas_layer_stream_from_reader(ocicas_go_read_cb, (void *)handle, options, out), message);
}

static ocicas_status go_layer_stream_read(ocicas_layer_stream *stream, uint8_t *buf, size_t len, size_t *out, char **message) {
    return ocicas_go_result(ocicas_layer_stream_read(stream, buf, len, out), message);
}

static ocicas_status go_layer_stream_digest(const ocicas_layer_stream *stream, char **out, char **message) {
    return ocicas_go_result(ocicas_layer_stream_digest(stream, out), message);
}

static ocicas_status go_layer_stream_diff_id(const ocicas_layer_stream *stream, char **out, char **message) {
    return ocicas_go_result(ocicas_layer_stream_diff_id(stream, out), message);
}

static ocicas_status go_layer_stream_size(const ocicas_layer_stream *stream, uint64_t *out, char **message) {
    return ocicas_go_result(ocicas_layer_stream_size(stream, out), message);
}
*/
import "C"

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/cgo"
	"sync"
)

// Compression is how a layer's tar is compressed.
type Compression uint32

const (
	Gzip         Compression = C.OCICAS_COMPRESSION_GZIP
	Zstd         Compression = C.OCICAS_COMPRESSION_ZSTD
	Uncompressed Compression = C.OCICAS_COMPRESSION_NONE
)

// Layer media types.
const (
	MediaTypeOCILayer          = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeOCILayerGzip      = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeOCILayerZstd      = "application/vnd.oci.image.layer.v1.tar+zstd"
	MediaTypeDockerLayer       = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerUncompLayer = "application/vnd.docker.image.rootfs.diff.tar"
)

// LayerOption configures NewLayer and Engine.NewLayerWriter.
type LayerOption func(*layerOptions)

type layerOptions struct {
	compression Compression
	level       int
	docker      bool
	threads     int
	ref         string
	lease       string
}

func newLayerOptions(opts []LayerOption) layerOptions {
	options := layerOptions{compression: Gzip, level: C.OCICAS_LEVEL_DEFAULT}
	for _, opt := range opts {
		opt(&options)
	}
	return options
}

// WithCompression chooses gzip (the default), zstd or no compression.
func WithCompression(compression Compression) LayerOption {
	return func(o *layerOptions) { o.compression = compression }
}

// WithCompressionLevel sets the level: gzip 0–9 (default 6), zstd 1–19 (default 3). Named as
// go-containerregistry's stream.WithCompressionLevel.
func WithCompressionLevel(level int) LayerOption {
	return func(o *layerOptions) { o.level = level }
}

// WithDockerMediaTypes gives Docker layer media types instead of OCI ones (gzip or none only).
func WithDockerMediaTypes() LayerOption {
	return func(o *layerOptions) { o.docker = true }
}

// WithThreads sets how many threads compress; 0 (the default) means every core. The bytes
// are the same for any count. More than the Engine's LimitThreads (4 per core, at least 32,
// at most 256, unless set) is ErrInvalidArgument; a Layer, which has no Engine, is held to its default.
func WithThreads(threads int) LayerOption {
	return func(o *layerOptions) { o.threads = threads }
}

// WithRef names the ingest a LayerWriter writes under (default: a unique one).
func WithRef(ref string) LayerOption {
	return func(o *layerOptions) { o.ref = ref }
}

// WithLease makes a LayerWriter's blob join lease id before it becomes visible, so GC cannot
// take it before something references it.
func WithLease(id string) LayerOption {
	return func(o *layerOptions) { o.lease = id }
}

// toC fills the C options; the strings are copied into args.
func (o layerOptions) toC(args *cArgs) C.ocicas_layer_options {
	var c C.ocicas_layer_options
	// Fails only for a library older than this header; the call taking c then says so.
	C.ocicas_layer_options_init(&c, C.OCICAS_LAYER_OPTIONS_VERSION)
	c.compression = C.uint32_t(o.compression)
	c.level = C.int32_t(o.level)
	c.docker_media_types = C.bool(o.docker)
	if o.threads < 0 {
		args.err = invalidArgument("WithThreads(%d): a thread count is 0 (every core) or more", o.threads)
	}
	// Past the C field's range is past any thread limit: the library refuses it, naming the limit.
	c.threads = C.uint32_t(min(max(o.threads, 0), math.MaxUint32))
	c.ref_name = args.optionalStr("ref", o.ref)
	c.lease = args.optionalStr("lease", o.lease)
	return c
}

// mediaType is the media type the library gives a layer with these options. The C ABI reports
// it only with a finished push-mode layer, and MediaType must answer before any byte is read.
func (o layerOptions) mediaType() (string, error) {
	switch {
	case o.docker && o.compression == Gzip:
		return MediaTypeDockerLayer, nil
	case o.docker && o.compression == Uncompressed:
		return MediaTypeDockerUncompLayer, nil
	case o.docker:
		return "", invalidArgument("Docker media types exist only for gzip and uncompressed layers")
	case o.compression == Gzip:
		return MediaTypeOCILayerGzip, nil
	case o.compression == Zstd:
		return MediaTypeOCILayerZstd, nil
	case o.compression == Uncompressed:
		return MediaTypeOCILayer, nil
	default:
		return "", invalidArgument("unknown compression %d", o.compression)
	}
}

// LayerDescriptor is a finished layer: its compressed blob's media type, digest and size, and
// the DiffID (sha256 of the uncompressed tar).
type LayerDescriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	DiffID    string `json:"diffID"`
}

// Descriptor is the layer's OCI descriptor, as a manifest lists it.
func (l LayerDescriptor) Descriptor() Descriptor {
	return Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}
}

// Layer is a streaming layer with the behaviour of go-containerregistry's stream.Layer: the
// uncompressed tar is read once, through Compressed; Digest, DiffID and Size are
// ErrNotComputed until the compressed bytes were read to their end, and a second Compressed
// is ErrConsumed. Nothing is stored: use Engine.NewLayerWriter to store a layer. A Layer may
// be used from several goroutines; its compressed reader from one at a time.
type Layer struct {
	ctx     context.Context
	source  io.Reader
	options layerOptions

	mu       sync.Mutex
	consumed bool
	finished *LayerDescriptor
}

// NewLayer makes a streaming layer of the uncompressed tar that source gives. When source is
// also an io.Closer, closing the compressed reader closes it, as stream.NewLayer does with
// its io.ReadCloser. Bad options are reported by Compressed. When ctx is done, a Read of the
// compressed bytes in flight stops at its next chunk of input (a Read of source that blocks
// is not interrupted: the stop comes after it returns), and every later Read fails,
// with an error that is both ctx's and ErrCancelled; the layer then computes nothing.
func NewLayer(ctx context.Context, source io.Reader, opts ...LayerOption) *Layer {
	return &Layer{ctx: ctx, source: source, options: newLayerOptions(opts)}
}

// Compressed starts the stream and returns its compressed bytes; ErrConsumed when called a
// second time. Read it to io.EOF, then close it, before asking for Digest, DiffID or Size;
// closing it early leaves them ErrNotComputed.
func (l *Layer) Compressed() (io.ReadCloser, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.consumed {
		return nil, ErrConsumed
	}
	l.consumed = true
	if err := doneError(l.ctx); err != nil {
		return nil, err
	}
	var args cArgs
	defer args.free()
	options := l.options.toC(&args)
	if args.err != nil {
		return nil, args.err
	}
	cancel, err := watchContext(l.ctx)
	if err != nil {
		return nil, err
	}
	options.cancel = cancel.flag
	callback := &readCallback{source: l.source}
	handle := cgo.NewHandle(callback)
	var stream *C.ocicas_layer_stream
	var message *C.char
	if err := toError(C.go_layer_stream_from_reader(C.uintptr_t(handle), &options, &stream, &message), message); err != nil {
		handle.Delete()
		cancel.release()
		return nil, err
	}
	reader := &compressedReader{layer: l, stream: stream, callback: callback, handle: handle, cancel: cancel}
	reader.cleanup = runtime.AddCleanup(reader, freeStream, streamResources{stream, handle, cancel})
	return reader, nil
}

// Uncompressed is always an error, as for stream.Layer: the tar is read only once.
func (l *Layer) Uncompressed() (io.ReadCloser, error) {
	return nil, &Error{Code: CodeNotImplemented, Message: "a streaming Layer has no Uncompressed: its tar is read once, by Compressed"}
}

// Digest is the digest of the compressed layer; ErrNotComputed until it was read to its end.
func (l *Layer) Digest() (string, error) {
	finished, err := l.finishedLayer()
	return finished.Digest, err
}

// DiffID is the sha256 of the uncompressed tar; ErrNotComputed until the layer was read to
// its end.
func (l *Layer) DiffID() (string, error) {
	finished, err := l.finishedLayer()
	return finished.DiffID, err
}

// Size is the size of the compressed layer; ErrNotComputed until it was read to its end.
func (l *Layer) Size() (int64, error) {
	finished, err := l.finishedLayer()
	return finished.Size, err
}

// MediaType is the layer's media type, known from its options before anything is read.
func (l *Layer) MediaType() (string, error) {
	return l.options.mediaType()
}

func (l *Layer) finishedLayer() (LayerDescriptor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.finished == nil {
		return LayerDescriptor{}, ErrNotComputed
	}
	return *l.finished, nil
}

// streamResources is what a compressedReader's cleanup frees; it must not point at the reader.
type streamResources struct {
	stream *C.ocicas_layer_stream
	handle cgo.Handle
	cancel *contextCancel
}

func freeStream(resources streamResources) {
	C.ocicas_layer_stream_free(resources.stream)
	resources.handle.Delete()
	resources.cancel.release()
}

// compressedReader reads a pull-mode stream. Its C stream is freed at the end of the bytes or
// at Close, whichever comes first. Read and Close take turns (mu), so a Close from another
// goroutine waits for a Read in flight instead of freeing the stream under it.
type compressedReader struct {
	layer    *Layer
	mu       sync.Mutex
	stream   *C.ocicas_layer_stream
	callback *readCallback
	handle   cgo.Handle
	cancel   *contextCancel
	cleanup  runtime.Cleanup
	atEnd    bool
	closed   bool
}

func (r *compressedReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return 0, os.ErrClosed
	case r.atEnd:
		return 0, io.EOF
	case len(p) == 0:
		// The library reads an empty buffer as "0 bytes", which is not the end here.
		return 0, nil
	}
	var n C.size_t
	var message *C.char
	status := C.go_layer_stream_read(r.stream, bytesPointer(p), C.size_t(len(p)), &n, &message)
	runtime.KeepAlive(r)
	err := r.cancel.explain(toError(status, message))
	r.callback.repanic()
	if err != nil {
		if r.callback.err != nil && r.callback.err != io.EOF {
			return 0, fmt.Errorf("%w (the layer's input failed: %w)", err, r.callback.err)
		}
		return 0, err
	}
	if n > 0 {
		return int(n), nil
	}
	finished, err := r.finishedLayer()
	if err != nil {
		return 0, err
	}
	r.layer.mu.Lock()
	r.layer.finished = &finished
	r.layer.mu.Unlock()
	r.atEnd = true
	r.free()
	return 0, io.EOF
}

// finishedLayer asks the ended stream for what it computed.
func (r *compressedReader) finishedLayer() (LayerDescriptor, error) {
	var finished LayerDescriptor
	mediaType, err := r.layer.options.mediaType()
	if err != nil {
		return finished, err
	}
	finished.MediaType = mediaType
	var digest, diffID, message *C.char
	if err := toError(C.go_layer_stream_digest(r.stream, &digest, &message), message); err != nil {
		return finished, err
	}
	finished.Digest = takeString(digest)
	if err := toError(C.go_layer_stream_diff_id(r.stream, &diffID, &message), message); err != nil {
		return finished, err
	}
	finished.DiffID = takeString(diffID)
	var size C.uint64_t
	if err := toError(C.go_layer_stream_size(r.stream, &size, &message), message); err != nil {
		return finished, err
	}
	finished.Size = int64(size)
	runtime.KeepAlive(r)
	return finished, nil
}

func (r *compressedReader) free() {
	if r.stream == nil {
		return
	}
	r.cleanup.Stop()
	freeStream(streamResources{r.stream, r.handle, r.cancel})
	r.stream = nil
}

// Close frees the stream and closes the layer's source when it is an io.Closer. Closed before
// the end, the layer computes nothing. A Read in flight in another goroutine ends first.
// Closing again does nothing.
func (r *compressedReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.free()
	if closer, ok := r.layer.source.(io.Closer); ok {
		return closer.Close()
	}
	return nil
}
