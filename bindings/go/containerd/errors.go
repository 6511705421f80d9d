package containerd

import (
	"errors"

	"github.com/containerd/errdefs"
	ocicas "github.com/ocicas/ocicas/bindings/go"
)

// kinds are the containerd error kinds of ocicas's status codes. A code not here (an I/O
// error, a panic inside the library) has no errdefs kind: it is returned as it is, as
// containerd's local store returns the file system's errors.
var kinds = map[ocicas.Code]error{
	ocicas.CodeInvalidArgument: errdefs.ErrInvalidArgument,
	// Over one of the store's limits (a label's size): containerd refuses such labels as
	// invalid arguments.
	ocicas.CodeTooLarge:      errdefs.ErrInvalidArgument,
	ocicas.CodeNotFound:      errdefs.ErrNotFound,
	ocicas.CodeAlreadyExists: errdefs.ErrAlreadyExists,
	// A ref held by a live writer: content.OpenWriter waits and tries again.
	ocicas.CodeLocked:         errdefs.ErrUnavailable,
	ocicas.CodeSizeMismatch:   errdefs.ErrFailedPrecondition,
	ocicas.CodeDigestMismatch: errdefs.ErrFailedPrecondition,
	ocicas.CodeNotImplemented: errdefs.ErrNotImplemented,
	// A damaged or planted file in the layout.
	ocicas.CodeInvalidImage: errdefs.ErrDataLoss,
}

// kindError is an ocicas error that is also of a containerd kind: errors.Is holds for both the
// errdefs sentinel and the ocicas one, and the message is the library's, which names the blob
// or ref.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// mapError gives an ocicas error its containerd kind; other errors (nil, a context's, a
// callback's) are returned unchanged.
func mapError(err error) error {
	var oe *ocicas.Error
	if !errors.As(err, &oe) {
		return err
	}
	kind, ok := kinds[oe.Code]
	if !ok {
		return err
	}
	return &kindError{kind: kind, err: err}
}
