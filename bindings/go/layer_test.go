package ocicas

// The behaviours of go-containerregistry's pkg/v1/stream layer_test.go, checked on our Layer.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
)

func sha256Digest(data []byte) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256(data))
}

// consume reads the layer's compressed bytes through io.Copy and closes them.
func consume(t *testing.T, layer *Layer) []byte {
	t.Helper()
	compressed, err := layer.Compressed()
	if err != nil {
		t.Fatalf("Compressed: %v", err)
	}
	var out bytes.Buffer
	if _, err := io.Copy(&out, compressed); err != nil {
		t.Fatalf("reading Compressed: %v", err)
	}
	if err := compressed.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.Bytes()
}

// wantComputed checks Digest, DiffID and Size against the bytes that went in and came out.
func wantComputed(t *testing.T, layer *Layer, input, output []byte) {
	t.Helper()
	if digest, err := layer.Digest(); err != nil || digest != sha256Digest(output) {
		t.Errorf("Digest: %s, %v; want %s", digest, err, sha256Digest(output))
	}
	if diffID, err := layer.DiffID(); err != nil || diffID != sha256Digest(input) {
		t.Errorf("DiffID: %s, %v; want %s", diffID, err, sha256Digest(input))
	}
	if size, err := layer.Size(); err != nil || size != int64(len(output)) {
		t.Errorf("Size: %d, %v; want %d", size, err, len(output))
	}
}

func gunzip(t *testing.T, compressed []byte) []byte {
	t.Helper()
	reader, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	data, err := io.ReadAll(reader)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return data
}

func TestStreamMatchesTheBufferedLayerAndItsLevel(t *testing.T) {
	// Text that the levels compress differently (a run of one byte gives the same bytes at
	// every level).
	var text bytes.Buffer
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&text, "entry %d of layer %d\n", i, i*7919%1000)
	}
	input := text.Bytes()
	layer := NewLayer(t.Context(), bytes.NewReader(input))
	output := consume(t, layer)
	wantComputed(t, layer, input, output)
	if !bytes.Equal(gunzip(t, output), input) {
		t.Fatal("the compressed bytes do not decompress to the input")
	}
	// The stream is reproducible, and the level changes the bytes.
	again := NewLayer(t.Context(), bytes.NewReader(input))
	if !bytes.Equal(consume(t, again), output) {
		t.Fatal("the same input and options gave other bytes")
	}
	fastest := NewLayer(t.Context(), bytes.NewReader(input), WithCompressionLevel(1))
	fastOutput := consume(t, fastest)
	if bytes.Equal(fastOutput, output) {
		t.Fatal("level 1 gave the bytes of level 6")
	}
	wantComputed(t, fastest, input, fastOutput)
	if !bytes.Equal(gunzip(t, fastOutput), input) {
		t.Fatal("level 1 does not decompress to the input")
	}
}

func TestNotComputedBeforeConsumption(t *testing.T) {
	layer := NewLayer(t.Context(), strings.NewReader("hi"))
	if _, err := layer.Size(); !errors.Is(err, ErrNotComputed) {
		t.Errorf("Size: %v", err)
	}
	if _, err := layer.Digest(); !errors.Is(err, ErrNotComputed) {
		t.Errorf("Digest: %v", err)
	}
	if _, err := layer.DiffID(); !errors.Is(err, ErrNotComputed) {
		t.Errorf("DiffID: %v", err)
	}
	// Part of the bytes is not enough.
	compressed, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer compressed.Close()
	if _, err := compressed.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := layer.Digest(); !errors.Is(err, ErrNotComputed) {
		t.Errorf("Digest after one byte: %v", err)
	}
}

func TestSecondCompressedIsConsumed(t *testing.T) {
	layer := NewLayer(t.Context(), strings.NewReader("hello"))
	consume(t, layer)
	_, err := layer.Compressed()
	if !errors.Is(err, ErrConsumed) {
		t.Fatalf("Compressed after consuming: %v", err)
	}
	// Even when the first one was not read at all.
	unread := NewLayer(t.Context(), strings.NewReader("hello"))
	first, err := unread.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, err = unread.Compressed()
	wantErr(t, err, ErrConsumed)
}

