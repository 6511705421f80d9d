package ocicas

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPutBlobThenReadBlobSizeAndList(t *testing.T) {
	engine := newEngine(t)
	data := []byte("hello, blob")
	digest, err := engine.PutBlob(data)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("sha256:%x", sha256.Sum256(data)); digest != want {
		t.Fatalf("digest %s, want %s", digest, want)
	}
	if again, err := engine.PutBlob(data); err != nil || again != digest {
		t.Fatalf("putting it again: %s, %v", again, err)
	}
	got, err := engine.ReadBlob(digest, NoLimit)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadBlob: %q, %v", got, err)
	}
	if size, err := engine.BlobSize(digest); err != nil || size != int64(len(data)) {
		t.Fatalf("BlobSize: %d, %v", size, err)
	}
	empty := putBlob(t, engine, "")
	if got, err := engine.ReadBlob(empty, NoLimit); err != nil || len(got) != 0 {
		t.Fatalf("empty blob: %q, %v", got, err)
	}
	digests, err := engine.ListBlobs()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{digest, empty}
	slices.Sort(want)
	if !slices.Equal(digests, want) {
		t.Fatalf("ListBlobs: %v, want %v", digests, want)
	}
}

// A limit means what ocicas_blob_read's does in C: a number of bytes, 0 included.
func TestReadBlobLimitIsBytesAsInCZeroIncluded(t *testing.T) {
	engine := newEngine(t)
	digest := putBlob(t, engine, "twelve bytes")
	empty := putBlob(t, engine, "")
	for _, limit := range []int64{0, 1, 11} {
		got, err := engine.ReadBlob(digest, limit)
		wantErr(t, err, ErrTooLarge)
		if got != nil {
			t.Fatalf("limit %d: %q with the error", limit, got)
		}
	}
	for _, limit := range []int64{12, 13, NoLimit - 1, NoLimit} {
		if got, err := engine.ReadBlob(digest, limit); err != nil || string(got) != "twelve bytes" {
			t.Fatalf("limit %d: %q, %v", limit, got, err)
		}
	}
	for _, limit := range []int64{0, NoLimit} {
		if got, err := engine.ReadBlob(empty, limit); err != nil || len(got) != 0 {
			t.Fatalf("empty blob, limit %d: %q, %v", limit, got, err)
		}
	}
	for _, limit := range []int64{-1, -12, math.MinInt64} {
		_, err := engine.ReadBlob(digest, limit)
		wantErr(t, err, ErrInvalidArgument)
	}
}

func TestReadBlobErrors(t *testing.T) {
	engine := newEngine(t)
	digest := putBlob(t, engine, "twelve bytes")
	_, err := engine.ReadBlob("sha256:"+strings.Repeat("0", 64), NoLimit)
	wantErr(t, err, ErrNotFound)
	_, err = engine.ReadBlob("sha256:ABC", NoLimit)
	wantErr(t, err, ErrInvalidArgument)
	_, err = engine.BlobSize("sha256:" + strings.Repeat("1", 64))
	wantErr(t, err, ErrNotFound)
	_, err = engine.ReadBlob(digest+"\x00", NoLimit)
	wantErr(t, err, ErrInvalidArgument)
}

