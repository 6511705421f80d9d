package ocicas

import (
	"bytes"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
)

func TestReaderAtReadsAnyRangeAndReportsSize(t *testing.T) {
	engine := newEngine(t)
	data := []byte(strings.Repeat("0123456789", 10000))
	digest := putBlob(t, engine, string(data))
	reader, err := engine.OpenBlob(digest)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if reader.Size() != int64(len(data)) {
		t.Fatalf("Size %d", reader.Size())
	}
	buf := make([]byte, 7)
	if n, err := reader.ReadAt(buf, 12345); n != 7 || err != nil || !bytes.Equal(buf, data[12345:12352]) {
		t.Fatalf("ReadAt: %d %v %q", n, err, buf)
	}
	tail := make([]byte, 10)
	if n, err := reader.ReadAt(tail, int64(len(data)-4)); n != 4 || err != io.EOF || string(tail[:4]) != "6789" {
		t.Fatalf("ReadAt at the end: %d %v %q", n, err, tail[:n])
	}
	for _, past := range []int64{int64(len(data) + 10), math.MaxInt64} {
		if n, err := reader.ReadAt(buf, past); n != 0 || err != io.EOF {
			t.Fatalf("ReadAt past the end at %d: %d %v", past, n, err)
		}
	}
	_, err = reader.ReadAt(buf, -1)
	wantErr(t, err, ErrInvalidArgument)
	whole, err := io.ReadAll(io.NewSectionReader(reader, 0, reader.Size()))
	if err != nil || !bytes.Equal(whole, data) {
		t.Fatalf("reading it all through a SectionReader: %v", err)
	}
}

func TestReaderAtIsSafeFromManyGoroutines(t *testing.T) {
	engine := newEngine(t)
	data := []byte(strings.Repeat("abcdefgh", 4096))
	reader, err := engine.OpenBlob(putBlob(t, engine, string(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			buf := make([]byte, 100)
			for i := range 50 {
				off := int64((g*50 + i) * 37 % (len(data) - 100))
				if _, err := reader.ReadAt(buf, off); err != nil || !bytes.Equal(buf, data[off:off+100]) {
					t.Errorf("ReadAt(%d): %v", off, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestReaderErrorsCloseAndUseAfterClose(t *testing.T) {
	engine := newEngine(t)
	_, err := engine.OpenBlob("sha256:" + strings.Repeat("a", 64))
	wantErr(t, err, ErrNotFound)
	_, err = engine.OpenBlob("md5:abc")
	wantErr(t, err, ErrInvalidArgument)
	reader, err := engine.OpenBlob(putBlob(t, engine, "x"))
	if err != nil {
		t.Fatal(err)
	}
	// Readers outlive their engine.
	engine.Close()
	buf := make([]byte, 1)
	if _, err := reader.ReadAt(buf, 0); err != nil || buf[0] != 'x' {
		t.Fatalf("ReadAt after the engine closed: %v", err)
	}
	reader.Close()
	reader.Close()
	wantPanic(t, "ReadAt after Close", func() { reader.ReadAt(buf, 0) })
}
