package ocicas

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorIsMatchesTheCodeWhateverTheMessage(t *testing.T) {
	sentinels := []*Error{ErrInvalidArgument, ErrNotFound, ErrAlreadyExists, ErrInvalidImage, ErrDigestMismatch,
		ErrSizeMismatch, ErrClobber, ErrLocked, ErrIO, ErrTooLarge, ErrUnsupportedMediaType, ErrNotImplemented,
		ErrPanic, ErrNotComputed, ErrConsumed, ErrUnauthorized, ErrRemote}
	for i, sentinel := range sentinels {
		if sentinel.Code != Code(i+1) {
			t.Errorf("sentinel %v has code %d, want %d (the C status)", sentinel, sentinel.Code, i+1)
		}
		err := fmt.Errorf("wrapped: %w", &Error{Code: sentinel.Code, Message: "blob sha256:ab not found"})
		for _, other := range sentinels {
			if got, want := errors.Is(err, other), other == sentinel; got != want {
				t.Errorf("errors.Is(%v, %v) = %v", err, other, got)
			}
		}
	}
}

func TestErrorTextIsTheLibraryMessageOrTheCodeName(t *testing.T) {
	if got := (&Error{Code: CodeNotFound, Message: "ref x not found"}).Error(); got != "ocicas: ref x not found" {
		t.Errorf("Error() = %q", got)
	}
	if got := ErrLocked.Error(); got != "ocicas: locked" {
		t.Errorf("Error() = %q", got)
	}
	if got := Code(99).String(); got != "ocicas status 99" {
		t.Errorf("String() = %q", got)
	}
}
