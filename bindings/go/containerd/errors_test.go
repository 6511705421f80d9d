package containerd

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	ocicas "github.com/ocicas/ocicas/bindings/go"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var missing = digest.Digest("sha256:" + strings.Repeat("0", 64))

func TestEveryStoreMethodReportsNotFoundWithItsKindAndOcicasCode(t *testing.T) {
	store, _ := newStore(t)
	ctx := context.Background()
	_, infoErr := store.Info(ctx, missing)
	_, readerErr := store.ReaderAt(ctx, ocispec.Descriptor{Digest: missing})
	_, updateErr := store.Update(ctx, content.Info{Digest: missing, Labels: map[string]string{"k": "v"}})
	_, statusErr := store.Status(ctx, "no-such-ref")
	for what, err := range map[string]error{
		"Info":     infoErr,
		"ReaderAt": readerErr,
		"Update":   updateErr,
		"Delete":   store.Delete(ctx, missing),
		"Status":   statusErr,
		"Abort":    store.Abort(ctx, "no-such-ref"),
	} {
		wantKind(t, what, err, errdefs.IsNotFound, errdefs.ErrNotFound)
		if !errors.Is(err, ocicas.ErrNotFound) {
			t.Errorf("%s: %v is not ocicas.ErrNotFound too", what, err)
		}
		if errdefs.IsInvalidArgument(err) || errdefs.IsAlreadyExists(err) || errdefs.IsUnavailable(err) {
			t.Errorf("%s: %v has more than one kind", what, err)
		}
	}
	if !strings.Contains(infoErr.Error(), string(missing)) {
		t.Errorf("the message %q does not name the blob", infoErr)
	}
}

func TestBadArgumentsAreInvalidArgument(t *testing.T) {
	store, _ := newStore(t)
	ctx := context.Background()
	data := []byte("labelled")
	if err := content.WriteBlob(ctx, store, "labelled", strings.NewReader(string(data)), descriptorOf(data)); err != nil {
		t.Fatal(err)
	}
	_, noRef := store.Writer(ctx)
	_, badDigest := store.Info(ctx, "sha256:ABC")
	_, badField := store.Update(ctx, content.Info{Digest: digest.FromBytes(data)}, "size")
	_, hugeLabel := store.Update(ctx, content.Info{Digest: digest.FromBytes(data), Labels: map[string]string{"k": strings.Repeat("v", 1<<20)}})
	_, badFilter := store.ListStatuses(ctx, "ref==")
	_, badWriterDigest := store.Writer(ctx, content.WithRef("r"), content.WithDescriptor(ocispec.Descriptor{Digest: "sha256:zz"}))
	for what, err := range map[string]error{
		"Writer without a ref":         noRef,
		"Info of a malformed digest":   badDigest,
		"Update of the size":           badField,
		"a label over the limit":       hugeLabel,
		"a malformed filter":           badFilter,
		"Writer of a malformed digest": badWriterDigest,
	} {
		wantKind(t, what, err, errdefs.IsInvalidArgument, errdefs.ErrInvalidArgument)
	}
}

func TestWriterErrorsHaveContainerdKinds(t *testing.T) {
	store, _ := newStore(t)
	ctx := context.Background()
	data := []byte("twelve bytes")
	desc := descriptorOf(data)

	// A ref another writer holds.
	held, err := store.Writer(ctx, content.WithRef("held"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Writer(ctx, content.WithRef("held"))
	wantKind(t, "a second writer of a held ref", err, errdefs.IsUnavailable, errdefs.ErrUnavailable)
	wantKind(t, "Abort of a held ref", store.Abort(ctx, "held"), errdefs.IsUnavailable, errdefs.ErrUnavailable)
	if _, err := held.Write(data); err != nil {
		t.Fatal(err)
	}
	wantKind(t, "Truncate to 5", held.Truncate(5), errdefs.IsNotImplemented, errdefs.ErrNotImplemented)

	// Wrong size, then wrong digest: nothing stored, the ingest resumable, the writer closed.
	err = held.Commit(ctx, desc.Size+1, "")
	wantKind(t, "Commit of a wrong size", err, errdefs.IsFailedPrecondition, errdefs.ErrFailedPrecondition)
	if !errors.Is(err, ocicas.ErrSizeMismatch) {
		t.Errorf("%v is not ocicas.ErrSizeMismatch too", err)
	}
	_, err = held.Write(data)
	wantKind(t, "Write after Commit", err, errdefs.IsFailedPrecondition, errdefs.ErrFailedPrecondition)
	resumed, err := store.Writer(ctx, content.WithRef("held"))
	if err != nil {
		t.Fatalf("Commit did not release the ref: %v", err)
	}
	err = resumed.Commit(ctx, 0, digest.FromString("other"))
	wantKind(t, "Commit of a wrong digest", err, errdefs.IsFailedPrecondition, errdefs.ErrFailedPrecondition)
	if _, err := store.Info(ctx, desc.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("a failed commit stored the blob: %v", err)
	}
	if status, err := store.Status(ctx, "held"); err != nil || status.Offset != desc.Size {
		t.Fatalf("the ingest after failed commits: %+v, %v", status, err)
	}

	// Content already stored: at open when the digest is given, else at commit.
	if err := content.WriteBlob(ctx, store, "other-ref", strings.NewReader(string(data)), desc); err != nil {
		t.Fatal(err)
	}
	_, err = store.Writer(ctx, content.WithRef("new"), content.WithDescriptor(desc))
	wantKind(t, "Writer of a stored digest", err, errdefs.IsAlreadyExists, errdefs.ErrAlreadyExists)
	again, err := store.Writer(ctx, content.WithRef("held"))
	if err != nil {
		t.Fatal(err)
	}
	err = again.Commit(ctx, desc.Size, "")
	wantKind(t, "Commit of stored content", err, errdefs.IsAlreadyExists, errdefs.ErrAlreadyExists)
	if again.Digest() != desc.Digest {
		t.Fatalf("Digest after an already-exists commit: %s, want %s", again.Digest(), desc.Digest)
	}
	if _, err := store.Status(ctx, "held"); !errdefs.IsNotFound(err) {
		t.Fatalf("an already-exists commit left the ingest: %v", err)
	}
}

func TestErrorsWithoutAContainerdKindAreReturnedAsTheyAre(t *testing.T) {
	for _, err := range []error{nil, context.Canceled, &ocicas.Error{Code: ocicas.CodeIO, Message: "disk on fire"}} {
		if got := mapError(err); got != err {
			t.Errorf("mapError(%v) = %v", err, got)
		}
	}
	damaged := mapError(&ocicas.Error{Code: ocicas.CodeInvalidImage, Message: "planted"})
	if !errdefs.IsDataLoss(damaged) || !errors.Is(damaged, ocicas.ErrInvalidImage) || damaged.Error() != "ocicas: planted" {
		t.Errorf("a damaged layout's error: %v", damaged)
	}
}
