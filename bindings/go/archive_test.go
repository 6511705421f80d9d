package ocicas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
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
	if err := engine.ExportArchive(t.Context(), &archive, []string{ref}, &ExportOptions{Format: format}); err != nil {
		t.Fatal(err)
	}
	return engine, manifest, archive.Bytes()
}

func configDigest(t *testing.T, engine *Engine, manifest Descriptor) string {
	t.Helper()
	document, err := engine.ReadBlob(manifest.Digest, NoLimit)
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
		images, err := target.ImportArchive(context.Background(), bytes.NewReader(archive), nil)
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
		images, err = renamed.ImportArchiveFile(context.Background(), file, &ImportOptions{Tag: "example.com/app:1.0", RefName: "renamed"})
		if err != nil || len(images) != 1 || !slices.Equal(images[0].Refs, []string{"renamed"}) {
			t.Fatalf("format %d: from a file: %+v, %v", format, images, err)
		}
	}
}

func TestExportWithSeveralRepoTagsAndImportByTagOrIndex(t *testing.T) {
	engine := newEngine(t)
	if _, err := engine.AppendLayer("local", writeLayer(t, engine, []byte("tar"))); err != nil {
		t.Fatal(err)
	}
	tags := []string{"registry.example/local:v2", "registry.example/local:latest"}
	var archive bytes.Buffer
	err := engine.ExportArchive(t.Context(), &archive, []string{"local"}, &ExportOptions{RepoTags: [][]string{tags}})
	if err != nil {
		t.Fatal(err)
	}
	images, err := newEngine(t).ImportArchive(context.Background(), bytes.NewReader(archive.Bytes()), nil)
	if err != nil || len(images) != 1 || !slices.Equal(images[0].RepoTags, tags) {
		t.Fatalf("imported %+v, %v", images, err)
	}
	// A tag matches as docker normalizes it; an index picks the image at that position.
	byTag, err := newEngine(t).ImportArchive(context.Background(), bytes.NewReader(archive.Bytes()), &ImportOptions{Tag: "registry.example/local"})
	if err != nil || len(byTag) != 1 || byTag[0].Manifest.Digest != images[0].Manifest.Digest {
		t.Fatalf("by tag: %+v, %v", byTag, err)
	}
	zero, one := 0, 1
	byIndex, err := newEngine(t).ImportArchive(context.Background(), bytes.NewReader(archive.Bytes()), &ImportOptions{Index: &zero, RefName: "first"})
	if err != nil || len(byIndex) != 1 || !slices.Equal(byIndex[0].Refs, []string{"first"}) {
		t.Fatalf("by index: %+v, %v", byIndex, err)
	}
	_, err = newEngine(t).ImportArchive(context.Background(), bytes.NewReader(archive.Bytes()), &ImportOptions{Index: &one})
	wantErr(t, err, ErrNotFound)

	wantErr(t, engine.ExportArchive(t.Context(), &archive, []string{"local"}, &ExportOptions{RepoTags: [][]string{}}), ErrInvalidArgument)
	wantErr(t, engine.ExportArchive(t.Context(), &archive, []string{"local"}, &ExportOptions{RepoTags: [][]string{{"no-tag"}}}), ErrInvalidArgument)
	wantErr(t, engine.ExportArchive(t.Context(), &archive, []string{"absent"}, nil), ErrNotFound)
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestArchiveErrors(t *testing.T) {
	engine := newEngine(t)
	_, err := engine.ImportArchive(context.Background(), strings.NewReader(strings.Repeat("not a tar ", 100)), nil)
	wantErr(t, err, ErrInvalidImage)
	_, err = engine.ImportArchiveFile(context.Background(), filepath.Join(t.TempDir(), "absent.tar"), nil)
	if err == nil {
		t.Fatal("importing an absent file succeeded")
	}
	broken := errors.New("network down")
	_, err = engine.ImportArchive(context.Background(), &failingReader{left: 10, err: broken}, nil)
	if !errors.Is(err, broken) {
		t.Fatalf("import from a failing reader: %v", err)
	}
	if _, err := engine.AppendLayer("app", writeLayer(t, engine, []byte("tar"))); err != nil {
		t.Fatal(err)
	}
	full := errors.New("disk full")
	err = engine.ExportArchive(t.Context(), failingWriter{full}, []string{"app"}, nil)
	if !errors.Is(err, ErrIO) || !errors.Is(err, full) {
		t.Fatalf("export to a failing writer: %v", err)
	}
}

func TestArchiveReaderAndWriterCopyAnArchiveImageByImage(t *testing.T) {
	engine, _, archive := exportImage(t, "example.com/app:1.0", ArchiveLegacy)
	file := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(file, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile, err := engine.OpenArchiveFile(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fromFile.Close()
	fromStream, err := engine.OpenArchive(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	defer fromStream.Close()
	zero := 0
	for _, reader := range []*ArchiveReader{fromFile, fromStream} {
		items := reader.Items()
		if len(items) != 1 || !slices.Equal(items[0].RepoTags, []string{"example.com/app:1.0"}) || !strings.HasSuffix(items[0].Config, ".json") || len(items[0].Layers) != 1 {
			t.Fatalf("items %+v", items)
		}
		var manifest struct {
			Config Descriptor
			Layers []Descriptor
		}
		bytes1, err := reader.Manifest(ArchiveChoice{Tag: "example.com/app:1.0"}, ManifestOCI)
		if err != nil {
			t.Fatal(err)
		}
		bytes2, err := reader.Manifest(ArchiveChoice{Index: &zero}, ManifestOCI)
		if err != nil || !bytes.Equal(bytes1, bytes2) {
			t.Fatalf("by tag and by index differ: %v", err)
		}
		if err := json.Unmarshal(bytes1, &manifest); err != nil || len(manifest.Layers) != 1 {
			t.Fatalf("manifest %s: %v", bytes1, err)
		}

		var copied bytes.Buffer
		writer, err := NewArchiveWriter(&copied, ArchiveLegacy)
		if err != nil {
			t.Fatal(err)
		}
		for _, blob := range []struct {
			kind ArchiveBlobKind
			desc Descriptor
		}{{ArchiveConfig, manifest.Config}, {ArchiveLayer, manifest.Layers[0]}} {
			var data bytes.Buffer
			size, err := reader.ReadBlob(ArchiveChoice{}, blob.desc.Digest, &data)
			if err != nil || size != blob.desc.Size || int64(data.Len()) != size {
				t.Fatalf("blob %s: size %d, %d bytes, %v", blob.desc.Digest, size, data.Len(), err)
			}
			if err := writer.PutBlob(blob.kind, blob.desc.Digest, size, &data); err != nil {
				t.Fatal(err)
			}
			if has, err := writer.HasBlob(blob.desc.Digest); err != nil || !has {
				t.Fatalf("HasBlob %v, %v", has, err)
			}
		}
		tags := []string{"example.com/copy:1", "example.com/copy:latest"}
		if err := writer.AddImage(manifest.Config.Digest, []string{manifest.Layers[0].Digest}, tags); err != nil {
			t.Fatal(err)
		}
		if err := writer.Commit(); err != nil {
			t.Fatal(err)
		}
		writer.Close()
		writer.Close()
		images, err := newEngine(t).ImportArchive(context.Background(), &copied, nil)
		if err != nil || len(images) != 1 || !slices.Equal(images[0].Refs, tags) {
			t.Fatalf("imported the copy: %+v, %v", images, err)
		}

		_, err = reader.ReadBlob(ArchiveChoice{}, "sha256:"+strings.Repeat("0", 64), io.Discard)
		wantErr(t, err, ErrNotFound)
		one := 1
		_, err = reader.Manifest(ArchiveChoice{Index: &one}, ManifestDocker)
		wantErr(t, err, ErrNotFound)
	}
}

func TestArchiveWriterRefusesWrongBytesAndStaysFailed(t *testing.T) {
	writer, err := NewArchiveWriter(io.Discard, ArchiveOCI)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	digest := "sha256:" + strings.Repeat("ab", 32)
	wantErr(t, writer.PutBlob(ArchiveLayer, digest, 3, strings.NewReader("abc")), ErrDigestMismatch)
	wantErr(t, writer.Commit(), ErrInvalidArgument)
	full := errors.New("disk full")
	failing, err := NewArchiveWriter(failingWriter{full}, ArchiveLegacy)
	if err != nil {
		t.Fatal(err)
	}
	defer failing.Close()
	layer := []byte(strings.Repeat("x", 4096))
	err = failing.PutBlob(ArchiveLayer, sha256Digest(layer), int64(len(layer)), bytes.NewReader(layer))
	if !errors.Is(err, ErrIO) || !errors.Is(err, full) {
		t.Fatalf("a failing sink: %v", err)
	}
}

// cancellingReader gives its bytes and cancels the import's context after the first `after`.
type cancellingReader struct {
	source io.Reader
	after  int
	cancel context.CancelFunc
}

func (r *cancellingReader) Read(p []byte) (int, error) {
	if r.after <= 0 {
		r.cancel()
	}
	p = p[:min(len(p), max(r.after, 1))]
	n, err := r.source.Read(p)
	r.after -= n
	return n, err
}

func TestACancelledImportReportsTheCancellationAndTagsNothing(t *testing.T) {
	_, _, archive := exportImage(t, "app", ArchiveLegacy)
	engine := newEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	source := &cancellingReader{source: bytes.NewReader(archive), after: len(archive) / 2, cancel: cancel}
	_, err := engine.ImportArchive(ctx, source, nil)
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "truncated") {
		t.Fatalf("import stopped by a cancelled context: %v", err)
	}
	if refs, err := engine.ListRefs(); err != nil || len(refs) != 0 {
		t.Fatalf("refs after a cancelled import: %v, %v", refs, err)
	}
	// A context already done stops an import before it reads anything.
	path := filepath.Join(t.TempDir(), "app.tar")
	if err := os.WriteFile(path, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := engine.ImportArchiveFile(ctx, path, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("import of a file with a done context: %v", err)
	}
}
