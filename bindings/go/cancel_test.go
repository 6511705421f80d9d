package ocicas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// promptly is how long a cancelled call may take to return: generous (a loaded machine, the
// race detector), as this is not a timing test, but far below what the calls take uncancelled
// or the registry limits would allow.
const promptly = 5 * time.Second

// cancelled checks that err is both ctx's error and ErrCancelled, and that the call returned
// within promptly of the cancel.
func cancelled(t *testing.T, what string, err error, cancelledAt func() time.Time) {
	t.Helper()
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCancelled) {
		t.Fatalf("%s: got %v, want context.Canceled and ErrCancelled", what, err)
	}
	if took := time.Since(cancelledAt()); took > promptly {
		t.Fatalf("%s returned %v after its context was cancelled", what, took)
	}
}

// cancelOnce cancels a context once and remembers when.
type cancelOnce struct {
	once   sync.Once
	cancel context.CancelFunc
	mu     sync.Mutex
	at     time.Time
}

func newCancelOnce(t *testing.T) (context.Context, *cancelOnce) {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return ctx, &cancelOnce{cancel: cancel}
}

func (c *cancelOnce) fire() {
	c.once.Do(func() {
		c.mu.Lock()
		c.at = time.Now()
		c.mu.Unlock()
		c.cancel()
	})
}

func (c *cancelOnce) when() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

// randomBytes are n bytes that do not compress.
func randomBytes(n int, seed int64) []byte {
	data := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(data)
	return data
}

// storeImage tags ref as an image of one gzip layer of data.
func storeImage(t *testing.T, engine *Engine, ref string, data []byte) LayerDescriptor {
	t.Helper()
	layer := writeLayer(t, engine, data)
	if _, err := engine.AppendLayer(ref, layer); err != nil {
		t.Fatal(err)
	}
	return layer
}

func wantNoIngests(t *testing.T, engine *Engine) {
	t.Helper()
	if ingests, err := engine.ListIngests(); err != nil || len(ingests) != 0 {
		t.Fatalf("ingests left: %v, %v", ingests, err)
	}
}

func wantSound(t *testing.T, engine *Engine) {
	t.Helper()
	if report, err := engine.Fsck(); err != nil || !report.Sound {
		t.Fatalf("fsck: %+v, %v", report, err)
	}
}

func TestAPushAndAPullCancelledMidBlobStopPromptlyAndStoreNothingPartial(t *testing.T) {
	host := startRegistry(t)
	noDockerConfig(t)
	source := newEngine(t)
	layer := storeImage(t, source, "app", randomBytes(16<<20, 1))
	target := host + "/go/cancel:v1"

	ctx, cancel := newCancelOnce(t)
	cancelMidBlob := func(p Progress) {
		if p.Done >= 1<<20 && p.Total > p.Done {
			cancel.fire()
		}
	}
	options := &RegistryOptions{Insecure: true, ChunkSize: 256 << 10, Jobs: 1, Progress: cancelMidBlob}
	_, err := source.Push(ctx, "app", target, options)
	cancelled(t, "push", err, cancel.when)
	if _, err := newEngine(t).Pull(t.Context(), target, "", &RegistryOptions{Insecure: true}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the cancelled push tagged something: %v", err)
	}
	if _, err := source.Push(t.Context(), "app", target, &RegistryOptions{Insecure: true}); err != nil {
		t.Fatal(err)
	}

	pulled := newEngine(t)
	ctx, cancel = newCancelOnce(t)
	_, err = pulled.Pull(ctx, target, "", &RegistryOptions{Insecure: true, Progress: cancelMidBlob})
	cancelled(t, "pull", err, cancel.when)
	if _, err := pulled.GetRef("v1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the cancelled pull tagged v1: %v", err)
	}
	if _, err := pulled.BlobSize(layer.Digest); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the layer cut short is a blob: %v", err)
	}
	wantSound(t, pulled)
	if _, err := pulled.Pull(t.Context(), target, "", &RegistryOptions{Insecure: true}); err != nil {
		t.Fatalf("the next pull resumes: %v", err)
	}
}

