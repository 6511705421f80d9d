package ocicas

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestVersionIsSemver(t *testing.T) {
	if !regexp.MustCompile(`^\d+\.\d+\.\d+`).MatchString(Version()) {
		t.Fatalf("Version() = %q", Version())
	}
}

func TestOpenCreatesThenOpensTheLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "layout")
	_, err := Open(path, nil)
	wantErr(t, err, ErrInvalidImage)
	engine, err := Open(path, &OpenOptions{Create: true})
	if err != nil {
		t.Fatalf("Open create: %v", err)
	}
	digest := putBlob(t, engine, "kept")
	engine.Close()
	if _, err := os.Stat(filepath.Join(path, "oci-layout")); err != nil {
		t.Fatalf("no oci-layout: %v", err)
	}
	again, err := Open(path, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer again.Close()
	if _, err := again.BlobSize(digest); err != nil {
		t.Fatalf("blob lost on reopen: %v", err)
	}
}

func TestOpenExclusiveRefusesAnExistingPath(t *testing.T) {
	path := t.TempDir()
	if err := os.WriteFile(filepath.Join(path, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, &OpenOptions{Create: true, Exclusive: true})
	wantErr(t, err, ErrAlreadyExists)
	_, err = Open(path, &OpenOptions{Exclusive: true})
	wantErr(t, err, ErrInvalidArgument)
	_, err = Open("bad\x00path", nil)
	wantErr(t, err, ErrInvalidArgument)
}

func TestEngineCloseIsIdempotentAndUseAfterClosePanics(t *testing.T) {
	engine := newEngine(t)
	if err := engine.Close(); err != nil {
		t.Fatal(err)
	}
	if err := engine.Close(); err != nil {
		t.Fatal(err)
	}
	wantPanic(t, "PutBlob after Close", func() { engine.PutBlob([]byte("x")) })
}

func TestFsckOfAFreshLayoutIsSound(t *testing.T) {
	engine := newEngine(t)
	putBlob(t, engine, "loose blob")
	report, err := engine.Fsck()
	if err != nil {
		t.Fatal(err)
	}
	if !report.Sound || len(report.Problems) != 0 || report.BlobsChecked != 1 {
		t.Fatalf("report %+v", report)
	}
}

func TestFsckDeepChecksLayersAgainstTheirDiffIDs(t *testing.T) {
	engine := newEngine(t)
	layer := putBlob(t, engine, "layer bytes")
	wrong := "sha256:" + strings.Repeat("0", 64)
	config, err := engine.PutJSON("application/vnd.oci.image.config.v1+json",
		[]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["`+wrong+`"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config,
		"layers": []Descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: layer, Size: 11}},
	})
	if err != nil {
		t.Fatal(err)
	}
	descriptor, err := engine.PutJSON("application/vnd.oci.image.manifest.v1+json", manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.PutRef("liar", descriptor, false); err != nil {
		t.Fatal(err)
	}
	if report, err := engine.Fsck(); err != nil || !report.Sound {
		t.Fatalf("fsck: %+v, %v", report, err)
	}
	report, err := engine.FsckWith(FsckOptions{Deep: true})
	if err != nil || report.Sound || len(report.Problems) != 1 || !strings.Contains(report.Problems[0], `"liar"`) {
		t.Fatalf("deep fsck: %+v, %v", report, err)
	}
}

// NoHash reads no blob: a blob changed in place (same size) is found by Fsck, not by NoHash.
func TestFsckNoHashChecksStructureWithoutHashing(t *testing.T) {
	engine, layout := newEngineAt(t)
	digest := putBlob(t, engine, "hello world")
	path := filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("HELLO WORLD"), 0o644); err != nil {
		t.Fatal(err)
	}
	if report, err := engine.Fsck(); err != nil || report.Sound || report.BlobsChecked != 1 {
		t.Fatalf("fsck of a changed blob: %+v, %v", report, err)
	}
	report, err := engine.FsckWith(FsckOptions{NoHash: true})
	if err != nil || !report.Sound || report.BlobsChecked != 0 {
		t.Fatalf("fsck without hashing: %+v, %v", report, err)
	}
}

// A handle dropped without Close is freed by its cleanup: here a forgotten Writer's lock on
// its ref is released once the Writer is collected.
func TestCleanupFreesAForgottenWriter(t *testing.T) {
	engine := newEngine(t)
	openForgotten := func() {
		if _, err := engine.Writer(t.Context(), "forgotten", nil); err != nil {
			t.Fatal(err)
		}
	}
	openForgotten()
	_, err := engine.Writer(t.Context(), "forgotten", nil)
	wantErr(t, err, ErrLocked)
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		w, err := engine.Writer(t.Context(), "forgotten", nil)
		if err == nil {
			w.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the forgotten writer still holds its ref: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSetLimitChangesWhatTheEngineAcceptsAndRefusesZero(t *testing.T) {
	engine := newEngine(t)
	if got, err := engine.GetLimit(LimitLabelSize); err != nil || got != 4096 {
		t.Fatalf("GetLimit(label_size) = %d, %v; want 4096", got, err)
	}
	if err := engine.SetLimit(LimitLabelSize, 10); err != nil {
		t.Fatalf("SetLimit: %v", err)
	}
	digest := putBlob(t, engine, "labelled")
	_, err := engine.UpdateLabels(digest, map[string]string{"key": "a value over ten bytes"})
	wantErr(t, err, ErrTooLarge)
	wantErr(t, engine.SetLimit(LimitLabelSize, 0), ErrInvalidArgument)
	wantErr(t, engine.SetLimit(Limit(999), 1), ErrInvalidArgument)
	wantErr(t, engine.SetLimit(LimitThreads, 1025), ErrInvalidArgument)
}
