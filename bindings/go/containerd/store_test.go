package containerd

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// countingIngester counts the Writer calls made to its store.
type countingIngester struct {
	*Store
	attempts atomic.Int32
}

func (c *countingIngester) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	c.attempts.Add(1)
	return c.Store.Writer(ctx, opts...)
}

func TestOpenWriterWaitsForTheHolderOfTheRefAndResumesItsIngest(t *testing.T) {
	store, _ := newStore(t)
	ctx := context.Background()
	data := []byte("written by two writers in turn")
	holder, err := store.Writer(ctx, content.WithRef("shared"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Write(data[:10]); err != nil {
		t.Fatal(err)
	}

	counting := &countingIngester{Store: store}
	opened := make(chan content.Writer, 1)
	failed := make(chan error, 1)
	go func() {
		waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		w, err := content.OpenWriter(waitCtx, counting, content.WithRef("shared"))
		if err != nil {
			failed <- err
			return
		}
		opened <- w
	}()
	// A second attempt means the first one was refused as unavailable and OpenWriter retried.
	for deadline := time.Now().Add(time.Minute); counting.attempts.Load() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("OpenWriter did not try again")
		}
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	var next content.Writer
	select {
	case next = <-opened:
	case err := <-failed:
		t.Fatalf("OpenWriter: %v", err)
	}
	defer next.Close()
	status, err := next.Status()
	if err != nil || status.Offset != 10 {
		t.Fatalf("the next writer's status: %+v, %v", status, err)
	}
	if _, err := next.Write(data[10:]); err != nil {
		t.Fatal(err)
	}
	if err := next.Commit(ctx, int64(len(data)), digest.FromBytes(data)); err != nil {
		t.Fatal(err)
	}
}

func TestOpenWriterGivesUpWithUnavailableWhenItsContextEnds(t *testing.T) {
	store, _ := newStore(t)
	holder, err := store.Writer(context.Background(), content.WithRef("busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = content.OpenWriter(ctx, store, content.WithRef("busy"))
	wantKind(t, "OpenWriter of a held ref", err, errdefs.IsUnavailable, errdefs.ErrUnavailable)
}

// content.OpenWriter may call Writer again just as its context ends (its retry timer and the
// deadline fire together): that call must be unavailable too, or OpenWriter returns it as is.
func TestWriterWithAnEndedContextOnAHeldRefIsUnavailableAndTheContextsError(t *testing.T) {
	store, _ := newStore(t)
	holder, err := store.Writer(context.Background(), content.WithRef("busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = store.Writer(ctx, content.WithRef("busy"))
	wantKind(t, "Writer of a held ref with an ended context", err, errdefs.IsUnavailable, errdefs.ErrUnavailable)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the error is not the context's too: %v", err)
	}
}

func TestWriteBlobReadBlobAndCopy(t *testing.T) {
	store, _ := newStore(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	desc := descriptorOf(data)
	labels := map[string]string{"containerd.io/gc.root": "now"}
	if err := content.WriteBlob(ctx, store, "blob", bytes.NewReader(data), desc, content.WithLabels(labels)); err != nil {
		t.Fatal(err)
	}
	read, err := content.ReadBlob(ctx, store, desc)
	if err != nil || !bytes.Equal(read, data) {
		t.Fatalf("ReadBlob: %d bytes, %v", len(read), err)
	}
	info, err := store.Info(ctx, desc.Digest)
	if err != nil || info.Size != desc.Size || info.Labels["containerd.io/gc.root"] != "now" {
		t.Fatalf("Info: %+v, %v", info, err)
	}
	// Stored already: the reader is not even read.
	if err := content.WriteBlob(ctx, store, "again", failingReader{t}, desc); err != nil {
		t.Fatal(err)
	}
	if _, err := content.ReadBlob(ctx, store, ocispec.Descriptor{Digest: missing}); !errdefs.IsNotFound(err) {
		t.Fatalf("ReadBlob of a missing blob: %v", err)
	}

	// Copy resumes an ingest a closed writer left, seeking its source past what was written.
	other := bytes.Repeat([]byte("resume me "), 5000)
	otherDesc := descriptorOf(other)
	first, err := content.OpenWriter(ctx, store, content.WithRef("resumed"), content.WithDescriptor(otherDesc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Write(other[:12345]); err != nil {
		t.Fatal(err)
	}
	first.Close()
	second, err := content.OpenWriter(ctx, store, content.WithRef("resumed"), content.WithDescriptor(otherDesc))
	if err != nil {
		t.Fatal(err)
	}
	source := &countingReader{Reader: bytes.NewReader(other)}
	if err := content.Copy(ctx, second, source, otherDesc.Size, otherDesc.Digest); err != nil {
		t.Fatal(err)
	}
	if source.read != otherDesc.Size-12345 {
		t.Fatalf("Copy read %d bytes of its source, want only the %d not written yet", source.read, otherDesc.Size-12345)
	}
	if read, err := content.ReadBlob(ctx, store, otherDesc); err != nil || !bytes.Equal(read, other) {
		t.Fatalf("ReadBlob of the resumed blob: %d bytes, %v", len(read), err)
	}

	// A source that is not what the descriptor says: nothing stored.
	wrong := descriptorOf([]byte("something else"))
	err = content.WriteBlob(ctx, store, "wrong", strings.NewReader("something ELSE"), wrong)
	wantKind(t, "WriteBlob of the wrong bytes", err, errdefs.IsFailedPrecondition, errdefs.ErrFailedPrecondition)
	if _, err := store.Info(ctx, wrong.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("the wrong bytes were stored: %v", err)
	}
}

// countingReader is a ReadSeeker that counts the bytes read from it.
type countingReader struct {
	*bytes.Reader
	read int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	r.read += int64(n)
	return n, err
}

func TestWalkUpdateDeleteAndIngestManagement(t *testing.T) {
	store, _ := newStore(t)
	ctx := context.Background()
	var descs []ocispec.Descriptor
	for i, text := range []string{"one", "two", "three"} {
		data := []byte(text)
		desc := descriptorOf(data)
		labels := map[string]string{"n": text, "even": []string{"yes", "no"}[i%2]}
		if err := content.WriteBlob(ctx, store, text, bytes.NewReader(data), desc, content.WithLabels(labels)); err != nil {
			t.Fatal(err)
		}
		descs = append(descs, desc)
	}
	walked := func(filters ...string) []digest.Digest {
		var found []digest.Digest
		if err := store.Walk(ctx, func(info content.Info) error {
			found = append(found, info.Digest)
			return nil
		}, filters...); err != nil {
			t.Fatal(err)
		}
		return found
	}
	if got := walked(`labels.even==yes`); len(got) != 2 {
		t.Fatalf("walk of even==yes: %v", got)
	}
	if got := walked(`labels.n==two`, `labels.n==three`); len(got) != 2 {
		t.Fatalf("walk of two or three: %v", got)
	}
	stop := errors.New("stop")
	if err := store.Walk(ctx, func(content.Info) error { return stop }); err != stop {
		t.Fatalf("Walk returned %v, not its callback's error", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := store.Walk(cancelled, func(content.Info) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Walk with a cancelled context: %v", err)
	}

	// Field paths change one key; none replace all.
	info, err := store.Update(ctx, content.Info{Digest: descs[0].Digest, Labels: map[string]string{"even": "maybe"}}, "labels.even", "labels.n")
	if err != nil || len(info.Labels) != 1 || info.Labels["even"] != "maybe" {
		t.Fatalf("Update by field paths: %+v, %v", info.Labels, err)
	}
	info, err = store.Update(ctx, content.Info{Digest: descs[0].Digest})
	if err != nil || len(info.Labels) != 0 {
		t.Fatalf("Update of all labels to none: %+v, %v", info.Labels, err)
	}

	if err := store.Delete(ctx, descs[1].Digest); err != nil {
		t.Fatal(err)
	}
	if got := walked(); len(got) != 2 {
		t.Fatalf("walk after a delete: %v", got)
	}

	// Ingests: listed with filters, aborted once their writer is closed.
	for _, ref := range []string{"ingest-a", "ingest-b"} {
		w, err := store.Writer(ctx, content.WithRef(ref), content.WithDescriptor(ocispec.Descriptor{Size: 100}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(ref)); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	statuses, err := store.ListStatuses(ctx, "ref==ingest-b")
	if err != nil || len(statuses) != 1 || statuses[0].Ref != "ingest-b" || statuses[0].Offset != 8 || statuses[0].Total != 100 {
		t.Fatalf("ListStatuses: %+v, %v", statuses, err)
	}
	if err := store.Abort(ctx, "ingest-b"); err != nil {
		t.Fatal(err)
	}
	statuses, err = store.ListStatuses(ctx)
	if err != nil || len(statuses) != 1 || statuses[0].Ref != "ingest-a" {
		t.Fatalf("ListStatuses after an abort: %+v, %v", statuses, err)
	}
}

func TestTheWriterOutlivesTheContextItWasOpenedWith(t *testing.T) {
	store, _ := newStore(t)
	opening, cancel := context.WithCancel(context.Background())
	w, err := store.Writer(opening, content.WithRef("long-lived"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cancel()
	data := []byte("written after the opening context ended")
	if _, err := w.Write(data); err != nil {
		t.Fatalf("Write: %v", err)
	}

	// Commit's own context is honoured: a cancelled one stores nothing, the ingest stays.
	cancelledCommit, cancelCommit := context.WithCancel(context.Background())
	cancelCommit()
	if err := w.Commit(cancelledCommit, 0, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit with a cancelled context: %v", err)
	}
	resumed, err := store.Writer(context.Background(), content.WithRef("long-lived"))
	if err != nil {
		t.Fatal(err)
	}
	if err := resumed.Commit(context.Background(), int64(len(data)), digest.FromBytes(data)); err != nil {
		t.Fatal(err)
	}
}

func TestStoringStoredContentAgainKeepsCreatedAtAndUpdatedAt(t *testing.T) {
	store, _ := newStore(t)
	ctx := context.Background()
	data := []byte("stored twice")
	desc := descriptorOf(data)
	if err := content.WriteBlob(ctx, store, "first", bytes.NewReader(data), desc); err != nil {
		t.Fatal(err)
	}
	first, err := store.Info(ctx, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	// The same content again, through a writer that does not declare its digest.
	w, err := store.Writer(ctx, content.WithRef("second"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, 0, ""); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("Commit of stored content: %v", err)
	}
	again, err := store.Info(ctx, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if !again.CreatedAt.Equal(first.CreatedAt) || !again.UpdatedAt.Equal(first.UpdatedAt) {
		t.Fatalf("storing it again moved its times: %v/%v, then %v/%v", first.CreatedAt, first.UpdatedAt, again.CreatedAt, again.UpdatedAt)
	}
	labelled, err := store.Update(ctx, content.Info{Digest: desc.Digest, Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	cleared, err := store.Update(ctx, content.Info{Digest: desc.Digest})
	if err != nil {
		t.Fatal(err)
	}
	if !labelled.CreatedAt.Equal(first.CreatedAt) || labelled.UpdatedAt.Before(first.UpdatedAt) || cleared.UpdatedAt.Before(labelled.UpdatedAt) {
		t.Fatalf("times went back: created %v, updated %v, labelled %v, cleared %v", first.CreatedAt, first.UpdatedAt, labelled.UpdatedAt, cleared.UpdatedAt)
	}
}
