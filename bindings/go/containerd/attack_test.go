package containerd

// Attacks on the adapter's contract: a misused writer, writers racing for one ref, a reader
// of a deleted blob, a commit that names the wrong digest, labels with odd keys. Each must end
// in an error of the right kind or in the promised result, and leave the store consistent.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	ocicas "github.com/ocicas/ocicas/bindings/go"
	"github.com/opencontainers/go-digest"
)

// wantStoreSound fails unless fsck finds the layout sound.
func wantStoreSound(t *testing.T, engine *ocicas.Engine) {
	t.Helper()
	report, err := engine.Fsck()
	if err != nil {
		t.Fatalf("Fsck: %v", err)
	}
	if !report.Sound {
		t.Fatalf("the store is not sound: %+v", report)
	}
}

// wantBlob fails unless the blob of data is stored with exactly data.
func wantBlob(t *testing.T, store *Store, data []byte) {
	t.Helper()
	got, err := content.ReadBlob(t.Context(), store, descriptorOf(data))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob %s: %d bytes, %v; want %d bytes", digest.FromBytes(data), len(got), err, len(data))
	}
}

func TestAWriterUsedAfterCommitOrCloseFailsAndChangesNothing(t *testing.T) {
	store, engine := newStore(t)
	data := []byte("committed once")
	committed, err := store.Writer(t.Context(), content.WithRef("used-after-commit"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := committed.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := committed.Commit(t.Context(), int64(len(data)), digest.FromBytes(data)); err != nil {
		t.Fatal(err)
	}
	closed, err := store.Writer(t.Context(), content.WithRef("used-after-close"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := closed.Write([]byte("left to resume")); err != nil {
		t.Fatal(err)
	}
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}

	for name, w := range map[string]content.Writer{"committed": committed, "closed": closed} {
		if _, err := w.Write([]byte("more")); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("%s writer: Write: %v", name, err)
		}
		if _, err := w.Status(); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("%s writer: Status: %v", name, err)
		}
		if err := w.Truncate(0); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("%s writer: Truncate: %v", name, err)
		}
		if err := w.Commit(t.Context(), 0, ""); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("%s writer: Commit: %v", name, err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("%s writer: Close again: %v", name, err)
		}
	}
	if got := committed.Digest(); got != digest.FromBytes(data) {
		t.Errorf("Digest after Commit is %q, want the committed digest", got)
	}
	wantBlob(t, store, data)
	if status, err := store.Status(t.Context(), "used-after-close"); err != nil || status.Offset != int64(len("left to resume")) {
		t.Errorf("the closed writer's ingest: %+v, %v", status, err)
	}
	if _, err := store.Status(t.Context(), "used-after-commit"); !errdefs.IsNotFound(err) {
		t.Errorf("the committed writer's ingest is still there: %v", err)
	}
	wantStoreSound(t, engine)
}