func TestReadBlobOfACorruptBlobIsDigestMismatch(t *testing.T) {
	engine, path := newEngineAt(t)
	digest := putBlob(t, engine, "original")
	file := filepath.Join(path, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := engine.ReadBlob(digest, NoLimit)
	wantErr(t, err, ErrDigestMismatch)
}

func TestPutJSONStoresCanonicalJSON(t *testing.T) {
	engine := newEngine(t)
	a, err := engine.PutJSON("application/json", []byte(`{"b": 1, "a": [true]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := engine.PutJSON("application/json", []byte(`{"a":[true],"b":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != b.Digest || a.MediaType != "application/json" || a.Size != int64(len(`{"a":[true],"b":1}`)) {
		t.Fatalf("descriptors %+v and %+v", a, b)
	}
	_, err = engine.PutJSON("application/json", []byte(`{not json`))
	wantErr(t, err, ErrInvalidArgument)
}

func TestDeleteRemovesTheBlobAndIsIdempotent(t *testing.T) {
	engine := newEngine(t)
	digest := putBlob(t, engine, "doomed")
	for range 2 {
		if err := engine.DeleteBlob(digest); err != nil {
			t.Fatal(err)
		}
	}
	_, err := engine.Info(digest)
	wantErr(t, err, ErrNotFound)
}

func TestInfoAndUpdateLabels(t *testing.T) {
	engine := newEngine(t)
	digest := putBlob(t, engine, "labelled")
	info, err := engine.Info(digest)
	if err != nil {
		t.Fatal(err)
	}
	if info.Digest != digest || info.Size != 8 || info.CreatedAt.IsZero() || len(info.Labels) != 0 {
		t.Fatalf("info %+v", info)
	}
	info, err = engine.UpdateLabels(digest, map[string]string{"a": "1", "b": "2"})
	if err != nil || info.Labels["a"] != "1" || info.Labels["b"] != "2" {
		t.Fatalf("Update all: %+v, %v", info, err)
	}
	// A field path sets that key, or removes it when labels lacks it.
	info, err = engine.UpdateLabels(digest, map[string]string{"c": "3"}, "labels.c", "labels.a")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"b": "2", "c": "3"}; fmt.Sprint(info.Labels) != fmt.Sprint(want) {
		t.Fatalf("labels %v, want %v", info.Labels, want)
	}
	if again, err := engine.Info(digest); err != nil || fmt.Sprint(again.Labels) != fmt.Sprint(info.Labels) {
		t.Fatalf("Info after Update: %+v, %v", again, err)
	}
	_, err = engine.UpdateLabels(digest, nil, "size")
	wantErr(t, err, ErrInvalidArgument)
	info, err = engine.UpdateLabels(digest, nil)
	if err != nil || len(info.Labels) != 0 {
		t.Fatalf("clearing labels: %+v, %v", info, err)
	}
}

func TestWalkFiltersAndStops(t *testing.T) {
	engine := newEngine(t)
	red := putBlob(t, engine, "red")
	blue := putBlob(t, engine, "blue")
	putBlob(t, engine, "none")
	for digest, color := range map[string]string{red: "red", blue: "blue"} {
		if _, err := engine.UpdateLabels(digest, map[string]string{"color": color}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	collect := func(info Info) error {
		seen = append(seen, info.Digest)
		return nil
	}
	if err := engine.Walk(collect, "labels.color==red", "labels.color==blue"); err != nil {
		t.Fatal(err)
	}
	want := []string{red, blue}
	slices.Sort(want)
	if !slices.Equal(seen, want) {
		t.Fatalf("walked %v, want %v", seen, want)
	}
	seen = nil
	if err := engine.Walk(collect); err != nil || len(seen) != 3 {
		t.Fatalf("walk all: %v, %v", seen, err)
	}
	stop := errors.New("stop")
	calls := 0
	err := engine.Walk(func(Info) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("walk stopped with %v after %d calls", err, calls)
	}
	wantErr(t, engine.Walk(collect, "labels.color=="), ErrInvalidArgument)
}

func TestAPanicInACallbackComesOutOfTheCall(t *testing.T) {
	engine := newEngine(t)
	putBlob(t, engine, "one")
	wantPanic(t, "Walk with a panicking fn", func() {
		engine.Walk(func(Info) error { panic("from the walk") })
	})
	// The library is still usable: the panic did not unwind through it.
	if _, err := engine.ListBlobs(); err != nil {
		t.Fatal(err)
	}
}

func TestPutBlobsStoresEachInOrderAcrossGroups(t *testing.T) {
	engine := newEngine(t)
	blobs := make([][]byte, 300)
	for i := range blobs {
		blobs[i] = []byte(fmt.Sprintf("blob %d", i))
	}
	blobs = append(blobs, nil, blobs[7])
	digests, err := engine.PutBlobs(blobs)
	if err != nil {
		t.Fatal(err)
	}
	if len(digests) != len(blobs) {
		t.Fatalf("%d digests for %d blobs", len(digests), len(blobs))
	}
	for i, blob := range blobs {
		if want := fmt.Sprintf("sha256:%x", sha256.Sum256(blob)); digests[i] != want {
			t.Fatalf("blob %d: digest %s, want %s", i, digests[i], want)
		}
		got, err := engine.ReadBlob(digests[i], NoLimit)
		if err != nil || string(got) != string(blob) {
			t.Fatalf("blob %d reads back %q, %v", i, got, err)
		}
	}
	if none, err := engine.PutBlobs(nil); err != nil || none != nil {
		t.Fatalf("no blobs: %v, %v", none, err)
	}
}
