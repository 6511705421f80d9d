package ocicas

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func writeLayer(t *testing.T, engine *Engine, input []byte, opts ...LayerOption) LayerDescriptor {
	t.Helper()
	w, err := engine.NewLayerWriter(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := io.Copy(w, bytes.NewReader(input)); err != nil {
		t.Fatal(err)
	}
	layer, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return layer
}

func TestLayerWriterStoresWhatTheStreamLayerComputes(t *testing.T) {
	engine := newEngine(t)
	input := []byte(strings.Repeat("layer tar data ", 100000))
	stored := writeLayer(t, engine, input)
	pulled := NewLayer(t.Context(), bytes.NewReader(input))
	output := consume(t, pulled)
	digest, _ := pulled.Digest()
	diffID, _ := pulled.DiffID()
	size, _ := pulled.Size()
	mediaType, _ := pulled.MediaType()
	if stored != (LayerDescriptor{MediaType: mediaType, Digest: digest, Size: size, DiffID: diffID}) {
		t.Fatalf("push gave %+v, pull %s %s %d %s", stored, digest, diffID, size, mediaType)
	}
	blob, err := engine.ReadBlob(stored.Digest, NoLimit)
	if err != nil || !bytes.Equal(blob, output) {
		t.Fatalf("stored blob differs from the pulled bytes: %v", err)
	}
}

// Layer.MediaType is computed in Go; the library's finished layers must agree with it.
func TestLayerMediaTypesAgreeWithTheLibrary(t *testing.T) {
	engine := newEngine(t)
	for _, opts := range [][]LayerOption{
		nil,
		{WithCompression(Zstd)},
		{WithCompression(Uncompressed)},
		{WithDockerMediaTypes()},
		{WithDockerMediaTypes(), WithCompression(Uncompressed)},
	} {
		stored := writeLayer(t, engine, []byte("tar"), opts...)
		want, err := NewLayer(t.Context(), nil, opts...).MediaType()
		if err != nil || stored.MediaType != want {
			t.Errorf("library %q, Go %q (%v)", stored.MediaType, want, err)
		}
	}
}

func TestLayerWriterStateErrors(t *testing.T) {
	engine := newEngine(t)
	_, err := engine.NewLayerWriter(WithCompressionLevel(42))
	wantErr(t, err, ErrInvalidArgument)
	w, err := engine.NewLayerWriter(WithRef("my-layer"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("some tar"))
	if status, err := engine.IngestStatus("my-layer"); err != nil || status.Ref != "my-layer" {
		t.Fatalf("the layer's ingest: %+v, %v", status, err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	_, err = w.Write([]byte("more"))
	wantErr(t, err, ErrInvalidArgument)
	_, err = w.Commit()
	wantErr(t, err, ErrInvalidArgument)
	w.Close()
	w.Close()
	wantPanic(t, "Write after Close", func() { w.Write([]byte("x")) })
}

func TestClosingAnUncommittedLayerWriterAbortsItsIngest(t *testing.T) {
	engine := newEngine(t)
	w, err := engine.NewLayerWriter()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte("x"), 5000))
	w.Close()
	ingests, err := engine.ListIngests()
	if err != nil || len(ingests) != 0 {
		t.Fatalf("ingests left: %+v, %v", ingests, err)
	}
}

func TestAppendLayerMakesThenGrowsAnImage(t *testing.T) {
	engine := newEngine(t)
	layer := writeLayer(t, engine, []byte(strings.Repeat("file data ", 1000)))
	first, err := engine.AppendLayer("app:1.0", layer)
	if err != nil {
		t.Fatal(err)
	}
	if first.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("manifest %+v", first)
	}
	second, err := engine.AppendLayer("app:1.0", layer)
	if err != nil || second.Digest == first.Digest {
		t.Fatalf("second append: %+v, %v", second, err)
	}
	if ref, err := engine.GetRef("app:1.0"); err != nil || ref.Digest != second.Digest {
		t.Fatalf("ref: %+v, %v", ref, err)
	}
	manifest, err := engine.ReadBlob(second.Digest, NoLimit)
	if err != nil || strings.Count(string(manifest), layer.Digest) != 2 {
		t.Fatalf("manifest %s, %v", manifest, err)
	}
	if report, err := engine.Fsck(); err != nil || !report.Sound {
		t.Fatalf("fsck: %+v, %v", report, err)
	}
	missing := layer
	missing.Digest = "sha256:" + strings.Repeat("e", 64)
	_, err = engine.AppendLayer("app:1.0", missing)
	wantErr(t, err, ErrNotFound)
	_, err = engine.AppendLayer("bad name", layer)
	wantErr(t, err, ErrInvalidArgument)
}
