// Compares stores putting blobs, in one Go program: each store fresh for each run, runs
// interleaved, medians shown.
//
//   - One blob of 1 GiB, read from a file in the page cache, through containerd's local content
//     store and through the ocicas content.Store adapter (bindings/go/containerd), both driven
//     by the same content.WriteBlob call as containerd's pull drives them.
//   - 10,000 blobs of 4 KiB from memory: through those two the same way, through ocicas's own Go
//     API one at a time (Engine.PutBlob) and as one batch (Engine.PutBlobs), and through umoci's
//     CAS (oci/cas/dir PutBlob).
//
// The stores do not all promise the same. containerd local and ocicas fsync a blob's data and
// then the directory they link or rename it into before they report it stored, so a stored blob
// survives a power loss. umoci fsyncs the data but not the directory of its rename, so a blob it
// reported stored can be lost, name and all; "umoci + dir fsync" adds here, after each PutBlob,
// the directory fsync umoci leaves out: what umoci costs at the same durability.
//
// Usage: containerd [-dir DIR] [-size BYTES] [-blobs N] [-blob-size BYTES] [-runs N]
// [-small-runs N] [-only NAME]
// with the ocicas library found as in c-tests/consumer/run.sh (PKG_CONFIG_PATH, LD_LIBRARY_PATH).
package main

import (
	"bytes"
	"context"
	// go-digest computes only the algorithms a program links in.
	_ "crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/log"
	ocicas "github.com/ocicas/ocicas/bindings/go"
	ocicascontainerd "github.com/ocicas/ocicas/bindings/go/containerd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	umoci "github.com/opencontainers/umoci/oci/cas/dir"
)

// recentlyDeleted is how long ext4 without a journal, as here, avoids reusing a freed inode
// (fs/ext4/ialloc.c: recently_deleted; 5 s, 35 s while its inode table block is dirty), and a
// margin. Each file creation scans past such inodes: the stores run within it after one that
// removed 20,000 files (ingests) were up to 5x slower, so a run that removes files is followed
// by this wait, outside any timing.
const recentlyDeleted = 36 * time.Second

// chunk is the read size from the data file, as containerd's pull reads a response body.
const chunk = 64 << 10

// chunkReader reads at most 64 KiB at a time, and hides os.File's WriteTo, which content.Copy
// would otherwise use (it copies through io.Copy's 32 KiB buffer).
type chunkReader struct{ file *os.File }

func (r chunkReader) Read(p []byte) (int, error) {
	return r.file.Read(p[:min(len(p), chunk)])
}

// A store under test, opened fresh in an empty directory and closed after each run. put
// stores the blobs (the timed part); what it returns is checked to be their digests.
type store struct {
	name string
	// durable is what a blob the store reported stored survives.
	durable string
	// removesFiles: the store creates and removes files for each blob (an ingest directory).
	removesFiles bool
	open         func(dir string) (put putFunc, close func() error, err error)
}

type putFunc func(ctx context.Context, blobs []blob) error

type blob struct {
	data []byte
	desc ocispec.Descriptor
}

