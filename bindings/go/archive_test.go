package ocicas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// exportImage builds a one-layer image tagged ref and exports it.
func exportImage(t *testing.T, ref string, format ArchiveFormat) (*Engine, Descriptor, []byte) {
	t.Helper()
	engine := newEngine(t)
	manifest, err := engine.AppendLayer(ref, writeLayer(t, engine, []byte(strings.Repeat("archived ", 1000))))
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := engine.ExportArchive(&archive, []string{ref}, &ExportOptions{Format: format}); err != nil {
		t.Fatal(err)
	}
	return engine, manifest, archive.Bytes()
}

func configDigest(t *testing.T, engine *Engine, manifest Descriptor) string {
	t.Helper()
	document, err := engine.GetBlob(manifest.Digest, 0)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct{ Config Descriptor }
	if err := json.Unmarshal(document, &parsed); err != nil {
		t.Fatal(err)
	}
	return parsed.Config.Digest
}

func TestExportThenImportFromAStreamAndAFile(t *testing.T) {
	for _, format := range []ArchiveFormat{ArchiveLegacy, ArchiveOCI} {
		source, manifest, archive := exportImage(t, "example.com/app:1.0", format)
		target := newEngine(t)
		images, err := target.ImportArchive(bytes.NewReader(archive), nil)
		if err != nil {
			t.Fatalf("format %d: %v", format, err)
		}
		if len(images) != 1 || !slices.Equal(images[0].RepoTags, []string{"example.com/app:1.0"}) ||
			images[0].Manifest.Digest == "" || len(images[0].Refs) != 1 {
			t.Fatalf("format %d: imported %+v", format, images)
		}
		ref, err := target.GetRef(images[0].Refs[0])
		if err != nil || ref.Digest != images[0].Manifest.Digest {
			t.Fatalf("format %d: ref %+v, %v", format, ref, err)
		}
		// The image ID (the config's digest) survives; the layers come back uncompressed.
		if got, want := configDigest(t, target, images[0].Manifest), configDigest(t, source, manifest); got != want {
			t.Fatalf("format %d: config %s, want %s", format, got, want)
		}
		if report, err := target.Fsck(); err != nil || !report.Sound {
			t.Fatalf("format %d: fsck %+v, %v", format, report, err)
		}

		file := filepath.Join(t.TempDir(), "image.tar")
		if err := os.WriteFile(file, archive, 0o644); err != nil {
			t.Fatal(err)
		}
		renamed := newEngine(t)
		images, err = renamed.ImportArchiveFile(file, &ImportOptions{Tag: "example.com/app:1.0", RefName: "renamed"})
		if err != nil || len(images) != 1 || !slices.Equal(images[0].Refs, []string{"renamed"}) {
			t.Fatalf("format %d: from a file: %+v, %v", format, images, err)
		}
	}
}

func TestExportWithRepoTags(t *testing.T) {
	engine := newEngine(t)
	if _, err := engine.AppendLayer("local", writeLayer(t, engine, []byte("tar"))); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	err := engine.ExportArchive(&archive, []string{"local"}, &ExportOptions{RepoTags: []string{"registry.example/local:v2"}})
	if err != nil {
		t.Fatal(err)
	}
	images, err := newEngine(t).ImportArchive(&archive, nil)
	if err != nil || len(images) != 1 || !slices.Equal(images[0].RepoTags, []string{"registry.example/local:v2"}) {
		t.Fatalf("imported %+v, %v", images, err)
	}
	wantErr(t, engine.ExportArchive(&archive, []string{"local"}, &ExportOptions{RepoTags: []string{}}), ErrInvalidArgument)
	wantErr(t, engine.ExportArchive(&archive, []string{"absent"}, nil), ErrNotFound)
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestArchiveErrors(t *testing.T) {
	engine := newEngine(t)
	_, err := engine.ImportArchive(strings.NewReader(strings.Repeat("not a tar ", 100)), nil)
	wantErr(t, err, ErrInvalidImage)
	_, err = engine.ImportArchiveFile(filepath.Join(t.TempDir(), "absent.tar"), nil)
	if err == nil {
		t.Fatal("importing an absent file succeeded")
	}
	broken := errors.New("network down")
	_, err = engine.ImportArchive(&failingReader{left: 10, err: broken}, nil)
	if !errors.Is(err, broken) {
		t.Fatalf("import from a failing reader: %v", err)
	}
	if _, err := engine.AppendLayer("app", writeLayer(t, engine, []byte("tar"))); err != nil {
		t.Fatal(err)
	}
	full := errors.New("disk full")
	err = engine.ExportArchive(failingWriter{full}, []string{"app"}, nil)
	if !errors.Is(err, ErrIO) || !errors.Is(err, full) {
		t.Fatalf("export to a failing writer: %v", err)
	}
}
