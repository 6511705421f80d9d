package ocicas

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// Each status of include/ocicas.h, by its C name, and the Go sentinel for it.
var sentinelsByCName = map[string]*Error{
	"OCICAS_ERR_INVALID_ARGUMENT":       ErrInvalidArgument,
	"OCICAS_ERR_NOT_FOUND":              ErrNotFound,
	"OCICAS_ERR_ALREADY_EXISTS":         ErrAlreadyExists,
	"OCICAS_ERR_INVALID_IMAGE":          ErrInvalidImage,
	"OCICAS_ERR_DIGEST_MISMATCH":        ErrDigestMismatch,
	"OCICAS_ERR_SIZE_MISMATCH":          ErrSizeMismatch,
	"OCICAS_ERR_CLOBBER":                ErrClobber,
	"OCICAS_ERR_LOCKED":                 ErrLocked,
	"OCICAS_ERR_IO":                     ErrIO,
	"OCICAS_ERR_TOO_LARGE":              ErrTooLarge,
	"OCICAS_ERR_UNSUPPORTED_MEDIA_TYPE": ErrUnsupportedMediaType,
	"OCICAS_ERR_NOT_IMPLEMENTED":        ErrNotImplemented,
	"OCICAS_ERR_PANIC":                  ErrPanic,
	"OCICAS_ERR_NOT_COMPUTED":           ErrNotComputed,
	"OCICAS_ERR_CONSUMED":               ErrConsumed,
	"OCICAS_ERR_UNAUTHORIZED":           ErrUnauthorized,
	"OCICAS_ERR_REMOTE":                 ErrRemote,
	"OCICAS_ERR_CANCELLED":              ErrCancelled,
}

// The Go codes are the numbers of the C header's enumerators, and every enumerator has a Go
// sentinel: a status added to or renumbered in the header fails here.
func TestEveryCodeIsTheCStatusOfTheSameName(t *testing.T) {
	header, err := os.ReadFile("../../include/ocicas.h")
	if err != nil {
		t.Fatal(err)
	}
	enumerators := regexp.MustCompile(`(?m)^\s*(OCICAS_ERR_[A-Z_]+) = (\d+),`).FindAllSubmatch(header, -1)
	if len(enumerators) == 0 {
		t.Fatal("no OCICAS_ERR_ enumerator found in include/ocicas.h")
	}
	seen := map[string]bool{}
	for _, enumerator := range enumerators {
		name := string(enumerator[1])
		number, _ := strconv.Atoi(string(enumerator[2]))
		seen[name] = true
		sentinel, ok := sentinelsByCName[name]
		if !ok {
			t.Errorf("%s (%d) has no Go sentinel", name, number)
			continue
		}
		if sentinel.Code != Code(number) {
			t.Errorf("the Go sentinel for %s has code %d, the header says %d", name, sentinel.Code, number)
		}
		if _, named := codeNames[sentinel.Code]; !named {
			t.Errorf("code %d (%s) has no name", sentinel.Code, name)
		}
	}
	for name := range sentinelsByCName {
		if !seen[name] {
			t.Errorf("%s is not in include/ocicas.h", name)
		}
	}
}

func TestErrorIsMatchesTheCodeWhateverTheMessage(t *testing.T) {
	for _, sentinel := range sentinelsByCName {
		err := fmt.Errorf("wrapped: %w", &Error{Code: sentinel.Code, Message: "blob sha256:ab not found"})
		for _, other := range sentinelsByCName {
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
