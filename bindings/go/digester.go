package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_digester_new(const char *algorithm, ocicas_digester **out, char **message) {
    return ocicas_go_result(ocicas_digester_new(algorithm, out), message);
}

static ocicas_status go_digester_update(ocicas_digester *digester, const uint8_t *data, size_t len, char **message) {
    return ocicas_go_result(ocicas_digester_update(digester, data, len), message);
}

static ocicas_status go_digester_finish(ocicas_digester *digester, char **out, char **message) {
    return ocicas_go_result(ocicas_digester_finish(digester, out), message);
}
*/
import "C"

import "runtime"

// Digester computes a digest, "sha256:<hex>" or "sha512:<hex>", of bytes written to it in
// pieces, with the library's own hashing: what Finish returns is what Writer.Commit and
// WriterOptions.Digest expect. Calls from several goroutines take turns.
type Digester struct {
	handle[*C.ocicas_digester]
	cleanup runtime.Cleanup
}

// NewDigester is a Digester of algorithm, "sha256" or "sha512"; ErrInvalidArgument for any
// other.
func NewDigester(algorithm string) (*Digester, error) {
	var args cArgs
	defer args.free()
	calgorithm := args.str("algorithm", algorithm)
	if args.err != nil {
		return nil, args.err
	}
	var digester *C.ocicas_digester
	var message *C.char
	if err := toError(C.go_digester_new(calgorithm, &digester, &message), message); err != nil {
		return nil, err
	}
	d := &Digester{handle: newSerialHandle("Digester", digester)}
	d.cleanup = runtime.AddCleanup(d, func(digester *C.ocicas_digester) { C.ocicas_digester_free(digester) }, digester)
	return d, nil
}

// Write hashes p (io.Writer). ErrInvalidArgument after Finish.
func (d *Digester) Write(p []byte) (int, error) {
	var message *C.char
	status := C.go_digester_update(d.use(), bytesPointer(p), C.size_t(len(p)), &message)
	d.done()
	runtime.KeepAlive(p)
	if err := toError(status, message); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Finish returns the digest of everything written. It ends the Digester: Write or Finish
// after it is ErrInvalidArgument.
func (d *Digester) Finish() (string, error) {
	var out, message *C.char
	status := C.go_digester_finish(d.use(), &out, &message)
	d.done()
	if err := toError(status, message); err != nil {
		return "", err
	}
	return takeString(out), nil
}

// Close frees the Digester, finished or not; closing it again does nothing. The error is
// always nil.
func (d *Digester) Close() error {
	digester, open := d.close()
	if !open {
		return nil
	}
	d.cleanup.Stop()
	C.ocicas_digester_free(digester)
	return nil
}
