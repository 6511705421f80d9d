package ggcr

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	ocicas "github.com/ocicas/ocicas/bindings/go"
)

// closeCounter is a source that counts its Close calls.
type closeCounter struct {
	io.Reader
	mu     sync.Mutex
	closes int
}

func (c *closeCounter) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closes++
	return nil
}

func (c *closeCounter) closed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closes
}

// wantNotComputed fails unless Digest, DiffID and Size are all stream.ErrNotComputed.
func wantNotComputed(t *testing.T, layer v1.Layer) {
	t.Helper()
	_, err := layer.Digest()
	wantIs(t, "Digest", err, stream.ErrNotComputed)
	_, err = layer.DiffID()
	wantIs(t, "DiffID", err, stream.ErrNotComputed)
	_, err = layer.Size()
	wantIs(t, "Size", err, stream.ErrNotComputed)
}

func gunzip(t *testing.T, compressed []byte) []byte {
	t.Helper()
	reader, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		t.Fatalf("gzip.NewReader: %v", err)
	}
	tarball, err := io.ReadAll(reader)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return tarball
}

func TestStreamLayerComputesItsValuesOnlyOnceReadToTheEnd(t *testing.T) {
	tarball := testTar(t)
	source := &closeCounter{Reader: bytes.NewReader(tarball)}
	layer := NewStreamLayer(t.Context(), source)
	wantNotComputed(t, layer)
	if mediaType, err := layer.MediaType(); err != nil || mediaType != types.OCILayer {
		t.Fatalf("MediaType = %q, %v; want %q", mediaType, err, types.OCILayer)
	}

	compressed := readAll(t, "Compressed", layer.Compressed)
	if source.closed() != 1 {
		t.Fatalf("the source was closed %d times, want once", source.closed())
	}
	if !bytes.Equal(gunzip(t, compressed), tarball) {
		t.Fatal("the compressed bytes do not decompress to the tar")
	}
	if digest, err := layer.Digest(); err != nil || digest != sha256Of(compressed) {
		t.Fatalf("Digest = %v, %v; want %v", digest, err, sha256Of(compressed))
	}
	if diffID, err := layer.DiffID(); err != nil || diffID != sha256Of(tarball) {
		t.Fatalf("DiffID = %v, %v; want %v", diffID, err, sha256Of(tarball))
	}
	if size, err := layer.Size(); err != nil || size != int64(len(compressed)) {
		t.Fatalf("Size = %d, %v; want %d", size, err, len(compressed))
	}

	_, err := layer.Compressed()
	wantIs(t, "second Compressed", err, stream.ErrConsumed)
	if _, err := layer.Uncompressed(); err == nil {
		t.Fatal("Uncompressed of a streaming layer did not fail")
	}
}

// replayedLayer is a consumed streaming layer whose values are checked against the bytes it
// gave: Compressed replays them, Uncompressed gives the original tar.
type replayedLayer struct {
	*StreamLayer
	compressed, tarball []byte
}

func (l replayedLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}

func (l replayedLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.tarball)), nil
}

// validate.Layer reads a layer twice (Compressed, then Uncompressed), which no streaming
// layer allows (stream.Layer neither): it checks the consumed layer's Digest, DiffID and Size
// against the bytes the stream gave and the tar it was given.
func TestConsumedStreamLayerPassesValidateLayer(t *testing.T) {
	for _, docker := range []bool{false, true} {
		tarball := testTar(t)
		var opts []ocicas.LayerOption
		if docker {
			opts = append(opts, ocicas.WithDockerMediaTypes())
		}
		layer := NewStreamLayer(t.Context(), bytes.NewReader(tarball), opts...)
		compressed := readAll(t, "Compressed", layer.Compressed)
		if err := validate.Layer(replayedLayer{layer, compressed, tarball}); err != nil {
			t.Fatalf("validate.Layer (Docker media types: %v): %v", docker, err)
		}
		// The check can fail: a layer claiming another tar's DiffID does not pass.
		other := fileTar(t, "other", "other")
		if err := validate.Layer(replayedLayer{layer, compressed, other}); err == nil {
			t.Fatal("validate.Layer passed a layer whose Uncompressed is another tar")
		}
	}
}