func TestCloseBeforeConsumingLeavesNothingComputed(t *testing.T) {
	layer := NewLayer(t.Context(), strings.NewReader("hello"))
	compressed, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	if err := compressed.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := compressed.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := compressed.Read(make([]byte, 10)); err == nil {
		t.Fatal("Read after Close succeeded")
	}
	if _, err := layer.Digest(); !errors.Is(err, ErrNotComputed) {
		t.Fatalf("Digest after an early Close: %v", err)
	}
}

// writeTar streams files into a pipe, as a tar producer would, and returns its reader.
func writeTar(files int) *io.PipeReader {
	reader, writer := io.Pipe()
	go func() {
		tw := tar.NewWriter(writer)
		writer.CloseWithError(func() error {
			for i := range files {
				body := fmt.Sprintf("i am file number %d", i)
				header := &tar.Header{Name: fmt.Sprintf("file-%d.txt", i), Mode: 0o600, Size: int64(len(body)), Typeflag: tar.TypeReg}
				if err := tw.WriteHeader(header); err != nil {
					return err
				}
				if _, err := tw.Write([]byte(body)); err != nil {
					return err
				}
			}
			return tw.Close()
		}())
	}()
	return reader
}

func TestCloseATarStreamBeforeConsumingClosesItsSource(t *testing.T) {
	source := writeTar(1000)
	layer := NewLayer(t.Context(), source)
	compressed, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	if err := compressed.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The producer sees the pipe closed instead of blocking forever.
	if _, err := source.Read(make([]byte, 1)); err != io.ErrClosedPipe {
		t.Fatalf("source after Close: %v", err)
	}
}

func TestStreamableLayerFromATarPipe(t *testing.T) {
	var input bytes.Buffer
	layer := NewLayer(t.Context(), io.TeeReader(writeTar(1000), &input))
	output := consume(t, layer)
	wantComputed(t, layer, input.Bytes(), output)
	tr := tar.NewReader(bytes.NewReader(gunzip(t, output)))
	count := 0
	for {
		if _, err := tr.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		count++
	}
	if count != 1000 {
		t.Fatalf("%d files in the layer", count)
	}
}

func TestLargeRandomStream(t *testing.T) {
	const n = 8 << 20
	input := make([]byte, n)
	rand.Read(input)
	layer := NewLayer(t.Context(), bytes.NewReader(input), WithThreads(2))
	output := consume(t, layer)
	wantComputed(t, layer, input, output)
	// Random bytes do not compress: gzip adds a little.
	if len(output) < n || len(output) > n+n/100 {
		t.Fatalf("%d compressed bytes for %d random ones", len(output), n)
	}
	if !bytes.Equal(gunzip(t, output), input) {
		t.Fatal("the compressed bytes do not decompress to the input")
	}
}

func TestMediaTypeFollowsTheOptions(t *testing.T) {
	cases := []struct {
		opts []LayerOption
		want string
	}{
		{nil, MediaTypeOCILayerGzip},
		{[]LayerOption{WithCompression(Zstd)}, MediaTypeOCILayerZstd},
		{[]LayerOption{WithCompression(Uncompressed)}, MediaTypeOCILayer},
		{[]LayerOption{WithDockerMediaTypes()}, MediaTypeDockerLayer},
		{[]LayerOption{WithDockerMediaTypes(), WithCompression(Uncompressed)}, MediaTypeDockerUncompLayer},
	}
	for _, c := range cases {
		got, err := NewLayer(t.Context(), strings.NewReader("hello"), c.opts...).MediaType()
		if err != nil || got != c.want {
			t.Errorf("MediaType: %q, %v; want %q", got, err, c.want)
		}
	}
	_, err := NewLayer(t.Context(), strings.NewReader("x"), WithDockerMediaTypes(), WithCompression(Zstd)).MediaType()
	wantErr(t, err, ErrInvalidArgument)
}

func TestUncompressedIsAlwaysAnError(t *testing.T) {
	layer := NewLayer(t.Context(), strings.NewReader("hello"))
	_, err := layer.Uncompressed()
	wantErr(t, err, ErrNotImplemented)
	consume(t, layer)
	_, err = layer.Uncompressed()
	wantErr(t, err, ErrNotImplemented)
}

