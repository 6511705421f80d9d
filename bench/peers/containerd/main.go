// Compares containerd's local content store with the ocicas content.Store adapter
// (bindings/go/containerd), both driven by the same content.WriteBlob call as containerd's
// pull drives them: a 1 GiB blob read from a file in the page cache, then 10,000 blobs of
// 4 KiB from memory, each store fresh for each run, runs interleaved. Prints the median
// throughput of each and the ratio ocicas / local (medians of 5 runs for the large blob, of 3
// for the small ones, which take about a minute a run on a virtual disk).
//
// Usage: containerd [-dir DIR] [-size BYTES] [-blobs N] [-blob-size BYTES] [-runs N] [-small-runs N]
// with the ocicas library found as in c-tests/consumer/run.sh (PKG_CONFIG_PATH, LD_LIBRARY_PATH).
package main

import (
	"bytes"
	"context"
	// go-digest computes only the algorithms a program links in.
	_ "crypto/sha256"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/log"
	ocicas "github.com/ocicas/ocicas/bindings/go"
	ocicascontainerd "github.com/ocicas/ocicas/bindings/go/containerd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// chunk is the read size from the data file, as containerd's pull reads a response body.
const chunk = 64 << 10

// chunkReader reads at most 64 KiB at a time, and hides os.File's WriteTo, which content.Copy
// would otherwise use (it copies through io.Copy's 32 KiB buffer).
type chunkReader struct{ file *os.File }

func (r chunkReader) Read(p []byte) (int, error) {
	return r.file.Read(p[:min(len(p), chunk)])
}

// A store under test: opened fresh in an empty directory, closed after each run.
type storeKind struct {
	name string
	open func(dir string) (content.Store, func() error, error)
}

var kinds = []storeKind{
	{"containerd local", func(dir string) (content.Store, func() error, error) {
		store, err := local.NewStore(dir)
		return store, func() error { return nil }, err
	}},
	{"ocicas adapter", func(dir string) (content.Store, func() error, error) {
		engine, err := ocicas.Open(dir, &ocicas.OpenOptions{Create: true})
		if err != nil {
			return nil, nil, err
		}
		return ocicascontainerd.NewStore(engine), engine.Close, nil
	}},
}

func main() {
	dir := flag.String("dir", os.TempDir(), "where the data file and the stores go (a disk, not tmpfs)")
	size := flag.Int64("size", 1<<30, "size of the large blob")
	blobs := flag.Int("blobs", 10000, "number of small blobs")
	blobSize := flag.Int("blob-size", 4096, "size of each small blob")
	runs := flag.Int("runs", 5, "runs of the large ingest per store (the median is shown)")
	smallRuns := flag.Int("small-runs", 3, "runs of the small blobs per store")
	flag.Parse()
	// The local store warns that this file system has no fs-verity, at every open.
	if err := log.SetLevel("error"); err != nil {
		panic(err)
	}
	if err := run(*dir, *size, *blobs, *blobSize, *runs, *smallRuns); err != nil {
		fmt.Fprintln(os.Stderr, "containerd bench:", err)
		os.Exit(1)
	}
}

func run(dir string, size int64, blobs, blobSize, runs, smallRuns int) error {
	work, err := os.MkdirTemp(dir, "ocicas-bench-containerd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dataPath := filepath.Join(work, "data")
	large, err := writeData(dataPath, size)
	if err != nil {
		return err
	}
	small := smallBlobs(blobs, blobSize)

	largeRates := make([][]float64, len(kinds))
	smallRates := make([][]float64, len(kinds))
	for i := range max(runs, smallRuns) {
		for k, kind := range kinds {
			if i < runs {
				seconds, err := timeStore(kind, filepath.Join(work, "store"), func(ctx context.Context, store content.Store) error {
					return ingestFile(ctx, store, dataPath, large)
				})
				if err != nil {
					return fmt.Errorf("%s, large blob: %w", kind.name, err)
				}
				largeRates[k] = append(largeRates[k], float64(size)/(1<<20)/seconds)
			}
			if i < smallRuns {
				seconds, err := timeStore(kind, filepath.Join(work, "store"), func(ctx context.Context, store content.Store) error {
					return ingestBlobs(ctx, store, small)
				})
				if err != nil {
					return fmt.Errorf("%s, small blobs: %w", kind.name, err)
				}
				smallRates[k] = append(smallRates[k], float64(len(small))/seconds)
			}
		}
	}

	fmt.Printf("%-28s %18s %18s %8s\n", "content.WriteBlob of", kinds[0].name, kinds[1].name, "ratio")
	report := func(what, unit string, rates [][]float64, n int) {
		local, ours := median(rates[0]), median(rates[1])
		fmt.Printf("%-28s %11.1f %-6s %11.1f %-6s %7.2fx   (median of %d)\n", what, local, unit, ours, unit, ours/local, n)
	}
	report(fmt.Sprintf("one blob of %d MiB", size>>20), "MiB/s", largeRates, runs)
	report(fmt.Sprintf("%d blobs of %d B", blobs, blobSize), "blob/s", smallRates, smallRuns)
	return nil
}

// timeStore opens a fresh store in dir, times work on it, closes it and removes dir.
func timeStore(kind storeKind, dir string, work func(context.Context, content.Store) error) (float64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	store, closeStore, err := kind.open(dir)
	if err != nil {
		return 0, err
	}
	defer closeStore()
	start := time.Now()
	if err := work(context.Background(), store); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

// writeData writes size pseudo-random bytes to path and returns their descriptor; the file
// stays in the page cache for the runs.
func writeData(path string, size int64) (ocispec.Descriptor, error) {
	file, err := os.Create(path)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer file.Close()
	digester := digest.SHA256.Digester()
	random := rand.NewChaCha8([32]byte{1})
	if _, err := io.Copy(io.MultiWriter(file, digester.Hash()), io.LimitReader(random, size)); err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Size: size, Digest: digester.Digest()}, file.Sync()
}

func ingestFile(ctx context.Context, store content.Store, path string, desc ocispec.Descriptor) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	if err := content.WriteBlob(ctx, store, "large", chunkReader{file}, desc); err != nil {
		return err
	}
	// WriteBlob verified size and digest at commit; Info confirms the blob is in the store.
	_, err = store.Info(ctx, desc.Digest)
	return err
}

type blob struct {
	data []byte
	desc ocispec.Descriptor
}

// smallBlobs are n distinct pseudo-random blobs of size bytes.
func smallBlobs(n, size int) []blob {
	random := rand.NewChaCha8([32]byte{2})
	all := make([]blob, n)
	for i := range all {
		data := make([]byte, size)
		random.Read(data)
		all[i] = blob{data, ocispec.Descriptor{MediaType: "application/octet-stream", Size: int64(size), Digest: digest.FromBytes(data)}}
	}
	return all
}

func ingestBlobs(ctx context.Context, store content.Store, blobs []blob) error {
	for i, b := range blobs {
		if err := content.WriteBlob(ctx, store, fmt.Sprintf("small-%d", i), bytes.NewReader(b.data), b.desc); err != nil {
			return err
		}
	}
	return nil
}

func median(values []float64) float64 {
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	middle := len(sorted) / 2
	if len(sorted)%2 == 0 {
		return (sorted[middle-1] + sorted[middle]) / 2
	}
	return sorted[middle]
}
