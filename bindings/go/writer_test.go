package ocicas

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestWriterWritesCommitsAndReportsStatus(t *testing.T) {
	engine := newEngine(t)
	content := strings.Repeat("content ", 1000)
	want := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(content)))
	w, err := engine.Writer(t.Context(), "ref-1", &WriterOptions{Size: int64(len(content)), Digest: want})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := io.Copy(w, strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	status, err := w.Status()
	if err != nil {
		t.Fatal(err)
	}
	if status.Ref != "ref-1" || status.Offset != int64(len(content)) || status.Total != int64(len(content)) ||
		status.Expected != want || status.StartedAt.IsZero() || status.UpdatedAt.Before(status.StartedAt) {
		t.Fatalf("status %+v", status)
	}
	if digest, err := w.Digest(); err != nil || digest != want {
		t.Fatalf("Digest: %s, %v", digest, err)
	}
	digest, err := w.Commit(t.Context(), int64(len(content)), want, WithLabels(map[string]string{"origin": "test"}))
	if err != nil || digest != want {
		t.Fatalf("Commit: %s, %v", digest, err)
	}
	info, err := engine.Info(digest)
	if err != nil || info.Labels["origin"] != "test" {
		t.Fatalf("Info: %+v, %v", info, err)
	}
	_, err = w.Write([]byte("more"))
	wantErr(t, err, ErrInvalidArgument)
	if _, err := engine.IngestStatus("ref-1"); err == nil {
		t.Fatal("the committed ingest is still there")
	}
}

func TestCommitMismatchKeepsTheIngestResumable(t *testing.T) {
	engine := newEngine(t)
	w, err := engine.Writer(t.Context(), "resumable", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("first half,"))
	_, err = w.Commit(t.Context(), 5, "")
	wantErr(t, err, ErrSizeMismatch)
	_, err = w.Commit(t.Context(), 0, "sha256:"+strings.Repeat("0", 64))
	wantErr(t, err, ErrDigestMismatch)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wantPanic(t, "Write after Close", func() { w.Write([]byte("x")) })

	resumed, err := engine.Writer(t.Context(), "resumable", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	if status, err := resumed.Status(); err != nil || status.Offset != int64(len("first half,")) {
		t.Fatalf("resumed at %+v, %v", status, err)
	}
	resumed.Write([]byte("second half"))
	whole := "first half,second half"
	digest, err := resumed.Commit(t.Context(), int64(len(whole)), "")
	if err != nil || digest != fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(whole))) {
		t.Fatalf("Commit: %s, %v", digest, err)
	}
}

func TestWriterTruncateRestartsFromNothing(t *testing.T) {
	engine := newEngine(t)
	w, err := engine.Writer(t.Context(), "truncated", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("wrong"))
	wantErr(t, w.Truncate(2), ErrNotImplemented)
	wantErr(t, w.Truncate(-1), ErrInvalidArgument)
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("right"))
	digest, err := w.Commit(t.Context(), 5, "")
	if err != nil {
		t.Fatal(err)
	}
	if data, err := engine.ReadBlob(digest, NoLimit); err != nil || string(data) != "right" {
		t.Fatalf("stored %q, %v", data, err)
	}
}

func TestWriterOpenErrors(t *testing.T) {
	engine := newEngine(t)
	w, err := engine.Writer(t.Context(), "held", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, err = engine.Writer(t.Context(), "held", nil)
	wantErr(t, err, ErrLocked)
	_, err = engine.Writer(t.Context(), "", nil)
	wantErr(t, err, ErrInvalidArgument)
	stored := putBlob(t, engine, "already here")
	_, err = engine.Writer(t.Context(), "other", &WriterOptions{Digest: stored})
	wantErr(t, err, ErrAlreadyExists)
	sized, err := engine.Writer(t.Context(), "sized", &WriterOptions{Size: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer sized.Close()
	_, err = sized.Write([]byte("four"))
	wantErr(t, err, ErrSizeMismatch)
}

func TestCommitOfAStoredBlobIsAlreadyExists(t *testing.T) {
	engine := newEngine(t)
	putBlob(t, engine, "twice")
	w, err := engine.Writer(t.Context(), "dup", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("twice"))
	_, err = w.Commit(t.Context(), 0, "")
	wantErr(t, err, ErrAlreadyExists)
	_, err = engine.IngestStatus("dup")
	wantErr(t, err, ErrNotFound)
}

func TestWriterCommitTakesItsOwnContextAndTheOpenOnesIsNotKept(t *testing.T) {
	engine := newEngine(t)
	ctx, cancel := context.WithCancel(t.Context())
	w, err := engine.Writer(ctx, "cancelled", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cancel()
	// The open's context was for the open: writing goes on after it is done.
	if _, err := w.Write([]byte("kept")); err != nil {
		t.Fatalf("Write after the open's context is done: %v", err)
	}
	if _, err := w.Commit(ctx, 0, ""); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCancelled) {
		t.Fatalf("Commit with a done context: %v", err)
	}
	if status, err := engine.IngestStatus("cancelled"); err != nil || status.Offset != 4 {
		t.Fatalf("ingest %+v, %v", status, err)
	}
	if _, err := engine.Writer(ctx, "late", nil); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCancelled) {
		t.Fatalf("Writer with a done context: %v", err)
	}
	if _, err := w.Commit(t.Context(), 4, ""); err != nil {
		t.Fatalf("Commit with a live context after one with a done context: %v", err)
	}
}

func TestIngestListStatusAndAbort(t *testing.T) {
	engine := newEngine(t)
	for _, ref := range []string{"b-ingest", "a-ingest"} {
		w, err := engine.Writer(t.Context(), ref, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(ref))
		w.Close()
	}
	held, err := engine.Writer(t.Context(), "c-held", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ingests, err := engine.ListIngests()
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, ingest := range ingests {
		refs = append(refs, ingest.Ref)
	}
	if fmt.Sprint(refs) != "[a-ingest b-ingest c-held]" {
		t.Fatalf("ingests %v", refs)
	}
	filtered, err := engine.ListIngests("ref==b-ingest")
	if err != nil || len(filtered) != 1 || filtered[0].Offset != int64(len("b-ingest")) {
		t.Fatalf("filtered: %+v, %v", filtered, err)
	}
	if status, err := engine.IngestStatus("a-ingest"); err != nil || status.Offset != 8 {
		t.Fatalf("IngestStatus: %+v, %v", status, err)
	}
	if err := engine.AbortIngest("a-ingest"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, engine.AbortIngest("a-ingest"), ErrNotFound)
	wantErr(t, engine.AbortIngest("c-held"), ErrLocked)
	_, err = engine.IngestStatus("a-ingest")
	wantErr(t, err, ErrNotFound)
}
