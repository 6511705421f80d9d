package containerd

import (
	"errors"
	"path/filepath"
	"testing"

	ocicas "github.com/ocicas/ocicas/bindings/go"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// newStore is a Store over a fresh layout, with its engine, closed at the end of the test.
func newStore(t *testing.T) (*Store, *ocicas.Engine) {
	t.Helper()
	engine, err := ocicas.Open(filepath.Join(t.TempDir(), "layout"), &ocicas.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	return NewStore(engine), engine
}

// descriptorOf is the descriptor of data, as a blob.
func descriptorOf(data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(len(data))}
}

// wantKind fails unless err is of containerd kind kind (errdefs.Is…).
func wantKind(t *testing.T, what string, err error, is func(error) bool, kind error) {
	t.Helper()
	if err == nil || !is(err) {
		t.Fatalf("%s: got error %v, want one of kind %v", what, err, kind)
	}
}

// failingReader fails the test if it is ever read.
type failingReader struct{ t *testing.T }

func (r failingReader) Read([]byte) (int, error) {
	r.t.Error("the reader was read")
	return 0, errors.New("read")
}
