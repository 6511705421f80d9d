package ocicas

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleTar is a tar of a few files, one past several read buffers.
func sampleTar(t *testing.T) []byte {
	t.Helper()
	var out bytes.Buffer
	writer := tar.NewWriter(&out)
	files := []struct {
		name string
		data []byte
	}{
		{"etc/hostname", []byte("go-layer\n")},
		{"usr/lib/big", bytes.Repeat([]byte("0123456789abcdef"), 40000)},
		{"empty", nil},
	}
	for _, file := range files {
		header := &tar.Header{Name: file.name, Mode: 0o644, Size: int64(len(file.data)), Typeflag: tar.TypeReg}
		if err := writer.WriteHeader(header); err != nil {
			t.Fatal(err)
		}
		if _, err := writer.Write(file.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := writer.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// storeLayer writes data into a stored layer with opts.
func storeLayer(t *testing.T, e *Engine, data []byte, opts ...LayerOption) LayerDescriptor {
	t.Helper()
	writer, err := e.NewLayerWriter(opts...)
	if err != nil {
		t.Fatalf("NewLayerWriter: %v", err)
	}
	defer writer.Close()
	if _, err := writer.Write(data); err != nil {
		t.Fatalf("Write: %v", err)
	}
	layer, err := writer.Commit()
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return layer
}

// readLayer reads the whole layer: the bytes read and the error that ended it (nil at io.EOF).
func readLayer(t *testing.T, e *Engine, layer LayerDescriptor) ([]byte, error) {
	t.Helper()
	reader, err := e.OpenLayer(layer)
	if err != nil {
		t.Fatalf("OpenLayer: %v", err)
	}
	defer reader.Close()
	return io.ReadAll(reader)
}

func TestOpenLayerReadsEveryCompressionBackAsItsTar(t *testing.T) {
	e := newEngine(t)
	data := sampleTar(t)
	for _, opts := range [][]LayerOption{
		{WithCompression(Gzip)},
		{WithCompression(Zstd)},
		{WithCompression(Uncompressed)},
		{WithCompression(Gzip), WithDockerMediaTypes()},
	} {
		layer := storeLayer(t, e, data, opts...)
		got, err := readLayer(t, e, layer)
		if err != nil {
			t.Fatalf("%s: %v", layer.MediaType, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: %d bytes read, not the %d of the tar", layer.MediaType, len(got), len(data))
		}
		names := listTar(t, got)
		if strings.Join(names, ",") != "etc/hostname,usr/lib/big,empty" {
			t.Fatalf("%s: entries %v", layer.MediaType, names)
		}
	}
}

func listTar(t *testing.T, data []byte) []string {
	t.Helper()
	var names []string
	reader := tar.NewReader(bytes.NewReader(data))
	for {
		header, err := reader.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		names = append(names, header.Name)
	}
}

func TestOpenLayerWithAWrongDiffIDFailsAtTheEndNotBefore(t *testing.T) {
	e := newEngine(t)
	data := sampleTar(t)
	layer := storeLayer(t, e, data, WithCompression(Zstd))
	layer.DiffID = sha256Digest([]byte("another tar"))
	reader, err := e.OpenLayer(layer)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	got, err := io.ReadAll(reader)
	wantErr(t, err, ErrDigestMismatch)
	if !bytes.Equal(got, data) {
		t.Fatalf("%d bytes came before the failure, not the %d of the tar", len(got), len(data))
	}
	if _, again := reader.Read(make([]byte, 10)); !errors.Is(again, ErrDigestMismatch) {
		t.Fatalf("a read after the failure gave %v", again)
	}
}

func TestOpenLayerOfATamperedBlobIsADigestMismatch(t *testing.T) {
	e, layout := newEngineAt(t)
	layer := storeLayer(t, e, sampleTar(t), WithCompression(Gzip))
	path := filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(layer.Digest, "sha256:"))
	blob, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blob[len(blob)/2] ^= 1
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, blob, 0o444); err != nil {
		t.Fatal(err)
	}
	_, err = readLayer(t, e, layer)
	wantErr(t, err, ErrDigestMismatch)
}

func TestOpenLayerRefusesWhatItCannotRead(t *testing.T) {
	e := newEngine(t)
	layer := storeLayer(t, e, sampleTar(t))
	cases := []struct {
		name   string
		change func(*LayerDescriptor)
		want   error
	}{
		{"a config media type", func(l *LayerDescriptor) { l.MediaType = "application/vnd.oci.image.config.v1+json" }, ErrUnsupportedMediaType},
		{"bzip2", func(l *LayerDescriptor) { l.MediaType = MediaTypeOCILayer + "+bzip2" }, ErrUnsupportedMediaType},
		{"another size", func(l *LayerDescriptor) { l.Size++ }, ErrSizeMismatch},
		{"a negative size", func(l *LayerDescriptor) { l.Size = -1 }, ErrInvalidArgument},
		{"a blob not stored", func(l *LayerDescriptor) { l.Digest = sha256Digest([]byte("absent")) }, ErrNotFound},
		{"a malformed digest", func(l *LayerDescriptor) { l.Digest = "sha256:../../x" }, ErrInvalidArgument},
		{"a malformed DiffID", func(l *LayerDescriptor) { l.DiffID = "" }, ErrInvalidArgument},
		{"a NUL in the media type", func(l *LayerDescriptor) { l.MediaType = MediaTypeOCILayerGzip + "\x00" }, ErrInvalidArgument},
	}
	for _, c := range cases {
		changed := layer
		c.change(&changed)
		reader, err := e.OpenLayer(changed)
		if reader != nil {
			t.Fatalf("%s: opened", c.name)
		}
		wantErr(t, err, c.want)
	}
}

func TestALayerReaderOutlivesItsEngineAndClosesOnce(t *testing.T) {
	layout := filepath.Join(t.TempDir(), "layout")
	e, err := Open(layout, &OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	data := sampleTar(t)
	reader, err := e.OpenLayer(storeLayer(t, e, data))
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	got, err := io.ReadAll(reader)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if n, err := reader.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("after the end: %d, %v", n, err)
	}
	if err := reader.Close(); err != nil {
		t.Fatal(err)
	}
	if err := reader.Close(); err != nil {
		t.Fatal(err)
	}
	wantPanic(t, "Read after Close", func() { reader.Read(make([]byte, 10)) })
}
