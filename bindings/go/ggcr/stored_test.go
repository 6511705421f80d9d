package ggcr

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/klauspost/compress/zstd"
	ocicas "github.com/ocicas/ocicas/bindings/go"
)

// newStoredLayer stores tarball and makes the StoredLayer of it.
func newStoredLayer(t *testing.T, engine *ocicas.Engine, tarball []byte, opts ...ocicas.LayerOption) (*StoredLayer, ocicas.LayerDescriptor) {
	t.Helper()
	descriptor := storeLayer(t, engine, tarball, opts...)
	layer, err := NewStoredLayer(engine, descriptor)
	if err != nil {
		t.Fatalf("NewStoredLayer(%+v): %v", descriptor, err)
	}
	return layer, descriptor
}

// blobPath is where the layout keeps a blob.
func blobPath(layout, digest string) string {
	return filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

func TestStoredGzipLayerPassesValidateLayer(t *testing.T) {
	engine, _ := newEngine(t)
	tarball := testTar(t)
	for _, opts := range [][]ocicas.LayerOption{nil, {ocicas.WithDockerMediaTypes()}} {
		layer, descriptor := newStoredLayer(t, engine, tarball, opts...)
		if err := validate.Layer(layer); err != nil {
			t.Fatalf("validate.Layer(%+v): %v", descriptor, err)
		}
		if mediaType, _ := layer.MediaType(); string(mediaType) != descriptor.MediaType {
			t.Fatalf("MediaType = %q, want %q", mediaType, descriptor.MediaType)
		}
		if diffID, _ := layer.DiffID(); diffID != sha256Of(tarball) {
			t.Fatalf("DiffID = %v, want %v", diffID, sha256Of(tarball))
		}
	}
}

// validate.Layer decompresses with gzip only, so zstd and uncompressed layers are checked here.
func TestStoredZstdAndUncompressedLayersReadBackTheirTar(t *testing.T) {
	engine, _ := newEngine(t)
	tarball := testTar(t)
	for _, compression := range []ocicas.Compression{ocicas.Zstd, ocicas.Uncompressed} {
		layer, descriptor := newStoredLayer(t, engine, tarball, ocicas.WithCompression(compression))
		compressed := readAll(t, "Compressed", layer.Compressed)
		if digest, _ := layer.Digest(); digest != sha256Of(compressed) || descriptor.Digest != digest.String() {
			t.Fatalf("%s: Digest = %v, the bytes hash to %v", descriptor.MediaType, digest, sha256Of(compressed))
		}
		if size, _ := layer.Size(); size != int64(len(compressed)) {
			t.Fatalf("%s: Size = %d, read %d bytes", descriptor.MediaType, size, len(compressed))
		}
		if !bytes.Equal(readAll(t, "Uncompressed", layer.Uncompressed), tarball) {
			t.Fatalf("%s: Uncompressed is not the tar", descriptor.MediaType)
		}
	}
}

// A blob changed on disk after the layer was made (same size, one byte flipped) is an error
// at the end of every read, never a layer with other content.
func TestStoredLayerWhoseBlobWasTamperedFailsOnRead(t *testing.T) {
	engine, layout := newEngine(t)
	tarball := testTar(t)
	for _, compression := range []ocicas.Compression{ocicas.Gzip, ocicas.Zstd, ocicas.Uncompressed} {
		layer, descriptor := newStoredLayer(t, engine, tarball, ocicas.WithCompression(compression))
		path := blobPath(layout, descriptor.Digest)
		blob, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// A byte of random.bin's data: decompression alone might not notice.
		blob[len(blob)*2/3] ^= 0x01
		if err := os.WriteFile(path, blob, 0o644); err != nil {
			t.Fatal(err)
		}
		wantReadFails(t, descriptor.MediaType+" Compressed", layer.Compressed, ocicas.ErrDigestMismatch)
		wantReadFails(t, descriptor.MediaType+" Uncompressed", layer.Uncompressed, nil)
		if err := validate.Layer(layer); err == nil {
			t.Fatalf("%s: validate.Layer passed a tampered layer", descriptor.MediaType)
		}
	}
}

// wantReadFails fails unless reading the stream that open gives ends with an error (want, if not nil).
func wantReadFails(t *testing.T, what string, open func() (io.ReadCloser, error), want error) {
	t.Helper()
	rc, err := open()
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if err == nil {
		t.Fatalf("%s: read to the end without an error", what)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func TestStoredLayerWhoseBlobChangedSizeFailsOnRead(t *testing.T) {
	engine, layout := newEngine(t)
	for _, change := range []struct {
		name   string
		modify func([]byte) []byte
	}{
		{"truncated", func(blob []byte) []byte { return blob[:len(blob)-1] }},
		{"extended", func(blob []byte) []byte { return append(blob, 0) }},
	} {
		layer, descriptor := newStoredLayer(t, engine, fileTar(t, change.name, change.name))
		path := blobPath(layout, descriptor.Digest)
		blob, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, change.modify(blob), 0o644); err != nil {
			t.Fatal(err)
		}
		wantReadFails(t, change.name+" Compressed", layer.Compressed, ocicas.ErrSizeMismatch)
		wantReadFails(t, change.name+" Uncompressed", layer.Uncompressed, nil)
	}
}

// A DiffID that is not the tar's (a config that lies) is an error at the end of Uncompressed.
func TestStoredLayerWithAWrongDiffIDFailsOnUncompressed(t *testing.T) {
	engine, _ := newEngine(t)
	descriptor := storeLayer(t, engine, testTar(t))
	descriptor.DiffID = sha256Of([]byte("another tar")).String()
	layer, err := NewStoredLayer(engine, descriptor)
	if err != nil {
		t.Fatalf("NewStoredLayer: %v", err)
	}
	readAll(t, "Compressed", layer.Compressed)
	wantReadFails(t, "Uncompressed", layer.Uncompressed, ocicas.ErrDigestMismatch)
	if err := validate.Layer(layer); err == nil {
		t.Fatal("validate.Layer passed a layer with a wrong DiffID")
	}
}

func TestNewStoredLayerRefusesDescriptorsThatDoNotFitTheStore(t *testing.T) {
	engine, _ := newEngine(t)
	good := storeLayer(t, engine, testTar(t))
	uncompressed := storeLayer(t, engine, testTar(t), ocicas.WithCompression(ocicas.Uncompressed))
	missing := sha256Of([]byte("not stored")).String()
	for _, c := range []struct {
		name   string
		modify func(*ocicas.LayerDescriptor)
		want   error
	}{
		{"wrong size", func(d *ocicas.LayerDescriptor) { d.Size++ }, ocicas.ErrSizeMismatch},
		{"not stored", func(d *ocicas.LayerDescriptor) { d.Digest = missing }, ocicas.ErrNotFound},
		{"bad digest", func(d *ocicas.LayerDescriptor) { d.Digest = "sha256:xyz" }, nil},
		{"bad DiffID", func(d *ocicas.LayerDescriptor) { d.DiffID = "" }, nil},
		{"not a layer type", func(d *ocicas.LayerDescriptor) { d.MediaType = string(types.OCIManifestSchema1) }, ocicas.ErrUnsupportedMediaType},
		{"uncompressed with another DiffID", func(d *ocicas.LayerDescriptor) {
			*d = uncompressed
			d.DiffID = missing
		}, ocicas.ErrDigestMismatch},
	} {
		descriptor := good
		c.modify(&descriptor)
		layer, err := NewStoredLayer(engine, descriptor)
		if err == nil {
			t.Fatalf("%s: NewStoredLayer(%+v) = %v, want an error", c.name, descriptor, layer)
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Fatalf("%s: got error %v, want %v", c.name, err, c.want)
		}
	}
	// The uncompressed layer itself is fine, and is its own DiffID.
	layer, err := NewStoredLayer(engine, uncompressed)
	if err != nil {
		t.Fatalf("NewStoredLayer(uncompressed): %v", err)
	}
	digest, _ := layer.Digest()
	diffID, _ := layer.DiffID()
	if digest != diffID {
		t.Fatalf("uncompressed layer: Digest %v, DiffID %v", digest, diffID)
	}
}

// A zstd frame may ask for a window of up to 3.75 TB: one of 256 MiB, above libzstd's default
// limit of 128 MiB, is refused rather than allocated (the decoder's own default allows 512 MiB).
func TestStoredZstdLayerAskingForAHugeWindowIsRefused(t *testing.T) {
	engine, _ := newEngine(t)
	tarball := fileTar(t, "small", "small")
	// A frame by hand (RFC 8878): magic; no checksum, no content size; window descriptor
	// exponent 18 (2^(10+18) bytes); one last raw block holding the tar.
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 18 << 3}
	blockHeader := 1 | len(tarball)<<3
	frame = append(frame, byte(blockHeader), byte(blockHeader>>8), byte(blockHeader>>16))
	frame = append(frame, tarball...)
	digest, err := engine.PutBlob(frame)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := NewStoredLayer(engine, ocicas.LayerDescriptor{
		MediaType: string(types.OCILayerZStd), Digest: digest, Size: int64(len(frame)), DiffID: sha256Of(tarball).String(),
	})
	if err != nil {
		t.Fatalf("NewStoredLayer: %v", err)
	}
	wantReadFails(t, "Uncompressed", layer.Uncompressed, zstd.ErrWindowSizeExceeded)
	// The same frame is a valid one within the decoder's own limit.
	decoder, err := zstd.NewReader(bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	defer decoder.Close()
	if decoded, err := io.ReadAll(decoder); err != nil || !bytes.Equal(decoded, tarball) {
		t.Fatalf("decoding the frame with the default limit: %v", err)
	}
}
