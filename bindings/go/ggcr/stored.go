package ggcr

import (
	"compress/gzip"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	ocicas "github.com/ocicas/ocicas/bindings/go"
)

// StoredLayer is a v1.Layer whose compressed blob is stored in an ocicas layout. Its digest,
// DiffID, size and media type come from the descriptor it was made with (the DiffID from the
// image's config); what it reads is checked against them, so a blob changed on disk is an
// error at the end of the read, never a layer with other content.
type StoredLayer struct {
	engine      *ocicas.Engine
	digest      v1.Hash
	diffID      v1.Hash
	size        int64
	mediaType   types.MediaType
	compression ocicas.Compression
}

var _ v1.Layer = (*StoredLayer)(nil)

// NewStoredLayer is the layer whose blob engine stores under layer.Digest. The blob must be
// stored with layer.Size bytes, and the media type must be a layer type this package can
// decompress (gzip, zstd or none). The engine must stay open while the layer is read.
func NewStoredLayer(engine *ocicas.Engine, layer ocicas.LayerDescriptor) (*StoredLayer, error) {
	digest, err := v1.NewHash(layer.Digest)
	if err != nil {
		return nil, fmt.Errorf("layer digest %q: %w", layer.Digest, err)
	}
	diffID, err := v1.NewHash(layer.DiffID)
	if err != nil {
		return nil, fmt.Errorf("layer %s: DiffID %q: %w", layer.Digest, layer.DiffID, err)
	}
	mediaType := types.MediaType(layer.MediaType)
	compression, err := compressionOf(mediaType)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", layer.Digest, err)
	}
	if compression == ocicas.Uncompressed && diffID != digest {
		return nil, fmt.Errorf("layer %s: uncompressed (%s) but its DiffID is %s: %w",
			layer.Digest, mediaType, diffID, ocicas.ErrDigestMismatch)
	}
	size, err := engine.BlobSize(layer.Digest)
	if err != nil {
		return nil, err
	}
	if size != layer.Size {
		return nil, fmt.Errorf("layer %s: the descriptor says %d bytes, the store has %d: %w",
			layer.Digest, layer.Size, size, ocicas.ErrSizeMismatch)
	}
	return &StoredLayer{engine: engine, digest: digest, diffID: diffID, size: size, mediaType: mediaType, compression: compression}, nil
}

// compressionOf is how a layer of this media type is compressed.
func compressionOf(mediaType types.MediaType) (ocicas.Compression, error) {
	switch mediaType {
	case types.OCILayer, types.DockerLayer, types.OCIRestrictedLayer, types.DockerForeignLayer:
		return ocicas.Gzip, nil
	case types.OCILayerZStd:
		return ocicas.Zstd, nil
	case types.OCIUncompressedLayer, types.DockerUncompressedLayer, types.OCIUncompressedRestrictedLayer:
		return ocicas.Uncompressed, nil
	default:
		return 0, fmt.Errorf("media type %q is not a layer type with a known compression: %w",
			mediaType, ocicas.ErrUnsupportedMediaType)
	}
}

// Compressed reads the stored blob. The read ends with an ocicas.ErrDigestMismatch or
// ocicas.ErrSizeMismatch error instead of io.EOF when the blob is not the layer's.
func (l *StoredLayer) Compressed() (io.ReadCloser, error) {
	blob, err := l.engine.OpenBlob(l.digest.String())
	if err != nil {
		return nil, err
	}
	// One byte past the expected size, so that a longer blob is seen as longer.
	section := io.NewSectionReader(blob, 0, l.size+1)
	return newVerifiedReader(section, blob, "blob", l.digest, l.size)
}

// Uncompressed reads the stored blob decompressed by its media type. Both the blob and the
// tar are checked: the read ends with an error instead of io.EOF when either is not the layer's.
func (l *StoredLayer) Uncompressed() (io.ReadCloser, error) {
	compressed, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	tar, err := decompress(compressed, l.compression)
	if err != nil {
		compressed.Close()
		return nil, fmt.Errorf("layer %s: %w", l.digest, err)
	}
	return newVerifiedReader(tar, closers{tar, compressed}, "uncompressed layer", l.diffID, -1)
}

// decompress gives the tar inside compressed; closing it does not close compressed.
func decompress(compressed io.Reader, compression ocicas.Compression) (io.ReadCloser, error) {
	switch compression {
	case ocicas.Gzip:
		return gzip.NewReader(compressed)
	case ocicas.Zstd:
		// One decoding goroutine: a layer is read as a stream. The window limit bounds the
		// memory a frame can ask for; 128 MiB is libzstd's default, which ocicas decodes with.
		decoder, err := zstd.NewReader(compressed, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			return nil, err
		}
		return decoder.IOReadCloser(), nil
	default:
		return io.NopCloser(compressed), nil
	}
}

// Digest is the digest of the stored blob.
func (l *StoredLayer) Digest() (v1.Hash, error) {
	return l.digest, nil
}

// DiffID is the sha256 of the uncompressed tar, as the descriptor said.
func (l *StoredLayer) DiffID() (v1.Hash, error) {
	return l.diffID, nil
}

// Size is the size of the stored blob.
func (l *StoredLayer) Size() (int64, error) {
	return l.size, nil
}

// MediaType is the media type the descriptor said.
func (l *StoredLayer) MediaType() (types.MediaType, error) {
	return l.mediaType, nil
}

// verifiedReader hashes what it reads and, at the end, gives an error instead of io.EOF when
// the bytes were not the expected ones.
type verifiedReader struct {
	source   io.Reader
	closer   io.Closer
	what     string
	expected v1.Hash
	size     int64 // -1: any size
	hasher   hash.Hash
	read     int64
}

func newVerifiedReader(source io.Reader, closer io.Closer, what string, expected v1.Hash, size int64) (*verifiedReader, error) {
	hasher, err := v1.Hasher(expected.Algorithm)
	if err != nil {
		closer.Close()
		return nil, err
	}
	return &verifiedReader{source: source, closer: closer, what: what, expected: expected, size: size, hasher: hasher}, nil
}

func (r *verifiedReader) Read(p []byte) (int, error) {
	n, err := r.source.Read(p)
	r.hasher.Write(p[:n])
	r.read += int64(n)
	if r.size >= 0 && r.read > r.size {
		return n, fmt.Errorf("%s %s: more than the %d bytes expected: %w", r.what, r.expected, r.size, ocicas.ErrSizeMismatch)
	}
	if err != io.EOF {
		return n, err
	}
	if r.size >= 0 && r.read != r.size {
		return n, fmt.Errorf("%s %s: %d bytes, %d expected: %w", r.what, r.expected, r.read, r.size, ocicas.ErrSizeMismatch)
	}
	actual := v1.Hash{Algorithm: r.expected.Algorithm, Hex: fmt.Sprintf("%x", r.hasher.Sum(nil))}
	if actual != r.expected {
		return n, fmt.Errorf("%s %s: the bytes read hash to %s: %w", r.what, r.expected, actual, ocicas.ErrDigestMismatch)
	}
	return n, io.EOF
}

func (r *verifiedReader) Close() error {
	return r.closer.Close()
}

// closers closes each in turn and returns the first error.
type closers []io.Closer

func (c closers) Close() error {
	var first error
	for _, closer := range c {
		if err := closer.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
