package ocicas

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startRegistry runs docker-registry on a free loopback port for the test and returns
// "127.0.0.1:PORT"; the test is skipped when docker-registry is not installed.
func startRegistry(t *testing.T) string {
	t.Helper()
	program, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry is not installed")
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := listener.Addr().String()
	listener.Close()
	dir := t.TempDir()
	config := filepath.Join(dir, "config.yml")
	text := fmt.Sprintf("version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s}\n",
		filepath.Join(dir, "data"), host)
	if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(program, "serve", config)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if response, err := http.Get("http://" + host + "/v2/"); err == nil {
			response.Body.Close()
			return host
		}
	}
	t.Fatalf("docker-registry did not answer on %s", host)
	return ""
}

// noDockerConfig keeps the machine's Docker credentials out of the test.
func noDockerConfig(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
}

func TestPushThenPullGivesTheSameImage(t *testing.T) {
	host := startRegistry(t)
	noDockerConfig(t)
	source := newEngine(t)
	layer := writeLayer(t, source, []byte(strings.Repeat("registry layer ", 50000)))
	image, err := source.AppendLayer("app", layer)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	completed := map[string]bool{}
	options := &RegistryOptions{Insecure: true, ChunkSize: 64 << 10, Progress: func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Total >= 0 && p.Done == p.Total {
			completed[p.Digest] = true
		}
	}}
	pushed, err := source.Push(context.Background(), "app", host+"/go/app:v1", options)
	if err != nil {
		t.Fatal(err)
	}
	if pushed.Descriptor.Digest != image.Digest || pushed.Blobs.Transferred != 3 || !completed[layer.Digest] {
		t.Fatalf("push report %+v, progress %v", pushed, completed)
	}

	target := newEngine(t)
	pulled, err := target.Pull(context.Background(), host+"/go/app:v1", "", &RegistryOptions{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Descriptor.Digest != image.Digest || pulled.Blobs.Bytes < layer.Size {
		t.Fatalf("pull report %+v", pulled)
	}
	if ref, err := target.GetRef("v1"); err != nil || ref.Digest != image.Digest {
		t.Fatalf("ref v1: %+v, %v", ref, err)
	}
	again, err := target.Pull(context.Background(), host+"/go/app:v1", "", &RegistryOptions{Insecure: true})
	if err != nil || again.Blobs.Bytes != 0 {
		t.Fatalf("second pull %+v, %v", again, err)
	}
	if report, err := target.Fsck(); err != nil || !report.Sound {
		t.Fatalf("fsck: %+v, %v", report, err)
	}
}

func TestPullErrorsAreSentinels(t *testing.T) {
	host := startRegistry(t)
	noDockerConfig(t)
	engine := newEngine(t)
	_, err := engine.Pull(context.Background(), host+"/go/missing:v1", "", &RegistryOptions{Insecure: true})
	wantErr(t, err, ErrNotFound)
	_, err = engine.Pull(context.Background(), "127.0.0.1:1/go/missing:v1", "", &RegistryOptions{Insecure: true})
	wantErr(t, err, ErrRemote)
	_, err = engine.Push(context.Background(), "no-such-ref", host+"/go/x:v1", &RegistryOptions{Insecure: true})
	wantErr(t, err, ErrNotFound)
	_, err = engine.Pull(context.Background(), host+"/go/x:v1", "", &RegistryOptions{Insecure: true, Platforms: []string{"linux\x00amd64"}})
	wantErr(t, err, ErrInvalidArgument)
}

func TestPushLayerUploadsWhatItReports(t *testing.T) {
	host := startRegistry(t)
	noDockerConfig(t)
	input := bytes.Repeat([]byte("streamed straight to the registry "), 100000)
	layer, err := PushLayer(context.Background(), host+"/go/stream", bytes.NewReader(input),
		&RegistryOptions{Insecure: true, ChunkSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	response, err := http.Get("http://" + host + "/v2/go/stream/blobs/" + layer.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	blob, _ := io.ReadAll(response.Body)
	if int64(len(blob)) != layer.Size || fmt.Sprintf("sha256:%x", sha256.Sum256(blob)) != layer.Digest {
		t.Fatalf("registry serves %d bytes, layer says %+v", len(blob), layer)
	}
	gz, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	tar, _ := io.ReadAll(gz)
	if fmt.Sprintf("sha256:%x", sha256.Sum256(tar)) != layer.DiffID {
		t.Fatalf("gunzipped bytes do not hash to the DiffID %s", layer.DiffID)
	}
}

func TestPushLayerStopsWhenItsContextIsCancelled(t *testing.T) {
	host := startRegistry(t)
	noDockerConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := PushLayer(ctx, host+"/go/stream", strings.NewReader("tar"), &RegistryOptions{Insecure: true})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestNegativeJobsOrChunkSizeAreInvalidArguments(t *testing.T) {
	engine := newEngine(t)
	for _, opts := range []*RegistryOptions{{Jobs: -1}, {ChunkSize: -1}, {ChunkSize: 1<<30 + 1}, {Jobs: 1025}} {
		_, err := engine.Pull(context.Background(), "127.0.0.1:1/a/b:v1", "b", opts)
		wantErr(t, err, ErrInvalidArgument)
		_, err = PushLayer(context.Background(), "127.0.0.1:1/a/b", strings.NewReader(""), opts)
		wantErr(t, err, ErrInvalidArgument)
	}
}

func TestJobsOverTheThreadsLimitAreInvalidArguments(t *testing.T) {
	engine := newEngine(t)
	if err := engine.SetLimit(LimitThreads, 2); err != nil {
		t.Fatal(err)
	}
	_, err := engine.Pull(context.Background(), "127.0.0.1:1/a/b:v1", "b", &RegistryOptions{Jobs: 3})
	wantErr(t, err, ErrInvalidArgument)
	if !strings.Contains(err.Error(), "--limit threads=N") {
		t.Fatalf("the message names the limit: %v", err)
	}
	// The default job count stays within the limit: the pull gets as far as the network.
	_, err = engine.Pull(context.Background(), "127.0.0.1:1/a/b:v1", "b", &RegistryOptions{Insecure: true})
	wantErr(t, err, ErrRemote)
}

func TestPushAndPullLookAtTheirContextBeforeStarting(t *testing.T) {
	engine := newEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A registry that would refuse the connection: only the context can explain the error.
	if _, err := engine.Pull(ctx, "127.0.0.1:1/a/b:v1", "b", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("pull: got %v, want context.Canceled", err)
	}
	if _, err := engine.Push(ctx, "b", "127.0.0.1:1/a/b:v1", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("push: got %v, want context.Canceled", err)
	}
}

func TestARegistryThatNeverAnswersFailsAtTheRegistryTimeout(t *testing.T) {
	// A listener that accepts connections (in the kernel's backlog) and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	noDockerConfig(t)
	engine := newEngine(t)
	if err := engine.SetLimit(LimitRegistryTimeout, 1); err != nil {
		t.Fatal(err)
	}
	_, err = engine.Pull(context.Background(), silent.Addr().String()+"/a/b:v1", "b", &RegistryOptions{Insecure: true})
	wantErr(t, err, ErrTooLarge)
	if !strings.Contains(err.Error(), "registry_timeout") || !strings.Contains(err.Error(), silent.Addr().String()) {
		t.Fatalf("the message names the registry and the limit: %v", err)
	}
}