func TestAPushLayerCancelledWhileItsSourceIsReadStopsPromptly(t *testing.T) {
	host := startRegistry(t)
	noDockerConfig(t)
	ctx, cancel := newCancelOnce(t)
	source := &cancellingSource{data: randomBytes(32<<20, 2), after: 1 << 20, cancel: cancel}
	_, err := PushLayer(ctx, host+"/go/cancel-layer", source, &RegistryOptions{Insecure: true, ChunkSize: 1 << 20})
	cancelled(t, "push-layer", err, cancel.when)
	if source.read >= len(source.data) {
		t.Fatal("the whole source was read")
	}
}

// cancellingSource gives data and cancels once after bytes were read.
type cancellingSource struct {
	data   []byte
	read   int
	after  int
	cancel *cancelOnce
}

func (s *cancellingSource) Read(p []byte) (int, error) {
	if s.read >= s.after {
		s.cancel.fire()
	}
	if s.read == len(s.data) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 64<<10)], s.data[s.read:])
	s.read += n
	return n, nil
}

func TestAGCCancelledWhileItRunsStopsPromptlyAndLeavesTheStoreSound(t *testing.T) {
	engine, layout := newEngineAt(t)
	storeImage(t, engine, "kept", randomBytes(1000, 3))
	for i := range 200 {
		putBlob(t, engine, fmt.Sprintf("garbage %d", i))
	}
	ageBlobs(t, layout)
	// Holding the store lock shared, as a commit does, keeps GC from sweeping: it is surely
	// still running when its context is cancelled.
	lock, err := os.Open(filepath.Join(layout, ".ocicas", "lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := newCancelOnce(t)
	done := make(chan error)
	go func() {
		_, err := engine.GC(ctx, nil)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel.fire()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	cancelled(t, "GC", <-done, cancel.when)
	if blobs, err := engine.ListBlobs(); err != nil || len(blobs) != 203 {
		t.Fatalf("GC cancelled before its sweep removed something: %d blobs, %v", len(blobs), err)
	}
	wantSound(t, engine)
	report, err := engine.GC(t.Context(), nil)
	if err != nil || report.BlobsKept != 3 || report.BlobsRemoved != 200 {
		t.Fatalf("the next GC: %+v, %v", report, err)
	}
	wantSound(t, engine)
}

func TestAnImportCancelledMidStreamStopsPromptlyAndStoresNothing(t *testing.T) {
	source := newEngine(t)
	storeImage(t, source, "example.com/app:1.0", randomBytes(8<<20, 4))
	var archive bytes.Buffer
	if err := source.ExportArchive(t.Context(), &archive, []string{"example.com/app:1.0"}, nil); err != nil {
		t.Fatal(err)
	}
	engine := newEngine(t)
	ctx, cancel := newCancelOnce(t)
	input := &cancellingSource{data: archive.Bytes(), after: archive.Len() / 4, cancel: cancel}
	_, err := engine.ImportArchive(ctx, input, nil)
	cancelled(t, "import", err, cancel.when)
	if blobs, err := engine.ListBlobs(); err != nil || len(blobs) != 0 {
		t.Fatalf("blobs after a cancelled import: %v, %v", blobs, err)
	}
	if refs, err := engine.ListRefs(); err != nil || len(refs) != 0 {
		t.Fatalf("refs after a cancelled import: %v, %v", refs, err)
	}
	wantNoIngests(t, engine)
	wantSound(t, engine)
}

// cancellingSink takes everything and cancels once after bytes were written.
type cancellingSink struct {
	written int
	after   int
	cancel  *cancelOnce
}

func (s *cancellingSink) Write(p []byte) (int, error) {
	s.written += len(p)
	if s.written >= s.after {
		s.cancel.fire()
	}
	return len(p), nil
}

func TestAnExportCancelledMidStreamStopsPromptly(t *testing.T) {
	engine := newEngine(t)
	storeImage(t, engine, "example.com/app:1.0", randomBytes(32<<20, 5))
	ctx, cancel := newCancelOnce(t)
	sink := &cancellingSink{after: 1 << 20, cancel: cancel}
	err := engine.ExportArchive(ctx, sink, []string{"example.com/app:1.0"}, nil)
	cancelled(t, "export", err, cancel.when)
	if sink.written >= 32<<20 {
		t.Fatalf("the export wrote %d bytes, the whole layer", sink.written)
	}
}

func TestALayerStreamCancelledWhileItIsReadStopsAndComputesNothing(t *testing.T) {
	ctx, cancel := newCancelOnce(t)
	source := &cancellingSource{data: randomBytes(32<<20, 6), after: 1 << 20, cancel: cancel}
	layer := NewLayer(ctx, source)
	compressed, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer compressed.Close()
	_, err = io.Copy(io.Discard, compressed)
	cancelled(t, "layer stream", err, cancel.when)
	if source.read >= len(source.data) {
		t.Fatal("the whole source was read")
	}
	if _, err := layer.Digest(); !errors.Is(err, ErrNotComputed) {
		t.Fatalf("digest of a cancelled layer: %v", err)
	}
	// A layer whose context is done before it starts reads nothing.
	_, err = NewLayer(ctx, source).Compressed()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Compressed with a done context: %v", err)
	}
}

// A call given a ctx that is already done does not start, and its error keeps the promise of
// ErrCancelled's doc: both ctx's error and ErrCancelled.
func TestACallGivenADoneContextIsBothItsErrorAndErrCancelled(t *testing.T) {
	engine := newEngine(t)
	storeImage(t, engine, "app", randomBytes(1<<10, 9))
	live, err := engine.Writer(t.Context(), "resumable", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := live.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]func() error{
		"GC": func() error { _, err := engine.GC(ctx, nil); return err },
		"Push": func() error {
			_, err := engine.Push(ctx, "app", "127.0.0.1:1/go/app:v1", &RegistryOptions{Insecure: true})
			return err
		},
		"Pull": func() error {
			_, err := engine.Pull(ctx, "127.0.0.1:1/go/app:v1", "pulled", &RegistryOptions{Insecure: true})
			return err
		},
		"PushLayer": func() error {
			_, err := PushLayer(ctx, "127.0.0.1:1/go/layer", bytes.NewReader(nil), &RegistryOptions{Insecure: true})
			return err
		},
		"ImportArchive": func() error { _, err := engine.ImportArchive(ctx, bytes.NewReader(nil), nil); return err },
		"ExportArchive": func() error { return engine.ExportArchive(ctx, io.Discard, []string{"app"}, nil) },
		"Layer.Compressed": func() error {
			_, err := NewLayer(ctx, bytes.NewReader(nil)).Compressed()
			return err
		},
		"Writer":        func() error { _, err := engine.Writer(ctx, "other", nil); return err },
		"Writer.Commit": func() error { _, err := live.Commit(ctx, 0, ""); return err },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCancelled) {
			t.Errorf("%s with a done ctx: got %v, want context.Canceled and ErrCancelled", name, err)
		}
	}
	if _, err := engine.GetRef("pulled"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a pull that did not start tagged something: %v", err)
	}
	status, err := live.Status()
	if err != nil || status.Offset != int64(len("partial")) {
		t.Errorf("the commit that did not start changed the ingest: %+v, %v", status, err)
	}
}

// A cancel that races the end of an import (the last bytes read, the publish) ends it wholly
// one way or the other: imported and tagged, or cancelled with nothing tagged or staged; the
// store is sound either way. The cancel lands at every point from mid-stream to after the end.
func TestACancelRacingTheEndOfAnImportEndsItWhollyOneWayOrTheOther(t *testing.T) {
	_, _, archive := exportImage(t, "app", ArchiveLegacy)
	for _, after := range []int{len(archive) / 2, len(archive) - 1024, len(archive) - 1, len(archive), len(archive) + 1} {
		engine := newEngine(t)
		ctx, cancel := context.WithCancel(t.Context())
		source := &cancellingReader{source: bytes.NewReader(archive), after: after, cancel: cancel}
		images, err := engine.ImportArchive(ctx, source, nil)
		cancel()
		refs, listErr := engine.ListRefs()
		if listErr != nil {
			t.Fatal(listErr)
		}
		switch {
		case err == nil:
			if len(images) != 1 || len(refs) != 1 {
				t.Errorf("cancel after %d bytes: imported %v but tagged %v", after, images, refs)
			}
		case errors.Is(err, context.Canceled) && errors.Is(err, ErrCancelled):
			if len(refs) != 0 {
				t.Errorf("cancel after %d bytes: cancelled, yet tagged %v", after, refs)
			}
		default:
			t.Errorf("cancel after %d bytes: %v, want success or context.Canceled and ErrCancelled", after, err)
		}
		wantNoIngests(t, engine)
		wantSound(t, engine)
	}
}
