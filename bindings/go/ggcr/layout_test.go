package ggcr

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// An image of a stored ocicas layer and a streaming one, made by mutate.AppendLayers and
// written by layout.Write: ocicas fsck --deep finds it sound and umoci unpacks it to the files
// of both tars. Needs umoci (CI installs it; OCICAS_SKIP_PEERS=1 skips) and the ocicas CLI
// ($OCICAS_CLI).
func TestLayoutWriteOfAnImageWithOcicasLayersPassesFsckAndUmoci(t *testing.T) {
	umoci := requirePeer(t, "umoci", "umoci")
	cli := ocicasCLI(t)
	engine, _ := newEngine(t)
	stored, _ := newStoredLayer(t, engine, testTar(t))
	streamedBody := "a file from the stream\n"
	streamed := NewStreamLayer(t.Context(), bytes.NewReader(fileTar(t, "streamed.txt", streamedBody)))

	// umoci unpacks OCI images only; empty.Image is a Docker one.
	oci := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	base, err := mutate.ConfigFile(oci, &v1.ConfigFile{
		OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Cmd: []string{"/bin/true"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	image, err := mutate.AppendLayers(base, stored, streamed)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ggcr-layout")
	path, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatalf("layout.Write: %v", err)
	}
	if err := path.AppendImage(image, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": "v1",
	})); err != nil {
		t.Fatalf("AppendImage: %v", err)
	}
	// Read back by ggcr from the layout (the image in memory has a consumed stream layer).
	index, err := path.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	written, err := index.Image(manifest)
	if err != nil {
		t.Fatalf("the written image %s: %v", manifest, err)
	}
	if err := validate.Image(written); err != nil {
		t.Fatalf("validate.Image of the written image: %v", err)
	}

	out := run(t, cli, "fsck", "--deep", dir)
	if !strings.HasPrefix(out, "sound: ") || strings.Contains(out, "note: ") {
		t.Fatalf("ocicas fsck --deep %s:\n%s", dir, out)
	}

	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, umoci, "unpack", "--rootless", "--image", dir+":v1", bundle)
	rootfs := filepath.Join(bundle, "rootfs")
	wantFile(t, filepath.Join(rootfs, "streamed.txt"), []byte(streamedBody))
	text, random := testFiles()
	wantFile(t, filepath.Join(rootfs, "etc", "text"), text)
	wantFile(t, filepath.Join(rootfs, "random.bin"), random)
	if target, err := os.Readlink(filepath.Join(rootfs, "link")); err != nil || target != "etc/text" {
		t.Fatalf("rootfs/link = %q, %v; want a symlink to etc/text", target, err)
	}
}

func wantFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d in the layer", path, len(got), len(want))
	}
}
