package ocicas

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// One Engine shared by many goroutines, each writing, reading, tagging and listing.
func TestOneEngineFromManyGoroutines(t *testing.T) {
	engine := newEngine(t)
	const workers = 8
	var wg sync.WaitGroup
	for worker := range workers {
		wg.Go(func() {
			for i := range 10 {
				data := []byte(fmt.Sprintf("worker %d blob %d", worker, i))
				digest, err := engine.PutBlob(data)
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := engine.ReadBlob(digest, NoLimit); err != nil || !bytes.Equal(got, data) {
					t.Errorf("ReadBlob: %q, %v", got, err)
					return
				}
				w, err := engine.Writer(t.Context(), fmt.Sprintf("worker-%d-%d", worker, i), nil)
				if err != nil {
					t.Error(err)
					return
				}
				w.Write(data)
				w.Write([]byte(" via a writer"))
				_, err = w.Commit(t.Context(), 0, "")
				w.Close()
				if err != nil {
					t.Error(err)
					return
				}
				descriptor := Descriptor{MediaType: "application/octet-stream", Digest: digest, Size: int64(len(data))}
				if err := engine.PutRef(fmt.Sprintf("w%d-%d", worker, i), descriptor, false); err != nil {
					t.Error(err)
					return
				}
				if _, err := engine.ListRefs(); err != nil {
					t.Error(err)
					return
				}
			}
			layer := NewLayer(t.Context(), bytes.NewReader(bytes.Repeat([]byte{byte(worker)}, 100000)))
			compressed, err := layer.Compressed()
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, compressed)
			compressed.Close()
			if _, err := layer.Digest(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	refs, err := engine.ListRefs()
	if err != nil || len(refs) != workers*10 {
		t.Fatalf("%d refs (%v), want %d: an update was lost", len(refs), err, workers*10)
	}
	blobs, err := engine.ListBlobs()
	if err != nil || len(blobs) != workers*10*2 {
		t.Fatalf("%d blobs (%v), want %d", len(blobs), err, workers*10*2)
	}
}

// closeDuringCalls runs call from four goroutines until each sees the handle closed (a panic
// naming Close, or os.ErrClosed), closes the handle meanwhile, and checks that nothing else
// went wrong. A bounded number of rounds, each a new handle from open.
func closeDuringCalls(t *testing.T, open func() (call func() error, close func() error)) {
	t.Helper()
	for range 20 {
		call, closeHandle := open()
		var wg sync.WaitGroup
		var calls sync.WaitGroup
		calls.Add(4)
		for range 4 {
			wg.Go(func() {
				first := true
				defer func() {
					if first {
						calls.Done()
					}
					if r := recover(); r != nil && !strings.Contains(fmt.Sprint(r), "after Close") {
						t.Errorf("unexpected panic: %v", r)
					}
				}()
				for {
					err := call()
					if first {
						first = false
						calls.Done()
					}
					if errors.Is(err, os.ErrClosed) {
						return
					}
					if err != nil {
						t.Errorf("call: %v", err)
						return
					}
				}
			})
		}
		calls.Wait()
		if err := closeHandle(); err != nil {
			t.Errorf("Close: %v", err)
		}
		wg.Wait()
	}
}

func TestEngineCloseWaitsForTheCallsInFlight(t *testing.T) {
	closeDuringCalls(t, func() (func() error, func() error) {
		engine, err := Open(filepath.Join(t.TempDir(), "layout"), &OpenOptions{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		put := func() error {
			_, err := engine.PutBlob([]byte("racing Close"))
			return err
		}
		return put, engine.Close
	})
}

func TestWriterReaderAndLayerCloseWaitForTheCallsInFlight(t *testing.T) {
	engine := newEngine(t)
	digest := putBlob(t, engine, "read while closed")
	refs := 0
	t.Run("Writer", func(t *testing.T) {
		closeDuringCalls(t, func() (func() error, func() error) {
			refs++
			w, err := engine.Writer(t.Context(), fmt.Sprintf("racing-close-%d", refs), nil)
			if err != nil {
				t.Fatal(err)
			}
			write := func() error {
				_, err := w.Write([]byte("x"))
				return err
			}
			return write, w.Close
		})
	})
	t.Run("Reader", func(t *testing.T) {
		closeDuringCalls(t, func() (func() error, func() error) {
			r, err := engine.OpenBlob(digest)
			if err != nil {
				t.Fatal(err)
			}
			readAt := func() error {
				_, err := r.ReadAt(make([]byte, 4), 0)
				return err
			}
			return readAt, r.Close
		})
	})
	t.Run("LayerWriter", func(t *testing.T) {
		closeDuringCalls(t, func() (func() error, func() error) {
			w, err := engine.NewLayerWriter(WithThreads(1))
			if err != nil {
				t.Fatal(err)
			}
			write := func() error {
				_, err := w.Write(make([]byte, 4096))
				return err
			}
			return write, w.Close
		})
	})
	t.Run("compressed", func(t *testing.T) {
		closeDuringCalls(t, func() (func() error, func() error) {
			compressed, err := NewLayer(t.Context(), endless{}, WithCompression(Uncompressed)).Compressed()
			if err != nil {
				t.Fatal(err)
			}
			read := func() error {
				_, err := compressed.Read(make([]byte, 4096))
				return err
			}
			return read, compressed.Close
		})
	})
}

// endless is an input that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