// The content.Store contenders: both the large blob and the small ones go through them.
var contentStores = []struct {
	name string
	open func(dir string) (content.Store, func() error, error)
}{
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

const durableFsyncs = "power loss (data fsynced, then its directory)"

var smallStores = []store{
	{"containerd local WriteBlob", durableFsyncs + "; 2 O_SYNC metadata writes at open", true, writeBlobs(0)},
	{"ocicas adapter WriteBlob", durableFsyncs, true, writeBlobs(1)},
	{"ocicas PutBlob", durableFsyncs, false, openEngine(func(engine *ocicas.Engine, blobs []blob) error {
		for _, b := range blobs {
			stored, err := engine.PutBlob(b.data)
			if err := check(stored, b, err); err != nil {
				return err
			}
		}
		return nil
	})},
	{"ocicas PutBlobs (batch)", durableFsyncs + ", per group of 256", false, openEngine(func(engine *ocicas.Engine, blobs []blob) error {
		data := make([][]byte, len(blobs))
		for i, b := range blobs {
			data[i] = b.data
		}
		stored, err := engine.PutBlobs(data)
		if err != nil {
			return err
		}
		for i, b := range blobs {
			if err := check(stored[i], b, nil); err != nil {
				return err
			}
		}
		return nil
	})},
	{"umoci PutBlob", "process crash only (data fsynced, its rename not)", false, openUmoci(false)},
	{"umoci + dir fsync", durableFsyncs + " (this program's fsync)", false, openUmoci(true)},
}

// writeBlobs puts blobs through content.WriteBlob into content store k.
func writeBlobs(k int) func(string) (putFunc, func() error, error) {
	return func(dir string) (putFunc, func() error, error) {
		store, closeStore, err := contentStores[k].open(dir)
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context, blobs []blob) error {
			for i, b := range blobs {
				if err := content.WriteBlob(ctx, store, fmt.Sprintf("small-%d", i), bytes.NewReader(b.data), b.desc); err != nil {
					return err
				}
			}
			return nil
		}, closeStore, nil
	}
}

func openEngine(put func(*ocicas.Engine, []blob) error) func(string) (putFunc, func() error, error) {
	return func(dir string) (putFunc, func() error, error) {
		engine, err := ocicas.Open(dir, &ocicas.OpenOptions{Create: true})
		if err != nil {
			return nil, nil, err
		}
		return func(_ context.Context, blobs []blob) error { return put(engine, blobs) }, engine.Close, nil
	}
}

// openUmoci opens umoci's CAS in dir; with syncDir, each PutBlob is followed by an fsync of the
// blob directory, as the other stores do before they report a blob stored.
func openUmoci(syncDir bool) func(string) (putFunc, func() error, error) {
	return func(dir string) (putFunc, func() error, error) {
		layout := filepath.Join(dir, "layout")
		if err := umoci.Create(layout); err != nil {
			return nil, nil, err
		}
		engine, err := umoci.Open(layout)
		if err != nil {
			return nil, nil, err
		}
		blobDir, err := os.Open(filepath.Join(layout, "blobs", "sha256"))
		if err != nil {
			return nil, nil, err
		}
		closeAll := func() error { return errors.Join(blobDir.Close(), engine.Close()) }
		return func(ctx context.Context, blobs []blob) error {
			for _, b := range blobs {
				stored, _, err := engine.PutBlob(ctx, bytes.NewReader(b.data))
				if err := check(string(stored), b, err); err != nil {
					return err
				}
				if syncDir {
					if err := blobDir.Sync(); err != nil {
						return err
					}
				}
			}
			return nil
		}, closeAll, nil
	}
}

// check fails a put that failed or stored another digest than the blob's.
func check(stored string, b blob, err error) error {
	if err != nil {
		return err
	}
	if stored != string(b.desc.Digest) {
		return fmt.Errorf("stored as %s, want %s", stored, b.desc.Digest)
	}
	return nil
}

func main() {
	dir := flag.String("dir", os.TempDir(), "where the data file and the stores go (a disk, not tmpfs)")
	size := flag.Int64("size", 1<<30, "size of the large blob")
	blobs := flag.Int("blobs", 10000, "number of small blobs")
	blobSize := flag.Int("blob-size", 4096, "size of each small blob")
	runs := flag.Int("runs", 5, "runs of the large ingest per store (the median is shown; 0: none)")
	smallRuns := flag.Int("small-runs", 5, "runs of the small blobs per store (0: none)")
	only := flag.String("only", "", "run only the stores whose name contains this (for strace)")
	flag.Parse()
	// The local store warns that this file system has no fs-verity, at every open.
	if err := log.SetLevel("error"); err != nil {
		panic(err)
	}
	if err := run(*dir, *size, *blobs, *blobSize, *runs, *smallRuns, *only); err != nil {
		fmt.Fprintln(os.Stderr, "containerd bench:", err)
		os.Exit(1)
	}
}