// Calls on one writer from several goroutines take turns: a Commit racing with Writes and a
// Close stores either what was written before it or nothing, never a torn blob.
func TestAWriterSharedByGoroutinesCommitsWhatWasWrittenBeforeIt(t *testing.T) {
	store, engine := newStore(t)
	w, err := store.Writer(t.Context(), content.WithRef("shared"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte(strings.Repeat("x", 4096))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 16 {
				if _, err := w.Write(chunk); err != nil && !errdefs.IsFailedPrecondition(err) {
					t.Errorf("Write: %v", err)
				}
			}
		})
	}
	wg.Go(func() {
		// Close may come first: a commit of a closed writer is ErrFailedPrecondition, as in
		// containerd's local store.
		if err := w.Commit(context.Background(), 0, ""); err != nil && !errdefs.IsFailedPrecondition(err) {
			t.Errorf("Commit: %v", err)
		}
	})
	wg.Go(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	wg.Wait()
	// What was committed, if anything, is a whole number of chunks with its digest.
	err = store.Walk(t.Context(), func(info content.Info) error {
		if info.Size%int64(len(chunk)) != 0 {
			t.Errorf("committed %d bytes: not whole writes", info.Size)
		}
		wantBlob(t, store, bytes.Repeat(chunk, int(info.Size)/len(chunk)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantStoreSound(t, engine)
}

func TestGoroutinesOpeningOneRefGetOneWriterTheOthersUnavailable(t *testing.T) {
	store, engine := newStore(t)
	data := []byte("one writer at a time")
	const racers = 8
	writers := make(chan content.Writer, racers)
	var wg sync.WaitGroup
	for range racers {
		wg.Go(func() {
			w, err := store.Writer(context.Background(), content.WithRef("contended"))
			if err != nil {
				if !errdefs.IsUnavailable(err) {
					t.Errorf("a losing Writer: %v, want ErrUnavailable", err)
				}
				return
			}
			writers <- w
		})
	}
	wg.Wait()
	close(writers)
	var won []content.Writer
	for w := range writers {
		won = append(won, w)
	}
	if len(won) != 1 {
		t.Fatalf("%d goroutines hold the ref at once, want 1", len(won))
	}
	if _, err := won[0].Write(data); err != nil {
		t.Fatal(err)
	}
	if err := won[0].Commit(t.Context(), int64(len(data)), digest.FromBytes(data)); err != nil {
		t.Fatal(err)
	}
	wantBlob(t, store, data)

	// Through containerd's helper, which waits for the holder: every goroutine's WriteBlob of
	// the same content ends stored (or finding it stored), never with a torn blob.
	more := bytes.Repeat([]byte("contended through WriteBlob "), 4096)
	for range racers {
		wg.Go(func() {
			err := content.WriteBlob(context.Background(), store, "contended-helper", bytes.NewReader(more), descriptorOf(more))
			if err != nil {
				t.Errorf("WriteBlob: %v", err)
			}
		})
	}
	wg.Wait()
	wantBlob(t, store, more)
	if statuses, err := store.ListStatuses(t.Context()); err != nil || len(statuses) != 0 {
		t.Errorf("ingests left: %+v, %v", statuses, err)
	}
	wantStoreSound(t, engine)
}

// A ReaderAt opened before its blob was deleted either reads the blob's own bytes (it holds
// the file open) or fails; it never gives other bytes, and closing it twice is harmless.
func TestAReaderAtOfADeletedBlobReadsItsBytesOrFails(t *testing.T) {
	store, engine := newStore(t)
	data := []byte("deleted while open")
	if err := content.WriteBlob(t.Context(), store, "deleted", bytes.NewReader(data), descriptorOf(data)); err != nil {
		t.Fatal(err)
	}
	reader, err := store.ReaderAt(t.Context(), descriptorOf(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(t.Context(), digest.FromBytes(data)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	n, err := reader.ReadAt(got, 0)
	t.Logf("ReadAt after the blob was deleted: %q, %v", got[:n], err)
	if err == nil && !bytes.Equal(got[:n], data) {
		t.Errorf("read %q from the deleted blob, want %q or an error", got[:n], data)
	}
	if err := reader.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := reader.ReadAt(got, 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("ReadAt after Close: %v, want os.ErrClosed", err)
	}
	_ = reader.Close()
	if _, err := store.ReaderAt(t.Context(), descriptorOf(data)); !errdefs.IsNotFound(err) {
		t.Errorf("ReaderAt of the deleted blob: %v, want ErrNotFound", err)
	}
	if err := store.Delete(t.Context(), digest.FromBytes(data)); !errdefs.IsNotFound(err) {
		t.Errorf("Delete again: %v, want ErrNotFound", err)
	}
	wantStoreSound(t, engine)
}

func TestACommitWithAWrongDigestStoresNothingAndTheIngestResumes(t *testing.T) {
	store, engine := newStore(t)
	data := []byte("the bytes written")
	wrong := digest.FromBytes([]byte("other bytes"))
	w, err := store.Writer(t.Context(), content.WithRef("wrong-digest"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(t.Context(), int64(len(data)), wrong); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Commit with a wrong digest: %v, want ErrFailedPrecondition", err)
	}
	for _, dgst := range []digest.Digest{wrong, digest.FromBytes(data)} {
		if _, err := store.Info(t.Context(), dgst); !errdefs.IsNotFound(err) {
			t.Errorf("Info(%s) after the failed commit: %v, want ErrNotFound", dgst, err)
		}
	}
	status, err := store.Status(t.Context(), "wrong-digest")
	if err != nil || status.Offset != int64(len(data)) {
		t.Fatalf("the ingest after the failed commit: %+v, %v", status, err)
	}
	resumed, err := store.Writer(t.Context(), content.WithRef("wrong-digest"))
	if err != nil {
		t.Fatalf("the ingest cannot be resumed: %v", err)
	}
	if err := resumed.Commit(t.Context(), int64(len(data)), digest.FromBytes(data)); err != nil {
		t.Fatalf("Commit of the resumed ingest: %v", err)
	}
	wantBlob(t, store, data)

	// A wrong size is refused the same way, and Abort then removes the ingest.
	w, err = store.Writer(t.Context(), content.WithRef("wrong-size"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("four")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(t.Context(), 5, ""); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Commit with a wrong size: %v, want ErrFailedPrecondition", err)
	}
	if err := store.Abort(t.Context(), "wrong-size"); err != nil {
		t.Fatalf("Abort after the failed commit: %v", err)
	}
	if _, err := store.Status(t.Context(), "wrong-size"); !errdefs.IsNotFound(err) {
		t.Errorf("the aborted ingest: %v", err)
	}
	wantStoreSound(t, engine)
}

// Labels whose keys hold the characters of containerd's syntaxes (dots of field paths, the
// '=' and ',' of filters, quotes, spaces, non-ASCII) are kept byte for byte, or refused as
// invalid arguments; none is lost, merged or corrupts another.
func TestLabelsWithOddKeysAreKeptExactlyOrRefused(t *testing.T) {
	store, engine := newStore(t)
	data := []byte("labelled")
	if err := content.WriteBlob(t.Context(), store, "labelled", bytes.NewReader(data), descriptorOf(data)); err != nil {
		t.Fatal(err)
	}
	dgst := digest.FromBytes(data)
	odd := []string{
		"containerd.io/gc.ref.content.l.0", "a=b", "a,b", `a"b`, "a b", "ключ", "a\nb", "labels", ".",
		"a..b", strings.Repeat("k", 1000), "",
	}
	want := map[string]string{}
	for i, key := range odd {
		value := strings.Repeat("v", i)
		_, err := store.Update(t.Context(), content.Info{Digest: dgst, Labels: map[string]string{key: value}}, "labels."+key)
		switch {
		case err == nil:
			want[key] = value
		case errdefs.IsInvalidArgument(err):
			t.Logf("label key %q refused: %v", key, err)
		default:
			t.Errorf("label %q: %v, want success or ErrInvalidArgument", key, err)
		}
	}
	info, err := store.Info(t.Context(), dgst)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Labels) != len(want) {
		t.Errorf("labels %q, want %q", info.Labels, want)
	}
	for key, value := range want {
		if info.Labels[key] != value {
			t.Errorf("label %q is %q, want %q", key, info.Labels[key], value)
		}
	}
	// A key over containerd's bound (4096 bytes for key and value) is refused, not stored.
	_, err = store.Update(t.Context(), content.Info{Digest: dgst, Labels: map[string]string{strings.Repeat("k", 5000): "v"}}, "labels")
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("a 5000-byte label key: %v, want ErrInvalidArgument", err)
	}
	if after, err := store.Info(t.Context(), dgst); err != nil || len(after.Labels) != len(want) {
		t.Errorf("a refused update changed the labels: %q, %v", after.Labels, err)
	}
	wantStoreSound(t, engine)
}

// The errors the attacks above expect are containerd's kinds, and stay ocicas's too.
func TestAFailedPreconditionIsAlsoTheOcicasError(t *testing.T) {
	store, _ := newStore(t)
	w, err := store.Writer(t.Context(), content.WithRef("both-kinds"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	err = w.Commit(t.Context(), 3, digest.FromBytes([]byte("abd")))
	if !errdefs.IsFailedPrecondition(err) || !errors.Is(err, ocicas.ErrDigestMismatch) {
		t.Fatalf("Commit with a wrong digest: %v", err)
	}
}
