// Drives go-containerregistry's stream.Layer over a tar file, as a user of that package would:
// drain Compressed(), then read Digest, DiffID and Size. Prints "bytes_out seconds".
// Usage: ggcr-stream FILE [LEVEL]
package main

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/stream"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ggcr-stream FILE [LEVEL]")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var opts []stream.LayerOption
	if len(os.Args) > 2 {
		level, err := strconv.Atoi(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		opts = append(opts, stream.WithCompressionLevel(level))
	} else {
		opts = append(opts, stream.WithCompressionLevel(gzip.DefaultCompression))
	}
	start := time.Now()
	layer := stream.NewLayer(f, opts...)
	rc, err := layer.Compressed()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := rc.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	size, err := layer.Size()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := layer.Digest(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := layer.DiffID(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%d %.3f\n", size, time.Since(start).Seconds())
}