func run(dir string, size int64, blobs, blobSize, runs, smallRuns int, only string) error {
	work, err := os.MkdirTemp(dir, "ocicas-bench-containerd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var large ocispec.Descriptor
	dataPath := filepath.Join(work, "data")
	if runs > 0 {
		if large, err = writeData(dataPath, size); err != nil {
			return err
		}
	}
	small := smallBlobs(blobs, blobSize)
	selected := func(name string) bool { return strings.Contains(name, only) }

	largeRates := make([][]float64, len(contentStores))
	smallRates := make([][]float64, len(smallStores))
	for i := range max(runs, smallRuns) {
		for k, kind := range contentStores {
			if i >= runs || !selected(kind.name) {
				continue
			}
			largeStore := filepath.Join(work, "large")
			seconds, err := timeStore(largeStore, func(dir string) (putFunc, func() error, error) {
				store, closeStore, err := kind.open(dir)
				return func(ctx context.Context, _ []blob) error {
					return ingestFile(ctx, store, dataPath, large)
				}, closeStore, err
			}, nil)
			if err := errors.Join(err, os.RemoveAll(largeStore)); err != nil {
				return fmt.Errorf("%s, large blob: %w", kind.name, err)
			}
			largeRates[k] = append(largeRates[k], float64(size)/(1<<20)/seconds)
		}
		for k, kind := range smallStores {
			if i >= smallRuns || !selected(kind.name) {
				continue
			}
			// Kept until the end, so that no run removes files just before another (see timeStore).
			seconds, err := timeStore(filepath.Join(work, fmt.Sprintf("small-%d-%d", k, i)), kind.open, small)
			if err != nil {
				return fmt.Errorf("%s, small blobs: %w", kind.name, err)
			}
			smallRates[k] = append(smallRates[k], float64(len(small))/seconds)
			if kind.removesFiles {
				time.Sleep(recentlyDeleted)
			}
		}
	}

	if runs > 0 && len(largeRates[0]) > 0 && len(largeRates[1]) > 0 {
		local, ours := median(largeRates[0]), median(largeRates[1])
		fmt.Printf("content.WriteBlob of one blob of %d MiB (median of %d)\n", size>>20, runs)
		fmt.Printf("  %-28s %9.1f MiB/s\n  %-28s %9.1f MiB/s   %.2fx containerd local\n\n",
			contentStores[0].name, local, contentStores[1].name, ours, ours/local)
	}
	if smallRuns > 0 {
		fmt.Printf("%d blobs of %d B (median of %d)\n", blobs, blobSize, smallRuns)
		fmt.Printf("  %-28s %16s %16s %12s   %s\n", "", "", "vs containerd", "vs umoci", "a stored blob survives")
		medians := make([]float64, len(smallStores))
		for k, rates := range smallRates {
			if len(rates) > 0 {
				medians[k] = median(rates)
			}
		}
		containerdRate, umociRate := medians[0], medians[4]
		for k, kind := range smallStores {
			if medians[k] == 0 {
				continue
			}
			fmt.Printf("  %-28s %9.0f blob/s %15s %12s   %s\n", kind.name, medians[k],
				ratio(medians[k], containerdRate), ratio(medians[k], umociRate), kind.durable)
		}
	}
	return nil
}

// ratio is "N.NNx", or "-" when the reference was not measured.
func ratio(rate, reference float64) string {
	if reference == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", rate/reference)
}

// timeStore opens a fresh store in dir, times put on it and closes it.
func timeStore(dir string, open func(string) (putFunc, func() error, error), blobs []blob) (float64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	put, closeStore, err := open(dir)
	if err != nil {
		return 0, err
	}
	defer closeStore()
	// What the runs before wrote and removed (and the discards of this disk) and the opening of
	// this store are written out first, not charged to this run.
	syscall.Sync()
	start := time.Now()
	if err := put(context.Background(), blobs); err != nil {
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

func median(values []float64) float64 {
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	middle := len(sorted) / 2
	if len(sorted)%2 == 0 {
		return (sorted[middle-1] + sorted[middle]) / 2
	}
	return sorted[middle]
}
