package ocicas

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// umoci runs umoci with args, failing the test when it fails.
func umoci(t *testing.T, program string, args ...string) {
	t.Helper()
	if out, err := exec.Command(program, args...).CombinedOutput(); err != nil {
		t.Fatalf("umoci %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The Go counterpart of c-tests/consumer/image_consumer.c: what a runtime does with an image
// umoci built, through typed results only.
func TestResolveImageBuiltByUmociMatchesItsUnpackedTree(t *testing.T) {
	program, err := exec.LookPath("umoci")
	if err != nil {
		t.Skip("umoci is not installed")
	}
	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	for name, contents := range map[string]string{"etc/greeting": "hello\n", "usr/bin/tool": strings.Repeat("x", 70000)} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(files, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(files, name), []byte(contents), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	layout, image := filepath.Join(dir, "layout"), filepath.Join(dir, "layout")+":app"
	umoci(t, program, "init", "--layout", layout)
	umoci(t, program, "new", "--image", image)
	umoci(t, program, "config", "--image", image, "--config.env", "FOO=bar", "--config.cmd", "/bin/sh")
	umoci(t, program, "insert", "--rootless", "--image", image, files, "/")
	umoci(t, program, "insert", "--rootless", "--image", image, filepath.Join(files, "etc"), "/opt")
	rootfs := filepath.Join(dir, "bundle", "rootfs")
	umoci(t, program, "unpack", "--rootless", "--image", image, filepath.Join(dir, "bundle"))

	e, err := Open(layout, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer e.Close()
	scratch := newEngine(t)
	// umoci names the platform as Go does.
	img, err := e.ResolveImage("app", &Platform{OS: "linux", Architecture: runtime.GOARCH})
	if err != nil {
		t.Fatalf("ResolveImage: %v", err)
	}
	if !slices.Contains(img.Env, "FOO=bar") || !slices.Equal(img.Cmd, []string{"/bin/sh"}) || len(img.Layers) != 2 {
		t.Fatalf("image: %+v", img)
	}
	var seen []string
	for i := range img.Layers {
		tarBytes, digest := readLayerWithDigester(t, e, img.Layer(i))
		if digest != img.DiffIDs[i] {
			t.Fatalf("layer %d: the digester gives %s, the DiffID is %s", i, digest, img.DiffIDs[i])
		}
		seen = append(seen, checkTarAgainstTree(t, tarBytes, rootfs)...)
		commitWithDigest(t, scratch, tarBytes, digest)
	}
	var unpacked []string
	err = filepath.WalkDir(rootfs, func(path string, _ fs.DirEntry, err error) error {
		relative, _ := filepath.Rel(rootfs, path)
		unpacked = append(unpacked, relative)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(seen)
	slices.Sort(unpacked)
	if seen = slices.Compact(seen); !slices.Equal(seen, unpacked) {
		t.Fatalf("the layers hold %v, umoci unpacked %v", seen, unpacked)
	}
	checkWalkOfUmociImage(t, e, img)
}

// checkWalkOfUmociImage walks umoci's "app": its manifest, then its config and layers, each
// found; the config read by the walk's descriptor is the one the resolved image has.
func checkWalkOfUmociImage(t *testing.T, e *Engine, img *Image) {
	t.Helper()
	var blobs []string
	err := e.WalkImage(context.Background(), "app", func(step WalkStep) error {
		if step.Err != nil {
			return step.Err
		}
		blobs = append(blobs, step.Descriptor.Digest)
		if step.Descriptor.Digest != img.Config.Digest {
			return nil
		}
		doc, err := e.ReadDocument(step.Descriptor)
		if err != nil {
			return err
		}
		if !slices.Equal(doc.ImageConfig.Env, img.Env) || !slices.Equal(doc.ImageConfig.DiffIDs, img.DiffIDs) {
			t.Errorf("config read %+v, resolved %+v", doc.ImageConfig, img.ImageConfig)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WalkImage: %v", err)
	}
	want := []string{img.Manifest.Digest, img.Config.Digest}
	for _, layer := range img.Layers {
		want = append(want, layer.Digest)
	}
	slices.Sort(want)
	slices.Sort(blobs)
	if !slices.Equal(blobs, want) {
		t.Fatalf("the walk reached %v, want the manifest, config and layers %v", blobs, want)
	}
}

// readLayerWithDigester reads the layer's tar, hashing it with a Digester on the way.
func readLayerWithDigester(t *testing.T, e *Engine, layer LayerDescriptor) ([]byte, string) {
	t.Helper()
	digester, err := NewDigester("sha256")
	if err != nil {
		t.Fatal(err)
	}
	defer digester.Close()
	var tarBytes bytes.Buffer
	reader, err := e.OpenLayer(layer)
	if err != nil {
		t.Fatalf("OpenLayer: %v", err)
	}
	defer reader.Close()
	if _, err := io.Copy(io.MultiWriter(&tarBytes, digester), reader); err != nil {
		t.Fatalf("reading layer %s: %v", layer.Digest, err)
	}
	digest, err := digester.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return tarBytes.Bytes(), digest
}

// checkTarAgainstTree checks each entry of the tar against the same path under rootfs and
// returns the entries' paths, relative and clean ("." for the root).
func checkTarAgainstTree(t *testing.T, tarBytes []byte, rootfs string) []string {
	t.Helper()
	var paths []string
	reader := tar.NewReader(bytes.NewReader(tarBytes))
	for {
		header, err := reader.Next()
		if errors.Is(err, io.EOF) {
			return paths
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		name := filepath.Clean(strings.TrimPrefix(header.Name, "/"))
		paths = append(paths, name)
		path := filepath.Join(rootfs, name)
		info, err := os.Lstat(path)
		if err != nil {
			t.Fatalf("%s is in the layer but not unpacked: %v", name, err)
		}
		switch header.Typeflag {
		case tar.TypeReg:
			want, _ := io.ReadAll(reader)
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: unpacked contents differ from the layer's (%v)", name, err)
			}
		case tar.TypeSymlink:
			if target, err := os.Readlink(path); err != nil || target != header.Linkname {
				t.Fatalf("%s: links to %q, not %q (%v)", name, target, header.Linkname, err)
			}
		case tar.TypeDir:
			if !info.IsDir() {
				t.Fatalf("%s: not a directory", name)
			}
		}
	}
}

// commitWithDigest writes the bytes through a writer and commits them expecting digest.
func commitWithDigest(t *testing.T, e *Engine, data []byte, digest string) {
	t.Helper()
	ctx := context.Background()
	writer, err := e.Writer(ctx, digest, &WriterOptions{Size: int64(len(data)), Digest: digest})
	if err != nil {
		t.Fatalf("Writer: %v", err)
	}
	defer writer.Close()
	if _, err := writer.Write(data); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if committed, err := writer.Commit(ctx, int64(len(data)), digest); err != nil || committed != digest {
		t.Fatalf("Commit: %s, %v", committed, err)
	}
}
