package ocicas

import (
	"bytes"
	"fmt"
	"io"
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
				if got, err := engine.GetBlob(digest, 0); err != nil || !bytes.Equal(got, data) {
					t.Errorf("GetBlob: %q, %v", got, err)
					return
				}
				w, err := engine.Writer(t.Context(), fmt.Sprintf("worker-%d-%d", worker, i), nil)
				if err != nil {
					t.Error(err)
					return
				}
				w.Write(data)
				w.Write([]byte(" via a writer"))
				_, err = w.Commit(0, "")
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
			layer := NewLayer(bytes.NewReader(bytes.Repeat([]byte{byte(worker)}, 100000)))
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
