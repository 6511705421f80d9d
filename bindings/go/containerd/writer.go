package containerd

import (
	"context"
	"fmt"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	ocicas "github.com/ocicas/ocicas/bindings/go"
	"github.com/opencontainers/go-digest"
)

// writer is a content.Writer over an ocicas ingest Writer. Commit closes it, as containerd's
// contract says, whatever its outcome; the mutex orders Commit and Close against the calls
// of other goroutines.
type writer struct {
	mu sync.Mutex
	// ingest is nil once the writer was committed or closed.
	ingest *ocicas.Writer
	// digest is what Commit found written (stored, or already stored).
	digest digest.Digest
}

// open returns the ingest writer, or an error once the writer was committed or closed.
func (w *writer) open() (*ocicas.Writer, error) {
	if w.ingest == nil {
		return nil, fmt.Errorf("the writer was committed or closed: %w", errdefs.ErrFailedPrecondition)
	}
	return w.ingest, nil
}

// Write appends p. Writing past the expected size is ErrFailedPrecondition, with nothing
// written.
func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ingest, err := w.open()
	if err != nil {
		return 0, err
	}
	n, err := ingest.Write(p)
	return n, mapError(err)
}

// Digest is the digest of what was written so far; after Commit, of what was committed. ""
// when it cannot be had (the writer was closed).
func (w *writer) Digest() digest.Digest {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ingest == nil {
		return w.digest
	}
	written, err := w.ingest.Digest()
	if err != nil {
		return ""
	}
	return digest.Digest(written)
}

// Status is the state of the writer's ingest.
func (w *writer) Status() (content.Status, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ingest, err := w.open()
	if err != nil {
		return content.Status{}, err
	}
	status, err := ingest.Status()
	if err != nil {
		return content.Status{}, mapError(err)
	}
	return toStatus(status), nil
}

// Truncate restarts the ingest from nothing; only size 0 is supported (ErrNotImplemented),
// as in containerd's local store.
func (w *writer) Truncate(size int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	ingest, err := w.open()
	if err != nil {
		return err
	}
	return mapError(ingest.Truncate(size))
}

// Commit stores what was written as a blob, with the labels of content.WithLabels. size (0 or
// less: unknown) and expected ("": unknown) are checked: a mismatch is ErrFailedPrecondition,
// stores nothing, and leaves the ingest to be resumed by the next writer of the ref.
// ErrAlreadyExists: the blob was stored already, the ingest is removed. The writer is closed
// in every case.
func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	ingest, err := w.open()
	if err != nil {
		return err
	}
	w.ingest = nil
	commitErr := w.commit(ctx, ingest, size, expected, opts)
	closeErr := mapError(ingest.Close())
	if commitErr != nil {
		return commitErr
	}
	return closeErr
}

func (w *writer) commit(ctx context.Context, ingest *ocicas.Writer, size int64, expected digest.Digest, opts []content.Opt) error {
	var base content.Info
	for _, opt := range opts {
		if err := opt(&base); err != nil {
			return err
		}
	}
	// What was written, for Digest when the commit finds it stored already.
	written, err := ingest.Digest()
	if err != nil {
		return mapError(err)
	}
	w.digest = digest.Digest(written)
	var commitOpts []ocicas.CommitOption
	if base.Labels != nil {
		commitOpts = append(commitOpts, ocicas.WithLabels(base.Labels))
	}
	committed, err := ingest.Commit(ctx, max(size, 0), string(expected), commitOpts...)
	if err != nil {
		return mapError(err)
	}
	w.digest = digest.Digest(committed)
	return nil
}

// Close closes the writer, leaving an uncommitted ingest to be resumed; closing a committed or
// closed writer does nothing.
func (w *writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ingest == nil {
		return nil
	}
	err := w.ingest.Close()
	w.ingest = nil
	return mapError(err)
}
