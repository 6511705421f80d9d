package ocicas

import (
	"errors"
	"path/filepath"
	"testing"
)

// newEngine opens a fresh layout in a temp dir, closed at the end of the test.
func newEngine(t *testing.T) *Engine {
	t.Helper()
	engine, _ := newEngineAt(t)
	return engine
}

// newEngineAt is newEngine, also giving the layout's path.
func newEngineAt(t *testing.T) (*Engine, string) {
	t.Helper()
	layout := filepath.Join(t.TempDir(), "layout")
	engine, err := Open(layout, &OpenOptions{Create: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { engine.Close() })
	return engine, layout
}

// wantErr fails unless err is the sentinel want (errors.Is) with a non-empty message.
func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
	var oe *Error
	if errors.As(err, &oe) && oe.Message == "" {
		t.Fatalf("error %v has no message", err)
	}
}

func putBlob(t *testing.T, e *Engine, data string) string {
	t.Helper()
	digest, err := e.PutBlob([]byte(data))
	if err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	return digest
}

// wantPanic fails unless fn panics.
func wantPanic(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s did not panic", what)
		}
	}()
	fn()
}
