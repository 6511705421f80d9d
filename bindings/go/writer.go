package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_writer_open(const ocicas_engine *engine, const char *ref, int64_t expected_size,
                                    const char *expected_digest, ocicas_writer **out, char **message) {
    return ocicas_go_result(ocicas_writer_open(engine, ref, expected_size, expected_digest, out), message);
}

static ocicas_status go_writer_write(ocicas_writer *writer, const uint8_t *data, size_t len, char **message) {
    return ocicas_go_result(ocicas_writer_write(writer, data, len), message);
}

static ocicas_status go_writer_status(const ocicas_writer *writer, ocicas_ingest_status **out, char **message) {
    return ocicas_go_result(ocicas_writer_status(writer, out), message);
}

static ocicas_status go_writer_digest(const ocicas_writer *writer, char **out, char **message) {
    return ocicas_go_result(ocicas_writer_digest(writer, out), message);
}

static ocicas_status go_writer_truncate(ocicas_writer *writer, uint64_t size, char **message) {
    return ocicas_go_result(ocicas_writer_truncate(writer, size), message);
}

static ocicas_status go_writer_commit(ocicas_writer *writer, int64_t size, const char *expected, const char *labels_json,
                                      char **out, char **message) {
    return ocicas_go_result(ocicas_writer_commit(writer, size, expected, labels_json, out), message);
}

static ocicas_status go_writer_close(ocicas_writer *writer, char **message) {
    return ocicas_go_result(ocicas_writer_close(writer), message);
}
*/
import "C"

import (
	"context"
	"encoding/json"
	"runtime"
	"time"
)

// Writer writes the content of one ingest ref, as containerd's content.Writer: Write appends,
// Commit stores the blob, Close leaves an uncommitted ingest on disk to be resumed by the
// next Writer of the same ref. Calls from several goroutines take turns (the order of their
// writes is theirs to arrange); Close waits for the one in flight.
type Writer struct {
	handle[*C.ocicas_writer]
	cleanup runtime.Cleanup
}

// WriterOptions are what the content must turn out to be; the zero value checks nothing.
type WriterOptions struct {
	// Size is the total size; 0 means unknown (as in containerd).
	Size int64
	// Digest is the digest the content must have; "" means unknown.
	Digest string
}

// Status is the state of one ingest.
type Status struct {
	Ref    string `json:"ref"`
	Offset int64  `json:"offset"`
	// Total is the expected size, 0 when unknown.
	Total int64 `json:"total"`
	// Expected is the expected digest, "" when unknown.
	Expected  string    `json:"expected"`
	StartedAt time.Time `json:"startedAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Writer opens the writer of ref, resuming at its offset the ingest a closed writer left.
// ErrLocked while a live writer, in any process, holds ref; ErrAlreadyExists when
// opts.Digest is already stored (nothing to write); ErrInvalidArgument for an empty ref or
// options that differ from those the ingest was started with. ctx is for the open alone (a
// done ctx is both its error and ErrCancelled); as in containerd, Commit takes its own and
// Write none.
func (e *Engine) Writer(ctx context.Context, ref string, opts *WriterOptions) (*Writer, error) {
	if err := doneError(ctx); err != nil {
		return nil, err
	}
	var args cArgs
	defer args.free()
	cref := args.str("ref", ref)
	expectedSize := C.int64_t(C.OCICAS_SIZE_UNKNOWN)
	var expectedDigest *C.char
	if opts != nil {
		if opts.Size > 0 {
			expectedSize = C.int64_t(opts.Size)
		}
		expectedDigest = args.optionalStr("opts.Digest", opts.Digest)
	}
	if args.err != nil {
		return nil, args.err
	}
	var writer *C.ocicas_writer
	var message *C.char
	status := C.go_writer_open(e.use(), cref, expectedSize, expectedDigest, &writer, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return nil, err
	}
	w := &Writer{handle: newSerialHandle("Writer", writer)}
	w.cleanup = runtime.AddCleanup(w, func(writer *C.ocicas_writer) { C.ocicas_writer_close(writer) }, writer)
	return w, nil
}

// Write appends p. ErrSizeMismatch, with nothing written, when p would pass the expected size.
func (w *Writer) Write(p []byte) (int, error) {
	var message *C.char
	status := C.go_writer_write(w.use(), bytesPointer(p), C.size_t(len(p)), &message)
	w.done()
	runtime.KeepAlive(p)
	if err := toError(status, message); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Status is the state of the writer's ingest.
func (w *Writer) Status() (Status, error) {
	var out *C.ocicas_ingest_status
	var message *C.char
	status := C.go_writer_status(w.use(), &out, &message)
	w.done()
	if err := toError(status, message); err != nil {
		return Status{}, err
	}
	return takeStatus(out), nil
}

// Digest is the digest of everything written so far.
func (w *Writer) Digest() (string, error) {
	var out, message *C.char
	status := C.go_writer_digest(w.use(), &out, &message)
	w.done()
	if err := toError(status, message); err != nil {
		return "", err
	}
	return takeString(out), nil
}

// Truncate restarts the ingest from nothing. Only size 0 is supported (ErrNotImplemented
// otherwise).
func (w *Writer) Truncate(size int64) error {
	if size < 0 {
		return invalidArgument("negative size %d", size)
	}
	var message *C.char
	status := C.go_writer_truncate(w.use(), C.uint64_t(size), &message)
	w.done()
	return toError(status, message)
}

// CommitOption changes what Commit stores.
type CommitOption func(*commitOptions)

type commitOptions struct {
	labels map[string]string
}

// WithLabels sets labels on the committed blob, in the same step as the commit.
func WithLabels(labels map[string]string) CommitOption {
	return func(o *commitOptions) { o.labels = labels }
}

// Commit stores what was written as a blob and returns its digest. size (0: unknown, as in
// containerd) and expected ("": unknown) are checked, size first: ErrSizeMismatch or
// ErrDigestMismatch store nothing and leave the writer usable and the ingest resumable.
// ErrAlreadyExists means the blob was already stored: the ingest is removed, the content is
// there. The Writer must still be closed. A done ctx is both its error and ErrCancelled, with
// nothing stored and the ingest resumable (containerd's Commit(ctx, size, expected, opts...)).
func (w *Writer) Commit(ctx context.Context, size int64, expected string, opts ...CommitOption) (string, error) {
	if err := doneError(ctx); err != nil {
		return "", err
	}
	var options commitOptions
	for _, opt := range opts {
		opt(&options)
	}
	var args cArgs
	defer args.free()
	cexpected := args.optionalStr("expected", expected)
	var clabels *C.char // NULL: no labels
	if options.labels != nil {
		encoded, err := json.Marshal(options.labels)
		if err != nil {
			return "", err
		}
		clabels = args.str("labels", string(encoded))
	}
	if args.err != nil {
		return "", args.err
	}
	csize := C.int64_t(C.OCICAS_SIZE_UNKNOWN)
	if size > 0 {
		csize = C.int64_t(size)
	}
	var out, message *C.char
	status := C.go_writer_commit(w.use(), csize, cexpected, clabels, &out, &message)
	w.done()
	if err := toError(status, message); err != nil {
		return "", err
	}
	return takeString(out), nil
}

// Close closes the writer. An uncommitted ingest stays on disk, resumable, with its hash
// state saved; the error says when saving it failed (a resume then re-reads the data).
// A call in flight in another goroutine ends first. Closing again does nothing.
func (w *Writer) Close() error {
	writer, open := w.close()
	if !open {
		return nil
	}
	w.cleanup.Stop()
	var message *C.char
	status := C.go_writer_close(writer, &message)
	return toError(status, message)
}
