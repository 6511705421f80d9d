// The README's Go example: open a layout, store a blob, stream a layer into it, tag an image.
package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	ocicas "github.com/ocicas/ocicas/bindings/go"
)

func main() {
	dir, err := os.MkdirTemp("", "ocicas-readme")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	engine, err := ocicas.Open(dir+"/layout", &ocicas.OpenOptions{Create: true})
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
	fmt.Printf("%s holds %q\n", digest, data)

	layer, err := engine.NewLayerWriter(ocicas.WithCompressionLevel(6))
	if err != nil {
		log.Fatal(err)
	}
	defer layer.Close()
	if _, err := io.Copy(layer, strings.NewReader("a tar stream")); err != nil {
		log.Fatal(err)
	}
	stored, err := layer.Commit()
	if err != nil {
		log.Fatal(err)
	}
	manifest, err := engine.AppendLayer("example.com/app:1.0", stored)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("tagged", manifest.MediaType, "with layer", stored.DiffID)
}
