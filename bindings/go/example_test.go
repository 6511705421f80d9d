package ocicas_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	ocicas "github.com/ocicas/ocicas/bindings/go"
)

// Open a layout (creating it), store a blob and read it back verified.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "ocicas-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	engine, err := ocicas.Open(filepath.Join(dir, "layout"), &ocicas.OpenOptions{Create: true})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()

	digest, err := engine.PutBlob([]byte("hello, ocicas"))
	if err != nil {
		log.Fatal(err)
	}
	data, err := engine.ReadBlob(digest, ocicas.NoLimit)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(digest)
	fmt.Println(string(data))

	_, err = engine.ReadBlob("sha256:"+strings.Repeat("0", 64), ocicas.NoLimit)
	fmt.Println(errors.Is(err, ocicas.ErrNotFound))
	// Output:
	// sha256:22c8e3a435f38096822528f9badbc4d9e0ae86319187ea6d4d86bf25b985ab21
	// hello, ocicas
	// true
}

// newExampleEngine opens a fresh layout in a temp dir; call the returned func when done.
func newExampleEngine() (*ocicas.Engine, func()) {
	dir, err := os.MkdirTemp("", "ocicas-example")
	if err != nil {
		log.Fatal(err)
	}
	engine, err := ocicas.Open(filepath.Join(dir, "layout"), &ocicas.OpenOptions{Create: true})
	if err != nil {
		log.Fatal(err)
	}
	return engine, func() {
		engine.Close()
		os.RemoveAll(dir)
	}
}

// Write a blob through a ref-named ingest, as containerd's content.Writer, and commit it
// with the size and digest it must have.
func ExampleEngine_Writer() {
	engine, done := newExampleEngine()
	defer done()

	content := "written through a Writer"
	expected := "sha256:6a2ed7bbc7ed0483db28f203c6389a1c3145dea4229f47cf653dfe1393864f9c"
	w, err := engine.Writer(context.Background(), "upload-1", &ocicas.WriterOptions{Size: int64(len(content))})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	if _, err := io.Copy(w, strings.NewReader(content)); err != nil {
		log.Fatal(err)
	}
	status, err := w.Status()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(status.Ref, status.Offset, "of", status.Total)

	_, err = w.Commit(context.Background(), int64(len(content)), "sha256:"+strings.Repeat("0", 64))
	fmt.Println(errors.Is(err, ocicas.ErrDigestMismatch))
	digest, err := w.Commit(context.Background(), int64(len(content)), expected, ocicas.WithLabels(map[string]string{"origin": "example"}))
	if err != nil {
		log.Fatal(err)
	}
	info, err := engine.Info(digest)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.Size, info.Labels["origin"])
	// Output:
	// upload-1 24 of 24
	// true
	// 24 example
}

// Stream a layer as go-containerregistry's stream.Layer: the tar is read once while its
// compressed bytes are read; digest, DiffID and size are known at the end.
func ExampleNewLayer() {
	tar := strings.NewReader("example layer tar")
	layer := ocicas.NewLayer(context.Background(), tar, ocicas.WithCompressionLevel(9))
	_, err := layer.Digest()
	fmt.Println(errors.Is(err, ocicas.ErrNotComputed))

	compressed, err := layer.Compressed()
	if err != nil {
		log.Fatal(err)
	}
	hash := sha256.New()
	if _, err := io.Copy(hash, compressed); err != nil {
		log.Fatal(err)
	}
	if err := compressed.Close(); err != nil {
		log.Fatal(err)
	}

	digest, err := layer.Digest()
	if err != nil {
		log.Fatal(err)
	}
	diffID, err := layer.DiffID()
	if err != nil {
		log.Fatal(err)
	}
	mediaType, err := layer.MediaType()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(digest == fmt.Sprintf("sha256:%x", hash.Sum(nil)))
	fmt.Println(diffID)
	fmt.Println(mediaType)
	_, err = layer.Compressed()
	fmt.Println(errors.Is(err, ocicas.ErrConsumed))
	// Output:
	// true
	// true
	// sha256:720bddf144f9719f0e72e3f7f75c37577c8f7d6d23f087ca78ca0bd254244439
	// application/vnd.oci.image.layer.v1.tar+gzip
	// true
}

// Store a layer as its tar is written, then make an image of it under a tag.
func ExampleEngine_NewLayerWriter() {
	engine, done := newExampleEngine()
	defer done()

	w, err := engine.NewLayerWriter(ocicas.WithCompression(ocicas.Zstd))
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	if _, err := io.Copy(w, strings.NewReader("example layer tar")); err != nil {
		log.Fatal(err)
	}
	layer, err := w.Commit()
	if err != nil {
		log.Fatal(err)
	}
	manifest, err := engine.AppendLayer("example.com/app:1.0", layer)
	if err != nil {
		log.Fatal(err)
	}
	tagged, err := engine.GetRef("example.com/app:1.0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(layer.MediaType)
	fmt.Println(layer.DiffID)
	fmt.Println(tagged.Digest == manifest.Digest, tagged.MediaType)
	// Output:
	// application/vnd.oci.image.layer.v1.tar+zstd
	// sha256:720bddf144f9719f0e72e3f7f75c37577c8f7d6d23f087ca78ca0bd254244439
	// true application/vnd.oci.image.manifest.v1+json
}

// GC removes what no tag, lease or ingest reaches.
func ExampleEngine_GC() {
	engine, done := newExampleEngine()
	defer done()

	layer, err := engine.NewLayerWriter()
	if err != nil {
		log.Fatal(err)
	}
	defer layer.Close()
	layer.Write([]byte("kept layer"))
	kept, err := layer.Commit()
	if err != nil {
		log.Fatal(err)
	}
	if _, err := engine.AppendLayer("kept", kept); err != nil {
		log.Fatal(err)
	}
	if _, err := engine.PutBlob([]byte("unreferenced")); err != nil {
		log.Fatal(err)
	}
	// GC spares blobs committed within the last second: a writer may be about to reference them.
	time.Sleep(1500 * time.Millisecond)

	report, err := engine.GC(context.Background(), nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("removed", report.BlobsRemoved, "blob of", report.BytesRemoved, "bytes; kept", report.BlobsKept)
	// Output:
	// removed 1 blob of 12 bytes; kept 3
}

// Export a tagged image as a docker-archive (what docker load reads) and import it into
// another layout from a stream.
func ExampleEngine_ExportArchive() {
	source, doneSource := newExampleEngine()
	defer doneSource()
	w, err := source.NewLayerWriter()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("example layer tar"))
	layer, err := w.Commit()
	if err != nil {
		log.Fatal(err)
	}
	if _, err := source.AppendLayer("example.com/app:1.0", layer); err != nil {
		log.Fatal(err)
	}

	var archive bytes.Buffer
	if err := source.ExportArchive(context.Background(), &archive, []string{"example.com/app:1.0"}, nil); err != nil {
		log.Fatal(err)
	}

	target, doneTarget := newExampleEngine()
	defer doneTarget()
	images, err := target.ImportArchive(context.Background(), &archive, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, image := range images {
		fmt.Println(image.RepoTags, image.Refs, image.Manifest.MediaType)
	}
	// Output:
	// [example.com/app:1.0] [example.com/app:1.0] application/vnd.oci.image.manifest.v1+json
}
