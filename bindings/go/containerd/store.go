// Package containerd makes an ocicas layout a containerd content store: Store implements
// content.Store of github.com/containerd/containerd/v2/core/content, so containerd's helpers
// (content.OpenWriter, WriteBlob, Copy, ReadBlob) and code written against content.Store use
// an OCI image layout that other OCI tools can read too.
//
// Errors carry containerd's kinds (errdefs.IsNotFound, IsAlreadyExists, IsUnavailable for a
// ref another writer holds, IsFailedPrecondition for a wrong size or digest at commit,
// IsInvalidArgument) besides ocicas's own (errors.Is(err, ocicas.ErrNotFound)).
package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	ocicas "github.com/ocicas/ocicas/bindings/go"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Store is a content.Store over an open ocicas Engine. It is safe for use by many goroutines,
// and several Stores, in this or other processes, may share one layout.
type Store struct {
	engine *ocicas.Engine
}

var _ content.Store = (*Store)(nil)

// NewStore is the content store of engine's layout. The caller keeps engine and closes it
// when the Store is no longer used.
func NewStore(engine *ocicas.Engine) *Store {
	return &Store{engine: engine}
}

// Info is what the store knows of the blob dgst: ErrNotFound when it is not stored.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	info, err := s.engine.Info(string(dgst))
	if err != nil {
		return content.Info{}, mapError(err)
	}
	return toInfo(info), nil
}

// Update changes the labels of the blob info.Digest: with no field paths (or "labels") they
// become info.Labels, "labels.<key>" sets or removes that key. Any other field path is
// ErrInvalidArgument: labels are all a blob has that can change.
func (s *Store) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	updated, err := s.engine.UpdateLabels(string(info.Digest), info.Labels, fieldpaths...)
	if err != nil {
		return content.Info{}, mapError(err)
	}
	return toInfo(updated), nil
}

// Walk calls fn for each blob matching any of filters (containerd's filter syntax over
// digest, size and labels.<key>), in digest order, until fn or ctx stops it.
func (s *Store) Walk(ctx context.Context, fn content.WalkFunc, filters ...string) error {
	return mapError(s.engine.Walk(func(info ocicas.Info) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(toInfo(info))
	}, filters...))
}

// Delete removes the blob dgst (and its labels): ErrNotFound when it is not stored.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	// The core's delete is idempotent; containerd's reports a blob that is not there.
	if _, err := s.engine.BlobSize(string(dgst)); err != nil {
		return mapError(err)
	}
	return mapError(s.engine.DeleteBlob(string(dgst)))
}

// ReaderAt opens the blob desc.Digest for reading at any offset; only the digest of desc is
// used. ErrNotFound when it is not stored.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	reader, err := s.engine.OpenBlob(string(desc.Digest))
	if err != nil {
		return nil, mapError(err)
	}
	return &blobReader{reader: reader}, nil
}

// blobReader is an ocicas Reader whose errors have containerd's kinds. Used after Close it
// fails with os.ErrClosed, as containerd's local store (a file) does, where the core Reader
// would panic.
type blobReader struct {
	// mu lets ReadAt calls run together and keeps Close from ending the reader under them.
	mu     sync.RWMutex
	reader *ocicas.Reader
	closed bool
}

func (r *blobReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return 0, fmt.Errorf("read of a closed blob reader: %w", os.ErrClosed)
	}
	n, err := r.reader.ReadAt(p, off)
	if err == io.EOF {
		return n, err
	}
	return n, mapError(err)
}

func (r *blobReader) Size() int64 {
	return r.reader.Size()
}

// Close closes the reader; closing it again does nothing.
func (r *blobReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return r.reader.Close()
}

// Status is the state of the ingest of ref, whether or not a writer holds it: ErrNotFound
// when there is none.
func (s *Store) Status(ctx context.Context, ref string) (content.Status, error) {
	status, err := s.engine.IngestStatus(ref)
	if err != nil {
		return content.Status{}, mapError(err)
	}
	return toStatus(status), nil
}

// ListStatuses is the state of every ingest matching any of filters (containerd's syntax over
// ref, expected, total and offset), sorted by ref.
func (s *Store) ListStatuses(ctx context.Context, filters ...string) ([]content.Status, error) {
	ingests, err := s.engine.ListIngests(filters...)
	if err != nil {
		return nil, mapError(err)
	}
	statuses := make([]content.Status, 0, len(ingests))
	for _, ingest := range ingests {
		statuses = append(statuses, toStatus(ingest))
	}
	return statuses, nil
}

// Abort removes the ingest of ref: ErrNotFound when there is none, ErrUnavailable while a
// live writer holds it (its owner closes or commits it; containerd's local store would pull
// the file from under the writer).
func (s *Store) Abort(ctx context.Context, ref string) error {
	return mapError(s.engine.AbortIngest(ref))
}

// Writer opens the writer of the ref given with content.WithRef (required:
// ErrInvalidArgument without one), resuming the ingest a closed writer of that ref left.
// content.WithDescriptor gives the expected size (0 or less: unknown) and digest; a digest
// already stored is ErrAlreadyExists, a ref another live writer holds ErrUnavailable
// (content.OpenWriter waits for it), as is a ctx that ends before the ref is opened (the error
// is ctx's too). ctx bounds the opening only, as in containerd: the writer's own calls do not
// depend on it.
func (s *Store) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var options content.WriterOpts
	for _, opt := range opts {
		if err := opt(&options); err != nil {
			return nil, err
		}
	}
	if options.Ref == "" {
		return nil, fmt.Errorf("a writer needs a ref (content.WithRef): %w", errdefs.ErrInvalidArgument)
	}
	expect := &ocicas.WriterOptions{Size: max(options.Desc.Size, 0), Digest: string(options.Desc.Digest)}
	ingest, err := s.engine.Writer(ctx, options.Ref, expect)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ocicas.ErrCancelled) {
			// ctx ended before the ref could be opened (a live writer may hold it, which is
			// what ocicas waits for): unavailable, as content.OpenWriter expects of a ref it
			// retries, and ctx's error too. A call that raced the deadline in OpenWriter's
			// retry loop otherwise ended it with a bare cancellation.
			return nil, &kindError{kind: errdefs.ErrUnavailable, err: err}
		}
		return nil, mapError(err)
	}
	return &writer{ingest: ingest}, nil
}

func toInfo(info ocicas.Info) content.Info {
	return content.Info{
		Digest:    digest.Digest(info.Digest),
		Size:      info.Size,
		CreatedAt: info.CreatedAt,
		UpdatedAt: info.UpdatedAt,
		Labels:    info.Labels,
	}
}

func toStatus(status ocicas.Status) content.Status {
	return content.Status{
		Ref:       status.Ref,
		Offset:    status.Offset,
		Total:     status.Total,
		Expected:  digest.Digest(status.Expected),
		StartedAt: status.StartedAt,
		UpdatedAt: status.UpdatedAt,
	}
}
