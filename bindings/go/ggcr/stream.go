// Package ggcr adapts ocicas layers to go-containerregistry's v1.Layer, so they can be given to
// remote.Write, layout.Write, mutate.AppendLayers and the rest of that library.
//
// StreamLayer is ocicas's streaming layer with the behaviour of go-containerregistry's
// stream.Layer; StoredLayer is a layer stored in an ocicas layout.
package ggcr

import (
	"context"
	"errors"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocicas "github.com/ocicas/ocicas/bindings/go"
)

// StreamLayer is a v1.Layer whose uncompressed tar is read once and compressed by ocicas as it
// is read, in the shape of stream.NewLayer:
//   - Digest, DiffID and Size are stream.ErrNotComputed until Compressed was read to io.EOF,
//     then the digest and size of the compressed bytes and the sha256 of the tar;
//   - a second Compressed is stream.ErrConsumed (stream.Layer allows a second one until the
//     first was read to its end, and both would read the same source: here the first call
//     consumes the source);
//   - Uncompressed is always an error, as stream.Layer's;
//   - closing Compressed before its end leaves the values not computed (stream.Layer would
//     report hashes of the part that was read);
//   - closing Compressed closes the source when it is an io.Closer;
//   - MediaType comes from the options: the OCI gzip layer type by default,
//     ocicas.WithDockerMediaTypes for stream.Layer's default (types.DockerLayer).
//
// Compression happens in ocicas on every core unless ocicas.WithThreads says otherwise; the
// gzip level is 6 unless ocicas.WithCompressionLevel says otherwise (stream.Layer's default is 1).
type StreamLayer struct {
	layer *ocicas.Layer
}

var _ v1.Layer = (*StreamLayer)(nil)

// NewStreamLayer makes a streaming layer of the uncompressed tar that source gives; once ctx
// is done, reading its Compressed stream stops with ctx's error. Bad options are reported by
// Compressed and MediaType.
func NewStreamLayer(ctx context.Context, source io.Reader, opts ...ocicas.LayerOption) *StreamLayer {
	return &StreamLayer{layer: ocicas.NewLayer(ctx, source, opts...)}
}

// Compressed starts the stream and returns its compressed bytes; stream.ErrConsumed when
// called a second time.
func (l *StreamLayer) Compressed() (io.ReadCloser, error) {
	compressed, err := l.layer.Compressed()
	if err != nil {
		return nil, streamError(err)
	}
	return compressed, nil
}

// Uncompressed is always an error: the tar is read once, by Compressed.
func (l *StreamLayer) Uncompressed() (io.ReadCloser, error) {
	return l.layer.Uncompressed()
}

// Digest is the digest of the compressed layer; stream.ErrNotComputed until it was read to its end.
func (l *StreamLayer) Digest() (v1.Hash, error) {
	return streamHash(l.layer.Digest())
}

// DiffID is the sha256 of the uncompressed tar; stream.ErrNotComputed until the compressed
// layer was read to its end.
func (l *StreamLayer) DiffID() (v1.Hash, error) {
	return streamHash(l.layer.DiffID())
}

// Size is the size of the compressed layer; stream.ErrNotComputed until it was read to its end.
func (l *StreamLayer) Size() (int64, error) {
	size, err := l.layer.Size()
	return size, streamError(err)
}

// MediaType is the layer's media type, known from its options before anything is read.
func (l *StreamLayer) MediaType() (types.MediaType, error) {
	mediaType, err := l.layer.MediaType()
	return types.MediaType(mediaType), err
}

func streamHash(digest string, err error) (v1.Hash, error) {
	if err != nil {
		return v1.Hash{}, streamError(err)
	}
	return v1.NewHash(digest)
}

// streamError gives go-containerregistry's sentinels for ocicas's: its remote and layout
// packages test for stream.ErrNotComputed to write a layer whose digest is not known yet.
func streamError(err error) error {
	switch {
	case errors.Is(err, ocicas.ErrNotComputed):
		return stream.ErrNotComputed
	case errors.Is(err, ocicas.ErrConsumed):
		return stream.ErrConsumed
	default:
		return err
	}
}
