package ocicas

import (
	"errors"
	"fmt"
	"math"
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

// The Go codes are the numbers of the C header's enumerators, every enumerator has a Go
// sentinel, and a code's String is its enumerator's name: a status added to or renumbered in
// the header fails here.
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
		if got := sentinel.Code.String(); got != name {
			t.Errorf("code %d is named %q, the header says %s", uint32(sentinel.Code), got, name)
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

func TestErrorTextIsTheLibraryMessageOrTheCodeDescription(t *testing.T) {
	if got := (&Error{Code: CodeNotFound, Message: "ref x not found"}).Error(); got != "ocicas: ref x not found" {
		t.Errorf("Error() = %q", got)
	}
	if got := ErrLocked.Error(); got != "ocicas: locked by another writer" {
		t.Errorf("Error() = %q", got)
	}
	if got := fmt.Sprint(CodeTooLarge); got != "OCICAS_ERR_TOO_LARGE" {
		t.Errorf("Sprint(CodeTooLarge) = %q", got)
	}
	for _, unknown := range []Code{CodeCancelled + 1, 99, math.MaxUint32} {
		if got := unknown.String(); got != "OCICAS_ERR_UNKNOWN" {
			t.Errorf("Code(%d).String() = %q", uint32(unknown), got)
		}
		if got := unknown.Description(); got != "unknown status" {
			t.Errorf("Code(%d).Description() = %q", uint32(unknown), got)
		}
	}
}

func TestEveryCodeHasItsOwnDescription(t *testing.T) {
	seen := map[string]Code{}
	for _, sentinel := range sentinelsByCName {
		description := sentinel.Code.Description()
		if description == "" || description == "unknown status" {
			t.Errorf("%s has the description %q", sentinel.Code, description)
		}
		if other, taken := seen[description]; taken {
			t.Errorf("%s and %s are both described %q", sentinel.Code, other, description)
		}
		seen[description] = sentinel.Code
	}
}
