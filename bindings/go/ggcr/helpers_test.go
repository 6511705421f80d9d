package ggcr

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocicas "github.com/ocicas/ocicas/bindings/go"
)

// tarEntry is one member of a test tar.
type tarEntry struct {
	header tar.Header
	body   []byte
}

// testTar is a tar of a directory, a symlink and two files: 300 KiB of text and 200 KiB of
// random bytes, so that compression both shrinks and spans many blocks.
func testTar(t *testing.T) []byte {
	t.Helper()
	text, random := testFiles()
	return buildTar(t,
		tarEntry{tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755}, nil},
		tarEntry{tar.Header{Typeflag: tar.TypeReg, Name: "etc/text", Mode: 0o644}, text},
		tarEntry{tar.Header{Typeflag: tar.TypeReg, Name: "random.bin", Mode: 0o600}, random},
		tarEntry{tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "etc/text"}, nil},
	)
}

// testFiles are the text and random files of testTar.
func testFiles() (text, random []byte) {
	random = make([]byte, 200<<10)
	rand.NewChaCha8([32]byte{1}).Read(random)
	return bytes.Repeat([]byte("ocicas layer line of text\n"), (300<<10)/26), random
}

// fileTar is a tar of one file.
func fileTar(t *testing.T, name, body string) []byte {
	t.Helper()
	return buildTar(t, tarEntry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, []byte(body)})
}

func buildTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, entry := range entries {
		entry.header.Size = int64(len(entry.body))
		entry.header.ModTime = time.Unix(1700000000, 0)
		entry.header.Format = tar.FormatPAX
		if err := tw.WriteHeader(&entry.header); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(entry.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sha256Of is data's digest as a v1.Hash.
func sha256Of(data []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(data))}
}

// newEngine opens a fresh layout in a temp dir, closed at the end of the test.
func newEngine(t *testing.T) (*ocicas.Engine, string) {
	t.Helper()
	layout := filepath.Join(t.TempDir(), "layout")
	engine, err := ocicas.Open(layout, &ocicas.OpenOptions{Create: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { engine.Close() })
	return engine, layout
}

// storeLayer stores tarball as a layer through ocicas's LayerWriter.
func storeLayer(t *testing.T, engine *ocicas.Engine, tarball []byte, opts ...ocicas.LayerOption) ocicas.LayerDescriptor {
	t.Helper()
	writer, err := engine.NewLayerWriter(opts...)
	if err != nil {
		t.Fatalf("NewLayerWriter: %v", err)
	}
	defer writer.Close()
	if _, err := writer.Write(tarball); err != nil {
		t.Fatalf("LayerWriter.Write: %v", err)
	}
	layer, err := writer.Commit()
	if err != nil {
		t.Fatalf("LayerWriter.Commit: %v", err)
	}
	return layer
}

// readAll reads a layer's stream to its end and closes it.
func readAll(t *testing.T, what string, open func() (io.ReadCloser, error)) []byte {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", what, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("closing %s: %v", what, err)
	}
	return data
}

// requirePeer is the path of a peer program. Like the Rust suite's peers_available: missing
// is a failure (CI installs the peers), or a skip when OCICAS_SKIP_PEERS=1.
func requirePeer(t *testing.T, program, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err == nil {
		return path
	}
	if os.Getenv("OCICAS_SKIP_PEERS") == "1" {
		t.Skipf("%s is not installed and OCICAS_SKIP_PEERS=1", program)
	}
	t.Fatalf("%s is not installed: apt-get install -y %s (or set OCICAS_SKIP_PEERS=1 to skip)", program, debianPackage)
	return ""
}

// ocicasCLI is the ocicas program to check layouts with: $OCICAS_CLI (set by ctest to the
// installed bin/ocicas), or target/release/ocicas of this checkout.
func ocicasCLI(t *testing.T) string {
	t.Helper()
	path := os.Getenv("OCICAS_CLI")
	if path == "" {
		path = filepath.Join("..", "..", "..", "target", "release", "ocicas")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no ocicas CLI at %s (set OCICAS_CLI to one): %v", path, err)
	}
	return path
}

// run runs a program and fails the test with its output unless it succeeds.
func run(t *testing.T, program string, args ...string) string {
	t.Helper()
	out, err := exec.Command(program, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", program, args, err, out)
	}
	return string(out)
}

// startRegistry starts Debian's docker-registry (distribution 2.8) on a free loopback port,
// storing in a temp dir, and kills it at the end of the test. It returns "127.0.0.1:PORT" and
// the directory it stores in.
func startRegistry(t *testing.T) (host, storage string) {
	t.Helper()
	program := requirePeer(t, "docker-registry", "docker-registry")
	dir := t.TempDir()
	storage = filepath.Join(dir, "data")
	for attempt := 0; attempt < 10; attempt++ {
		host = freeLoopbackAddress(t)
		config := filepath.Join(dir, "config.yml")
		text := fmt.Sprintf("version: 0.1\nlog: {level: error}\n"+
			"storage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\nhttp: {addr: %s}\n",
			storage, host)
		if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		log, err := os.Create(filepath.Join(dir, "registry.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(program, "serve", config)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting docker-registry: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); log.Close(); close(exited) }()
		stop := func() { cmd.Process.Kill(); <-exited }
		if waitForRegistry(host, exited) {
			t.Cleanup(stop)
			return host, storage
		}
		stop() // the port was taken meanwhile, or the registry is slow: try another
	}
	t.Fatalf("docker-registry did not start; see %s", filepath.Join(dir, "registry.log"))
	return "", ""
}

// waitForRegistry waits up to 10 s for GET /v2/ to answer 200, false when the registry exits first.
func waitForRegistry(host string, exited <-chan struct{}) bool {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := client.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func freeLoopbackAddress(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	return listener.Addr().String()
}

// wantIs fails unless errors.Is(err, want).
func wantIs(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}
