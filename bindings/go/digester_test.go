package ocicas

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

func digestOf(t *testing.T, algorithm string, pieces ...[]byte) string {
	t.Helper()
	digester, err := NewDigester(algorithm)
	if err != nil {
		t.Fatal(err)
	}
	defer digester.Close()
	for _, piece := range pieces {
		if n, err := digester.Write(piece); err != nil || n != len(piece) {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	digest, err := digester.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return digest
}

func TestDigesterMatchesTheStandardVectorsAndGosHashes(t *testing.T) {
	vectors := []struct{ algorithm, data, want string }{
		{"sha256", "", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"sha256", "abc", "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"sha512", "", "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"},
		{"sha512", "abc", "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
	}
	for _, v := range vectors {
		if got := digestOf(t, v.algorithm, []byte(v.data)); got != v.want {
			t.Errorf("%s(%q) = %s, want %s", v.algorithm, v.data, got, v.want)
		}
	}
	data := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 10000)
	pieces := [][]byte{data[:1], nil, data[1:64], data[64:1000], data[1000:]}
	if got, want := digestOf(t, "sha256", pieces...), fmt.Sprintf("sha256:%x", sha256.Sum256(data)); got != want {
		t.Errorf("sha256 in pieces = %s, want %s", got, want)
	}
	if got, want := digestOf(t, "sha512", pieces...), fmt.Sprintf("sha512:%x", sha512.Sum512(data)); got != want {
		t.Errorf("sha512 in pieces = %s, want %s", got, want)
	}
}

func TestDigesterOfAnUnknownAlgorithmIsInvalidArgument(t *testing.T) {
	for _, algorithm := range []string{"md5", "sha384", "SHA256", "", "sha256\x00"} {
		digester, err := NewDigester(algorithm)
		wantErr(t, err, ErrInvalidArgument)
		if digester != nil {
			t.Fatalf("%q gave a digester", algorithm)
		}
	}
}

func TestDigesterAfterFinishIsInvalidArgumentAndAfterClosePanics(t *testing.T) {
	digester, err := NewDigester("sha256")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := digester.Finish(); err != nil {
		t.Fatal(err)
	}
	_, err = digester.Finish()
	wantErr(t, err, ErrInvalidArgument)
	n, err := digester.Write([]byte("x"))
	wantErr(t, err, ErrInvalidArgument)
	if n != 0 {
		t.Fatalf("Write after Finish wrote %d", n)
	}
	if err := digester.Close(); err != nil {
		t.Fatal(err)
	}
	if err := digester.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	wantPanic(t, "Write after Close", func() { digester.Write([]byte("x")) })
	wantPanic(t, "Finish after Close", func() { digester.Finish() })
}

// The point of the digester: the expected digest of a commit, computed while streaming.
func TestDigesterGivesTheExpectedDigestOfAWriterCommit(t *testing.T) {
	engine := newEngine(t)
	data := bytes.Repeat([]byte("layer bytes "), 5000)
	for _, algorithm := range []string{"sha256", "sha512"} {
		digester, err := NewDigester(algorithm)
		if err != nil {
			t.Fatal(err)
		}
		writer, err := engine.Writer(context.Background(), "digester-"+algorithm, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.MultiWriter(writer, digester), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		expected, err := digester.Finish()
		if err != nil {
			t.Fatal(err)
		}
		digester.Close()
		if !strings.HasPrefix(expected, algorithm+":") {
			t.Fatalf("digest %s is not %s", expected, algorithm)
		}
		committed, err := writer.Commit(t.Context(), int64(len(data)), expected)
		if err != nil || committed != expected {
			t.Fatalf("Commit: %s, %v; want %s", committed, err, expected)
		}
		writer.Close()
		if got, err := engine.ReadBlob(expected, int64(len(data))); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadBlob(%s): %d bytes, %v", expected, len(got), err)
		}
	}
}

// Goroutines sharing one Digester take turns: the race detector stays quiet and every byte
// is hashed once (the order of whole writes is theirs, so they all write the same bytes).
func TestDigesterWritesFromGoroutinesTakeTurns(t *testing.T) {
	digester, err := NewDigester("sha256")
	if err != nil {
		t.Fatal(err)
	}
	defer digester.Close()
	piece := bytes.Repeat([]byte{'z'}, 1000)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if _, err := digester.Write(piece); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	got, err := digester.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("sha256:%x", sha256.Sum256(bytes.Repeat(piece, 80))); got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}
