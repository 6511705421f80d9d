// Drives containerd's local content store as containerd's pull does: content.WriteBlob with the
// descriptor (size and digest) known up front, reading the data file (in the page cache) in
// 64 KiB reads; content.Copy gathers them into 1 MiB writes. Run by bench/ingest.rs. Prints
// "digest seconds" for the timed section: WriteBlob's open, copy and commit.
// Usage: containerd-ingest DATA_FILE STORE_DIR DIGEST
package main

import (
	"context"
	// go-digest computes only the algorithms a program links in.
	_ "crypto/sha256"
	"fmt"
	"os"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const chunk = 64 << 10

// chunkReader reads at most 64 KiB at a time, and hides os.File's WriteTo, which content.Copy
// would otherwise use (it copies through io.Copy's 32 KiB buffer).
type chunkReader struct{ file *os.File }

func (r chunkReader) Read(p []byte) (int, error) {
	return r.file.Read(p[:min(len(p), chunk)])
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: containerd-ingest DATA_FILE STORE_DIR DIGEST")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], digest.Digest(os.Args[3])); err != nil {
		fmt.Fprintln(os.Stderr, "containerd-ingest:", err)
		os.Exit(1)
	}
}

func run(dataFile, storeDir string, dgst digest.Digest) error {
	file, err := os.Open(dataFile)
	if err != nil {
		return err
	}
	defer file.Close()
	stat, err := file.Stat()
	if err != nil {
		return err
	}
	store, err := local.NewStore(storeDir)
	if err != nil {
		return err
	}
	ctx := context.Background()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Size: stat.Size(), Digest: dgst}
	start := time.Now()
	if err := content.WriteBlob(ctx, store, "bench", chunkReader{file}, desc); err != nil {
		return err
	}
	elapsed := time.Since(start)
	// WriteBlob verified size and digest at commit; Info confirms the blob is in the store.
	info, err := store.Info(ctx, dgst)
	if err != nil {
		return err
	}
	fmt.Printf("%s %.6f\n", info.Digest, elapsed.Seconds())
	return nil
}
