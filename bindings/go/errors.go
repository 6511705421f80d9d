package ocicas

/*
#include "ocicas_go.h"
*/
import "C"

import "fmt"

// Code is an ocicas_status other than OCICAS_OK. The numbers are the C ABI's and never change.
type Code uint32

// The status codes of include/ocicas.h.
const (
	CodeInvalidArgument      Code = 1
	CodeNotFound             Code = 2
	CodeAlreadyExists        Code = 3
	CodeInvalidImage         Code = 4
	CodeDigestMismatch       Code = 5
	CodeSizeMismatch         Code = 6
	CodeClobber              Code = 7
	CodeLocked               Code = 8
	CodeIO                   Code = 9
	CodeTooLarge             Code = 10
	CodeUnsupportedMediaType Code = 11
	CodeNotImplemented       Code = 12
	CodePanic                Code = 13
	CodeNotComputed          Code = 14
	CodeConsumed             Code = 15
	CodeUnauthorized         Code = 16
	CodeRemote               Code = 17
	CodeCancelled            Code = 18
)

// String is the C identifier of the code, e.g. "OCICAS_ERR_NOT_FOUND" ("OCICAS_ERR_UNKNOWN"
// for a number that is no status), from the library's table (ocicas_status_name).
func (c Code) String() string {
	return C.GoString(C.ocicas_status_name(C.uint32_t(c)))
}

// Description is a short English description of the code's kind, e.g. "not found", from the
// library's table (ocicas_status_message).
func (c Code) Description() string {
	return C.GoString(C.ocicas_status_message(C.uint32_t(c)))
}

// Error is a failed ocicas call: its status code and the library's message, which names the
// blob, reference or file concerned.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "ocicas: " + e.Code.Description()
	}
	return "ocicas: " + e.Message
}

// Is makes errors.Is(err, ErrNotFound) true for every error with that code, whatever its message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels, one per status code, for errors.Is.
var (
	ErrInvalidArgument      = &Error{Code: CodeInvalidArgument}
	ErrNotFound             = &Error{Code: CodeNotFound}
	ErrAlreadyExists        = &Error{Code: CodeAlreadyExists}
	ErrInvalidImage         = &Error{Code: CodeInvalidImage}
	ErrDigestMismatch       = &Error{Code: CodeDigestMismatch}
	ErrSizeMismatch         = &Error{Code: CodeSizeMismatch}
	ErrClobber              = &Error{Code: CodeClobber}
	ErrLocked               = &Error{Code: CodeLocked}
	ErrIO                   = &Error{Code: CodeIO}
	ErrTooLarge             = &Error{Code: CodeTooLarge}
	ErrUnsupportedMediaType = &Error{Code: CodeUnsupportedMediaType}
	ErrNotImplemented       = &Error{Code: CodeNotImplemented}
	ErrPanic                = &Error{Code: CodePanic}
	// ErrNotComputed: a Layer's Digest, DiffID or Size before its compressed bytes were read
	// to the end (go-containerregistry's stream.ErrNotComputed).
	ErrNotComputed = &Error{Code: CodeNotComputed, Message: "value not computed until stream is consumed"}
	// ErrConsumed: a Layer's Compressed called a second time (stream.ErrConsumed).
	ErrConsumed = &Error{Code: CodeConsumed, Message: "stream was already consumed"}
	// ErrUnauthorized: a registry refused the credentials, or asked for some and none were given.
	ErrUnauthorized = &Error{Code: CodeUnauthorized}
	// ErrRemote: a registry could not be reached, or answered with an error.
	ErrRemote = &Error{Code: CodeRemote}
	// ErrCancelled: the call stopped because its context was done; the error is also ctx's
	// (errors.Is(err, context.Canceled) or context.DeadlineExceeded).
	ErrCancelled = &Error{Code: CodeCancelled}
)

// invalidArgument is an error found on the Go side before any call, with the code the library
// gives for the same mistake.
func invalidArgument(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf(format, args...)}
}
