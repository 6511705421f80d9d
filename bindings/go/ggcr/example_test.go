package ggcr_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ocicas "github.com/ocicas/ocicas/bindings/go"
	"github.com/ocicas/ocicas/bindings/go/ggcr"
)

// The README's example: a layer stored in ocicas and a layer streamed through ocicas's
// compressor, in an image that go-containerregistry writes (layout.Write here, remote.Write
// the same way).
func Example() {
	dir, err := os.MkdirTemp("", "ggcr-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	engine, err := ocicas.Open(filepath.Join(dir, "store"), &ocicas.OpenOptions{Create: true})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()

	writer, err := engine.NewLayerWriter()
	if err != nil {
		log.Fatal(err)
	}
	defer writer.Close()
	if _, err := writer.Write(oneFileTar("stored.txt", "kept in the store\n")); err != nil {
		log.Fatal(err)
	}
	descriptor, err := writer.Commit()
	if err != nil {
		log.Fatal(err)
	}
	stored, err := ggcr.NewStoredLayer(engine, descriptor)
	if err != nil {
		log.Fatal(err)
	}
	streamed := ggcr.NewStreamLayer(context.Background(), bytes.NewReader(oneFileTar("streamed.txt", "read once\n")))

	image, err := mutate.AppendLayers(empty.Image, stored, streamed)
	if err != nil {
		log.Fatal(err)
	}
	path, err := layout.Write(filepath.Join(dir, "image"), empty.Index)
	if err != nil {
		log.Fatal(err)
	}
	if err := path.AppendImage(image); err != nil {
		log.Fatal(err)
	}
	diffID, err := streamed.DiffID() // known once the stream was written
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("streamed layer", diffID) // the tar's sha256, as sha256sum gives it
	// Output: streamed layer sha256:0e357724d4b2e4fe4691e8c712c1a9b7b5f4ab863f1130f9b10cbdefc1b453ff
}

// oneFileTar is a tar of one file, with a fixed modification time so its DiffID is too.
func oneFileTar(name, body string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	header := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1700000000, 0)}
	if err := tw.WriteHeader(header); err != nil {
		log.Fatal(err)
	}
	if _, err := tw.Write([]byte(body)); err != nil {
		log.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		log.Fatal(err)
	}
	return buf.Bytes()
}
