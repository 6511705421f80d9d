package ocicas

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ageBlobs moves every blob's mtime an hour back, out of GC's grace for blobs just committed
// (which may be documents a writer is about to reference).
func ageBlobs(t *testing.T, layout string) {
	t.Helper()
	dir := filepath.Join(layout, "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	for _, entry := range entries {
		if err := os.Chtimes(filepath.Join(dir, entry.Name()), old, old); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGCRemovesWhatNothingReaches(t *testing.T) {
	engine, layout := newEngineAt(t)
	layer := writeLayer(t, engine, []byte("image layer"))
	manifest, err := engine.AppendLayer("kept", layer)
	if err != nil {
		t.Fatal(err)
	}
	garbage := putBlob(t, engine, "garbage")
	ageBlobs(t, layout)

	dry, err := engine.GC(t.Context(), &GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || dry.BlobsRemoved != 1 || dry.BytesRemoved != int64(len("garbage")) || dry.BlobsKept != 3 {
		t.Fatalf("dry run %+v", dry)
	}
	if _, err := engine.BlobSize(garbage); err != nil {
		t.Fatalf("the dry run removed the garbage: %v", err)
	}
	report, err := engine.GC(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if report.DryRun || report.BlobsRemoved != 1 || report.BlobsKept != 3 || len(report.Missing) != 0 {
		t.Fatalf("report %+v", report)
	}
	_, err = engine.BlobSize(garbage)
	wantErr(t, err, ErrNotFound)
	for _, digest := range []string{manifest.Digest, layer.Digest} {
		if _, err := engine.BlobSize(digest); err != nil {
			t.Fatalf("GC took %s: %v", digest, err)
		}
	}
}

func TestGCMinAgeKeepsYoungerBlobs(t *testing.T) {
	engine, layout := newEngineAt(t)
	garbage := putBlob(t, engine, "garbage")
	ageBlobs(t, layout) // an hour old
	kept, err := engine.GC(t.Context(), &GCOptions{MinAge: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if kept.BlobsRemoved != 0 {
		t.Fatalf("MinAge 2h removed %+v", kept)
	}
	_, err = engine.GC(t.Context(), &GCOptions{MinAge: -time.Second})
	wantErr(t, err, ErrInvalidArgument)
	removed, err := engine.GC(t.Context(), &GCOptions{MinAge: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if removed.BlobsRemoved != 1 {
		t.Fatalf("MinAge 30m kept the hour-old garbage: %+v", removed)
	}
	_, err = engine.BlobSize(garbage)
	wantErr(t, err, ErrNotFound)
}

func TestGCRemovesStaleIngestsOnlyWhenAskedTo(t *testing.T) {
	engine := newEngine(t)
	w, err := engine.Writer(t.Context(), "stale", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	w.Close()
	if report, err := engine.GC(t.Context(), &GCOptions{IngestExpiry: time.Hour}); err != nil || len(report.IngestsRemoved) != 0 {
		t.Fatalf("a fresh ingest was removed: %+v, %v", report, err)
	}
	report, err := engine.GC(t.Context(), &GCOptions{IngestExpiry: -1})
	if err != nil || !slices.Equal(report.IngestsRemoved, []string{"stale"}) {
		t.Fatalf("report %+v, %v", report, err)
	}
}

func TestLeasesKeepBlobsUntilReleased(t *testing.T) {
	engine, layout := newEngineAt(t)
	digest := putBlob(t, engine, "leased")
	ageBlobs(t, layout)
	id, err := engine.NewLease("build-1", 0)
	if err != nil || id != "build-1" {
		t.Fatalf("NewLease: %q, %v", id, err)
	}
	if err := engine.AddLeaseBlob(id, digest); err != nil {
		t.Fatal(err)
	}
	if err := engine.AddLeaseIngest(id, "some-ingest"); err != nil {
		t.Fatal(err)
	}
	generated, err := engine.NewLease("", time.Hour)
	if err != nil || generated == "" {
		t.Fatalf("generated lease: %q, %v", generated, err)
	}
	leases, err := engine.ListLeases()
	if err != nil || len(leases) != 2 {
		t.Fatalf("ListLeases: %+v, %v", leases, err)
	}
	byID := map[string]Lease{leases[0].ID: leases[0], leases[1].ID: leases[1]}
	build := byID["build-1"]
	if !build.ExpiresAt.IsZero() || !slices.Equal(build.Digests, []string{digest}) || !slices.Equal(build.Ingests, []string{"some-ingest"}) || build.CreatedAt.IsZero() {
		t.Fatalf("lease %+v", build)
	}
	if expires := byID[generated].ExpiresAt; expires.Before(time.Now().Add(59*time.Minute)) || expires.After(time.Now().Add(61*time.Minute)) {
		t.Fatalf("expiry %v", expires)
	}

	if report, err := engine.GC(t.Context(), nil); err != nil || report.BlobsRemoved != 0 {
		t.Fatalf("GC under the lease: %+v, %v", report, err)
	}
	if err := engine.ReleaseLease(id); err != nil {
		t.Fatal(err)
	}
	if report, err := engine.GC(t.Context(), nil); err != nil || report.BlobsRemoved != 1 {
		t.Fatalf("GC after release: %+v, %v", report, err)
	}

	wantErr(t, engine.ReleaseLease(id), ErrNotFound)
	wantErr(t, engine.AddLeaseBlob("nope", digest), ErrNotFound)
	_, err = engine.NewLease(generated, 0)
	wantErr(t, err, ErrAlreadyExists)
	_, err = engine.NewLease(strings.Repeat("x", 129), 0)
	wantErr(t, err, ErrInvalidArgument)
}

func TestWholeSecondsRoundsUp(t *testing.T) {
	longest := time.Duration(math.MaxInt64)
	for d, want := range map[time.Duration]int64{time.Nanosecond: 1, time.Second: 1, 1500 * time.Millisecond: 2, longest: 9223372037} {
		if got := wholeSeconds(d); got != want {
			t.Errorf("wholeSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

// The longest Duration is a long time, not "never" nor "now".
func TestTheLongestExpiriesStayLong(t *testing.T) {
	engine := newEngine(t)
	longest := time.Duration(math.MaxInt64)
	if _, err := engine.NewLease("longest", longest); err != nil {
		t.Fatal(err)
	}
	leases, err := engine.ListLeases()
	// 292 years from now is past what int64 nanoseconds hold (2262): the expiry reads as the
	// last time they do, not as a wrapped-around past.
	if err != nil || len(leases) != 1 || !leases[0].ExpiresAt.Equal(time.Unix(0, math.MaxInt64)) {
		t.Fatalf("leases %+v, %v: want one expiring in 292 years, read as the end of 2262", leases, err)
	}
	w, err := engine.Writer(t.Context(), "idle", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	w.Close()
	if report, err := engine.GC(t.Context(), &GCOptions{IngestExpiry: longest}); err != nil || len(report.IngestsRemoved) != 0 {
		t.Fatalf("an idle ingest was removed by an expiry of 292 years: %+v, %v", report, err)
	}
}