func TestUncompressedLayerIsTheInputItself(t *testing.T) {
	input := []byte(strings.Repeat("tar bytes ", 500))
	layer := NewLayer(t.Context(), bytes.NewReader(input), WithCompression(Uncompressed))
	output := consume(t, layer)
	if !bytes.Equal(output, input) {
		t.Fatal("an uncompressed layer changed its input")
	}
	wantComputed(t, layer, input, output)
}

func TestZstdLayer(t *testing.T) {
	input := []byte(strings.Repeat("zstd input ", 5000))
	layer := NewLayer(t.Context(), bytes.NewReader(input), WithCompression(Zstd), WithCompressionLevel(19))
	output := consume(t, layer)
	if !bytes.HasPrefix(output, []byte{0x28, 0xb5, 0x2f, 0xfd}) || len(output) >= len(input) {
		t.Fatalf("not a zstd frame smaller than its input: % x…", output[:4])
	}
	wantComputed(t, layer, input, output)
}

func TestBadOptionsFailAtCompressed(t *testing.T) {
	for _, opts := range [][]LayerOption{
		{WithCompressionLevel(10)},
		{WithCompression(Zstd), WithCompressionLevel(0)},
		{WithCompression(Zstd), WithDockerMediaTypes()},
		{WithCompression(7)},
		{WithThreads(-1)},
	} {
		_, err := NewLayer(t.Context(), strings.NewReader("x"), opts...).Compressed()
		wantErr(t, err, ErrInvalidArgument)
	}
}

func TestMoreThreadsThanTheLimitIsAnInvalidArgumentNamingIt(t *testing.T) {
	engine := newEngine(t)
	limit, err := engine.GetLimit(LimitThreads)
	if err != nil {
		t.Fatal(err)
	}
	for _, threads := range []int{5000, int(limit) + 1, math.MaxInt} {
		_, err := engine.NewLayerWriter(WithThreads(threads))
		wantErr(t, err, ErrInvalidArgument)
		if !strings.Contains(err.Error(), "thread limit (threads)") {
			t.Fatalf("%v does not name the limit", err)
		}
		_, err = NewLayer(t.Context(), strings.NewReader("x"), WithThreads(threads)).Compressed()
		wantErr(t, err, ErrInvalidArgument)
	}
	if err := engine.SetLimit(LimitThreads, limit+1); err != nil {
		t.Fatal(err)
	}
	w, err := engine.NewLayerWriter(WithThreads(int(limit) + 1))
	if err != nil {
		t.Fatalf("a raised limit: %v", err)
	}
	w.Close()
}

// failingReader gives some bytes, then an error.
type failingReader struct {
	left int
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, r.err
	}
	n := min(len(p), r.left)
	r.left -= n
	return n, nil
}

func TestAFailingInputFailsTheStreamAndComputesNothing(t *testing.T) {
	broken := errors.New("disk on fire")
	layer := NewLayer(t.Context(), &failingReader{left: 100000, err: broken})
	compressed, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer compressed.Close()
	_, err = io.Copy(io.Discard, compressed)
	if !errors.Is(err, ErrIO) || !errors.Is(err, broken) {
		t.Fatalf("got %v, want ErrIO wrapping the input's error", err)
	}
	if _, err := layer.DiffID(); !errors.Is(err, ErrNotComputed) {
		t.Fatalf("DiffID after a failed input: %v", err)
	}
}

type panickingReader struct{}

func (panickingReader) Read([]byte) (int, error) { panic("reader panicked") }

func TestAPanickingInputPanicsInRead(t *testing.T) {
	compressed, err := NewLayer(t.Context(), panickingReader{}).Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer compressed.Close()
	wantPanic(t, "Read of a panicking input", func() { compressed.Read(make([]byte, 100)) })
}

func TestEmptyReadIsNotTheEnd(t *testing.T) {
	layer := NewLayer(t.Context(), strings.NewReader("hello"))
	compressed, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer compressed.Close()
	if n, err := compressed.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil): %d, %v", n, err)
	}
	if _, err := io.Copy(io.Discard, compressed); err != nil {
		t.Fatal(err)
	}
	if _, err := layer.Digest(); err != nil {
		t.Fatal(err)
	}
}