// The same tar through go-containerregistry's stream.NewLayer and through ocicas at the same
// gzip level: both decompress to the tar, and both DiffIDs are its sha256.
func TestStreamLayerAgreesWithGgcrStreamLayer(t *testing.T) {
	tarball := testTar(t)
	for _, level := range []int{1, 6, 9} {
		ours := NewStreamLayer(t.Context(), bytes.NewReader(tarball), ocicas.WithCompressionLevel(level), ocicas.WithDockerMediaTypes())
		theirs := stream.NewLayer(io.NopCloser(bytes.NewReader(tarball)), stream.WithCompressionLevel(level))
		ourBytes := readAll(t, "ocicas Compressed", ours.Compressed)
		theirBytes := readAll(t, "ggcr Compressed", theirs.Compressed)
		for _, layer := range []struct {
			name       string
			layer      v1.Layer
			compressed []byte
		}{{"ocicas", ours, ourBytes}, {"ggcr", theirs, theirBytes}} {
			if !bytes.Equal(gunzip(t, layer.compressed), tarball) {
				t.Fatalf("level %d: %s's bytes do not decompress to the tar", level, layer.name)
			}
			if diffID, err := layer.layer.DiffID(); err != nil || diffID != sha256Of(tarball) {
				t.Fatalf("level %d: %s's DiffID = %v, %v; want %v", level, layer.name, diffID, err, sha256Of(tarball))
			}
			if digest, err := layer.layer.Digest(); err != nil || digest != sha256Of(layer.compressed) {
				t.Fatalf("level %d: %s's Digest = %v, %v; want %v", level, layer.name, digest, err, sha256Of(layer.compressed))
			}
			if mediaType, err := layer.layer.MediaType(); err != nil || mediaType != types.DockerLayer {
				t.Fatalf("level %d: %s's MediaType = %q, %v", level, layer.name, mediaType, err)
			}
		}
	}
}

// failingSource gives limit bytes of data, then fails.
type failingSource struct {
	data  []byte
	limit int
	err   error
}

func (s *failingSource) Read(p []byte) (int, error) {
	if s.limit == 0 {
		return 0, s.err
	}
	n := copy(p[:min(len(p), s.limit)], s.data)
	s.data, s.limit = s.data[n:], s.limit-n
	return n, nil
}

func TestStreamLayerWhoseSourceFailsMidwayFailsAndComputesNothing(t *testing.T) {
	diskGone := errors.New("disk gone")
	layer := NewStreamLayer(t.Context(), &failingSource{data: testTar(t), limit: 100 << 10, err: diskGone})
	compressed, err := layer.Compressed()
	if err != nil {
		t.Fatalf("Compressed: %v", err)
	}
	_, err = io.ReadAll(compressed)
	wantIs(t, "reading a stream whose source failed", err, diskGone)
	if err := compressed.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wantNotComputed(t, layer)
	_, err = layer.Compressed()
	wantIs(t, "Compressed after a failed stream", err, stream.ErrConsumed)
}

func TestStreamLayerClosedEarlyComputesNothingAndCannotBeReadAgain(t *testing.T) {
	source := &closeCounter{Reader: bytes.NewReader(testTar(t))}
	layer := NewStreamLayer(t.Context(), source)
	compressed, err := layer.Compressed()
	if err != nil {
		t.Fatalf("Compressed: %v", err)
	}
	if _, err := io.ReadFull(compressed, make([]byte, 1000)); err != nil {
		t.Fatalf("reading the start: %v", err)
	}
	if err := compressed.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := compressed.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if source.closed() != 1 {
		t.Fatalf("the source was closed %d times, want once", source.closed())
	}
	_, err = compressed.Read(make([]byte, 10))
	wantIs(t, "Read after Close", err, os.ErrClosed)
	wantNotComputed(t, layer)
	_, err = layer.Compressed()
	wantIs(t, "Compressed after Close", err, stream.ErrConsumed)
}

func TestStreamLayerWithBadOptionsFailsBeforeReading(t *testing.T) {
	layer := NewStreamLayer(t.Context(), bytes.NewReader(testTar(t)), ocicas.WithCompressionLevel(42))
	if _, err := layer.Compressed(); !errors.Is(err, ocicas.ErrInvalidArgument) {
		t.Fatalf("Compressed with gzip level 42: got %v, want ocicas.ErrInvalidArgument", err)
	}
	zstdDocker := NewStreamLayer(t.Context(), bytes.NewReader(nil), ocicas.WithCompression(ocicas.Zstd), ocicas.WithDockerMediaTypes())
	if _, err := zstdDocker.MediaType(); !errors.Is(err, ocicas.ErrInvalidArgument) {
		t.Fatalf("MediaType of a Docker zstd layer: got %v, want ocicas.ErrInvalidArgument", err)
	}
}

// Digest, DiffID and Size asked from other goroutines while the stream is read (run with -race).
func TestStreamLayerValuesMayBeAskedWhileItIsRead(t *testing.T) {
	tarball := testTar(t)
	layer := NewStreamLayer(t.Context(), bytes.NewReader(tarball))
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := layer.DiffID(); err != nil && !errors.Is(err, stream.ErrNotComputed) {
					t.Errorf("DiffID while reading: %v", err)
					return
				}
				layer.Digest()
				layer.Size()
			}
		}()
	}
	readAll(t, "Compressed", layer.Compressed)
	close(done)
	wg.Wait()
	if diffID, err := layer.DiffID(); err != nil || diffID != sha256Of(tarball) {
		t.Fatalf("DiffID = %v, %v; want %v", diffID, err, sha256Of(tarball))
	}
}
