package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_blob_open(const ocicas_engine *engine, const char *digest, ocicas_reader **out, char **message) {
    return ocicas_go_result(ocicas_blob_open(engine, digest, out), message);
}

static ocicas_status go_reader_read_at(const ocicas_reader *reader, uint8_t *buf, size_t len, uint64_t offset, size_t *out, char **message) {
    return ocicas_go_result(ocicas_reader_read_at(reader, buf, len, offset, out), message);
}

static ocicas_status go_reader_size(const ocicas_reader *reader, uint64_t *out, char **message) {
    return ocicas_go_result(ocicas_reader_size(reader, out), message);
}
*/
import "C"

import (
	"io"
	"runtime"
)

// Reader reads one committed blob at any offset. ReadAt may be called from many goroutines
// at once; Close waits for those in flight. It has the method set of containerd's
// content.ReaderAt.
type Reader struct {
	handle[*C.ocicas_reader]
	size    int64
	cleanup runtime.Cleanup
}

// OpenBlob opens the blob for random access. ErrNotFound when it is not stored,
// ErrInvalidArgument for a malformed digest.
func (e *Engine) OpenBlob(digest string) (*Reader, error) {
	var args cArgs
	defer args.free()
	cdigest := args.str("digest", digest)
	if args.err != nil {
		return nil, args.err
	}
	var reader *C.ocicas_reader
	var message *C.char
	status := C.go_blob_open(e.use(), cdigest, &reader, &message)
	e.done()
	if err := toError(status, message); err != nil {
		return nil, err
	}
	var size C.uint64_t
	if err := toError(C.go_reader_size(reader, &size, &message), message); err != nil {
		C.ocicas_reader_free(reader)
		return nil, err
	}
	r := &Reader{handle: newHandle("Reader", reader), size: int64(size)}
	r.cleanup = runtime.AddCleanup(r, func(reader *C.ocicas_reader) { C.ocicas_reader_free(reader) }, reader)
	return r, nil
}

// Size is the blob's size in bytes.
func (r *Reader) Size() int64 {
	return r.size
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt: fewer only at the end of the blob, with
// io.EOF.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, invalidArgument("negative offset %d", off)
	}
	total := 0
	for total < len(p) {
		var n C.size_t
		var message *C.char
		rest := p[total:]
		status := C.go_reader_read_at(r.use(), bytesPointer(rest), C.size_t(len(rest)), C.uint64_t(off)+C.uint64_t(total), &n, &message)
		r.done()
		if err := toError(status, message); err != nil {
			return total, err
		}
		if n == 0 {
			return total, io.EOF
		}
		total += int(n)
	}
	return total, nil
}

// Close frees the reader once the calls in flight in other goroutines ended; closing it again
// does nothing. The error is always nil.
func (r *Reader) Close() error {
	reader, open := r.close()
	if !open {
		return nil
	}
	r.cleanup.Stop()
	C.ocicas_reader_free(reader)
	return nil
}
