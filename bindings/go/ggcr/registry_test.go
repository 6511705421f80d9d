package ggcr

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// Needs Debian's docker-registry: CI installs it (.ci/run); without it the test fails, or
// skips when OCICAS_SKIP_PEERS=1.
func TestRemoteWriteLayerOfAStreamLayerReadsBackInGgcr(t *testing.T) {
	host, storage := startRegistry(t)
	repo, err := name.NewRepository(host+"/ocicas/stream", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tarball := testTar(t)
	layer := NewStreamLayer(t.Context(), bytes.NewReader(tarball))
	if err := remote.WriteLayer(repo, layer); err != nil {
		t.Fatalf("remote.WriteLayer: %v", err)
	}
	digest, err := layer.Digest()
	if err != nil {
		t.Fatalf("Digest after the upload: %v", err)
	}
	diffID, err := layer.DiffID()
	if err != nil || diffID != sha256Of(tarball) {
		t.Fatalf("DiffID after the upload = %v, %v; want %v", diffID, err, sha256Of(tarball))
	}

	if _, err := os.Stat(registryBlob(storage, digest)); err != nil {
		t.Fatalf("the registry does not hold the blob: %v", err)
	}

	pulled, err := remote.Layer(repo.Digest(digest.String()))
	if err != nil {
		t.Fatalf("remote.Layer: %v", err)
	}
	wantSameLayer(t, pulled, digest, diffID)
	if !bytes.Equal(readAll(t, "the pulled layer's Uncompressed", pulled.Uncompressed), tarball) {
		t.Fatal("the pulled layer is not the tar")
	}
	if err := validate.Layer(pulled); err != nil {
		t.Fatalf("validate.Layer of the pulled layer: %v", err)
	}
}

// A stream whose source fails midway is not committed as a blob: remote.WriteLayer fails, and
// the layer computes nothing.
func TestRemoteWriteLayerOfAFailingStreamFails(t *testing.T) {
	host, storage := startRegistry(t)
	repo, err := name.NewRepository(host+"/ocicas/failing", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	layer := NewStreamLayer(t.Context(), &failingSource{data: testTar(t), limit: 100 << 10, err: errors.New("disk gone")})
	if err := remote.WriteLayer(repo, layer); err == nil {
		t.Fatal("remote.WriteLayer of a failing stream succeeded")
	}
	wantNotComputed(t, layer)
	// registryBlob's path for any digest.
	blobs, err := filepath.Glob(filepath.Join(storage, "docker", "registry", "v2", "blobs", "*", "*", "*", "data"))
	if err != nil || len(blobs) != 0 {
		t.Fatalf("the registry holds blobs after a failed upload: %v, %v", blobs, err)
	}
}

// registryBlob is where distribution's filesystem storage keeps a committed blob.
func registryBlob(storage string, digest v1.Hash) string {
	return filepath.Join(storage, "docker", "registry", "v2", "blobs", digest.Algorithm, digest.Hex[:2], digest.Hex, "data")
}

// wantSameLayer fails unless layer has this digest and DiffID.
func wantSameLayer(t *testing.T, layer v1.Layer, digest, diffID v1.Hash) {
	t.Helper()
	if got, err := layer.Digest(); err != nil || got != digest {
		t.Fatalf("Digest = %v, %v; want %v", got, err, digest)
	}
	if got, err := layer.DiffID(); err != nil || got != diffID {
		t.Fatalf("DiffID = %v, %v; want %v", got, err, diffID)
	}
}

// An image with a stream layer and a stored layer, pushed by remote.Write: the manifest is
// made once the stream was uploaded, and the image pulled back validates.
func TestRemoteWriteOfAnImageWithOcicasLayers(t *testing.T) {
	host, _ := startRegistry(t)
	ref, err := name.NewTag(host+"/ocicas/image:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	engine, _ := newEngine(t)
	stored, _ := newStoredLayer(t, engine, testTar(t))
	streamed := NewStreamLayer(t.Context(), bytes.NewReader(fileTar(t, "streamed", "a file from the stream")))
	image, err := mutate.AppendLayers(empty.Image, stored, streamed)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, image); err != nil {
		t.Fatalf("remote.Write: %v", err)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("remote.Image: %v", err)
	}
	if err := validate.Image(pulled); err != nil {
		t.Fatalf("validate.Image of the pulled image: %v", err)
	}
	layers, err := pulled.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("the pulled image has %d layers (%v), want 2", len(layers), err)
	}
	for i, ours := range []v1.Layer{stored, streamed} {
		digest, _ := ours.Digest()
		diffID, _ := ours.DiffID()
		wantSameLayer(t, layers[i], digest, diffID)
	}
}
