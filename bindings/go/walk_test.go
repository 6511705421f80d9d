package ocicas

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
)

// appAndMulti tags "app" (one layer) and "multi" (an index over it and a riscv64 image).
func appAndMulti(t *testing.T) (*Engine, *Image, Descriptor) {
	t.Helper()
	e := newEngine(t)
	if _, err := e.AppendLayer("app", storeLayer(t, e, sampleTar(t))); err != nil {
		t.Fatalf("AppendLayer: %v", err)
	}
	app, err := e.ResolveImage("app", nil)
	if err != nil {
		t.Fatalf("ResolveImage: %v", err)
	}
	return e, app, tagMultiPlatform(t, e, app)
}

func walkSteps(t *testing.T, e *Engine, ref string) []WalkStep {
	t.Helper()
	var steps []WalkStep
	if err := e.WalkImage(context.Background(), ref, func(step WalkStep) error {
		steps = append(steps, step)
		return nil
	}); err != nil {
		t.Fatalf("WalkImage: %v", err)
	}
	return steps
}

func TestWalkImageGivesEveryBlobOnceWithDepthParentAndPlatform(t *testing.T) {
	e, app, riscv := appAndMulti(t)
	steps := walkSteps(t, e, "multi")
	// The index, two manifests, two configs and the one layer both share.
	if len(steps) != 6 {
		t.Fatalf("%d steps: %+v", len(steps), steps)
	}
	root := steps[0]
	if root.Descriptor.MediaType != mediaTypeIndex || root.Depth != 0 || root.Parent != "" {
		t.Fatalf("root step %+v", root)
	}
	byDigest := map[string]WalkStep{}
	for _, step := range steps {
		if step.Err != nil {
			t.Fatalf("step %+v has an error", step)
		}
		byDigest[step.Descriptor.Digest] = step
	}
	manifest := byDigest[riscv.Digest]
	if manifest.Depth != 1 || manifest.Parent != root.Descriptor.Digest || manifest.Descriptor.Platform == nil ||
		manifest.Descriptor.Platform.Architecture != "riscv64" {
		t.Fatalf("riscv64 manifest step %+v", manifest)
	}
	layer := byDigest[app.Layers[0].Digest]
	if layer.Depth != 2 || layer.Parent != app.Manifest.Digest {
		t.Fatalf("layer step %+v: reached first from the host manifest, the first entry", layer)
	}
}

func TestWalkImageGivesAMissingBlobAsAStepWithErrNotFound(t *testing.T) {
	e, app, _ := appAndMulti(t)
	missing := Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar",
		Digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000", Size: 3}
	manifest := putJSON(t, e, mediaTypeManifest, map[string]any{
		"schemaVersion": 2, "mediaType": mediaTypeManifest, "config": app.Config, "layers": []Descriptor{missing},
	})
	if err := e.PutRef("broken", manifest, false); err != nil {
		t.Fatalf("PutRef: %v", err)
	}
	steps := walkSteps(t, e, "broken")
	if len(steps) != 3 {
		t.Fatalf("%d steps: %+v", len(steps), steps)
	}
	var failed []WalkStep
	for _, step := range steps {
		if step.Err != nil {
			failed = append(failed, step)
		}
	}
	if len(failed) != 1 || failed[0].Descriptor.Digest != missing.Digest || !errors.Is(failed[0].Err, ErrNotFound) {
		t.Fatalf("failed steps %+v", failed)
	}
}

func TestWalkImageStopsWithTheCallbacksErrorOrTheContexts(t *testing.T) {
	e, _, _ := appAndMulti(t)
	stop := errors.New("seen enough")
	count := 0
	err := e.WalkImage(context.Background(), "multi", func(WalkStep) error {
		count++
		if count == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || count != 2 {
		t.Fatalf("WalkImage = %v after %d steps, want the callback's error after 2", err, count)
	}

	ctx, cancel := context.WithCancel(context.Background())
	count = 0
	err = e.WalkImage(ctx, "multi", func(WalkStep) error {
		count++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCancelled) || count != 1 {
		t.Fatalf("WalkImage = %v after %d steps, want context.Canceled and ErrCancelled after 1", err, count)
	}
	err = e.WalkImage(ctx, "multi", func(WalkStep) error { t.Fatal("called after ctx was done"); return nil })
	wantErr(t, err, ErrCancelled)

	wantErr(t, e.WalkImage(context.Background(), "nothing", func(WalkStep) error { return nil }), ErrNotFound)
	wantErr(t, e.WalkImage(context.Background(), "bad ref!", func(WalkStep) error { return nil }), ErrInvalidArgument)
}

func TestReadDocumentGivesIndexManifestAndConfigTyped(t *testing.T) {
	e, app, riscv := appAndMulti(t)
	multi, err := e.GetRef("multi")
	if err != nil {
		t.Fatalf("GetRef: %v", err)
	}
	index, err := e.ReadDocument(multi)
	if err != nil {
		t.Fatalf("ReadDocument(index): %v", err)
	}
	if index.Kind != DocumentIndex || len(index.Manifests) != 2 || index.Manifests[1].Digest != riscv.Digest ||
		index.Manifests[1].Platform.Architecture != "riscv64" || index.Config != nil || index.ImageConfig != nil {
		t.Fatalf("index %+v", index)
	}

	manifest, err := e.ReadDocument(riscv)
	if err != nil {
		t.Fatalf("ReadDocument(manifest): %v", err)
	}
	if manifest.Kind != DocumentManifest || manifest.Config == nil || len(manifest.Layers) != 1 ||
		manifest.Layers[0].Digest != app.Layers[0].Digest || manifest.Subject != nil {
		t.Fatalf("manifest %+v", manifest)
	}

	config, err := e.ReadDocument(*manifest.Config)
	if err != nil {
		t.Fatalf("ReadDocument(config): %v", err)
	}
	got := config.ImageConfig
	if config.Kind != DocumentConfig || got == nil || got.Architecture != "riscv64" || got.WorkingDir != "/srv" ||
		got.User != "nobody" || !slices.Equal(got.Env, []string{"FOO=bar"}) || got.Labels["k"] != "v" ||
		!slices.Equal(got.DiffIDs, app.DiffIDs) {
		t.Fatalf("config %+v", got)
	}
	// The image resolved gives the same parsed config.
	resolved, err := e.ResolveImage("multi", &Platform{OS: "linux", Architecture: "riscv64"})
	if err != nil {
		t.Fatalf("ResolveImage: %v", err)
	}
	if !slices.Equal(resolved.Cmd, got.Cmd) || resolved.User != got.User || resolved.OS != got.OS {
		t.Fatalf("resolved %+v, read %+v", resolved.ImageConfig, got)
	}
}

func TestReadDocumentReadsExposedPortsVolumesAndStopSignal(t *testing.T) {
	e := newEngine(t)
	d := putJSON(t, e, mediaTypeConfig, map[string]any{
		"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []string{}},
		"config": map[string]any{"ExposedPorts": map[string]any{"8080/tcp": map[string]any{}},
			"Volumes": map[string]any{"/data": map[string]any{}, "/cache": map[string]any{}}, "StopSignal": "SIGQUIT"},
	})
	doc, err := e.ReadDocument(d)
	if err != nil {
		t.Fatalf("ReadDocument: %v", err)
	}
	got := doc.ImageConfig
	if !slices.Equal(got.ExposedPorts, []string{"8080/tcp"}) || !slices.Equal(got.Volumes, []string{"/cache", "/data"}) ||
		got.StopSignal != "SIGQUIT" {
		t.Fatalf("config %+v", got)
	}
}

func TestReadDocumentErrors(t *testing.T) {
	e, app, _ := appAndMulti(t)
	manifest := app.Manifest
	for _, c := range []struct {
		name string
		d    Descriptor
		want error
	}{
		{"a layer", app.Layers[0], ErrUnsupportedMediaType},
		{"not stored", Descriptor{MediaType: mediaTypeManifest, Size: 5,
			Digest: "sha256:1111111111111111111111111111111111111111111111111111111111111111"}, ErrNotFound},
		{"another size", Descriptor{MediaType: manifest.MediaType, Digest: manifest.Digest, Size: manifest.Size + 1},
			ErrSizeMismatch},
		{"over the JSON limit", Descriptor{MediaType: manifest.MediaType, Digest: manifest.Digest, Size: 1 << 40},
			ErrTooLarge},
		{"a manifest described as an index", Descriptor{MediaType: mediaTypeIndex, Digest: manifest.Digest,
			Size: manifest.Size}, ErrInvalidImage},
		{"a malformed digest", Descriptor{MediaType: mediaTypeManifest, Digest: "sha256:abc", Size: 1}, ErrInvalidArgument},
		{"no media type", Descriptor{Digest: manifest.Digest, Size: manifest.Size}, ErrInvalidArgument},
		{"a negative size", Descriptor{MediaType: mediaTypeManifest, Digest: manifest.Digest, Size: -1},
			ErrInvalidArgument},
	} {
		doc, err := e.ReadDocument(c.d)
		if doc != nil {
			t.Errorf("%s: a document %+v with the error", c.name, doc)
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: ReadDocument = %v, want %v", c.name, err, c.want)
		}
	}
}

// tagRawManifest stores a manifest over a stored config and one layer whose descriptor's JSON
// fields are layerFields (as a hostile writer would spell them), tags it "app", and returns
// the config's descriptor.
func tagRawManifest(t *testing.T, e *Engine, layerFields string) Descriptor {
	t.Helper()
	config, err := e.PutJSON(mediaTypeConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	if err != nil {
		t.Fatalf("PutJSON: %v", err)
	}
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{%s}]}`,
		mediaTypeManifest, config.MediaType, config.Digest, config.Size, layerFields)
	digest, err := e.PutBlob([]byte(manifest))
	if err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	if err := e.PutRef("app", Descriptor{MediaType: mediaTypeManifest, Digest: digest, Size: int64(len(manifest))}, false); err != nil {
		t.Fatalf("PutRef: %v", err)
	}
	return config
}

// Was a finding (medium: one hostile descriptor ended every Go walk of the image). WalkImage promises
// that "a blob the walk cannot go into is a step with its Err and the walk goes on: fn
// decides whether that ends it". But a layer descriptor whose "data" field is not base64 (the
// library accepts and hands it on as it is) makes goDescriptor fail, and WalkImage returns
// that as its own error: the walk ends at that step, fn never sees the rest of the graph
// (here the config), and the error is a bare fmt error that is not ErrInvalidImage, so a
// caller cannot even tell bad input from a library failure. A GC-like or copy-like consumer
// (containerd's images.Walk users) stops halfway. Fix: make such a step carry ErrInvalidImage
// (or drop the undecodable data) and go on.
func TestWalkImageGoesOnPastANonBase64DataFieldWithErrInvalidImage(t *testing.T) {
	e := newEngine(t)
	layer, err := e.PutBlob([]byte("layer"))
	if err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	tagRawManifest(t, e, fmt.Sprintf(`"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":5,"data":"%%%%not base64"`, layer))
	var steps []WalkStep
	err = e.WalkImage(context.Background(), "app", func(step WalkStep) error {
		steps = append(steps, step)
		return nil
	})
	if err != nil {
		t.Fatalf("WalkImage ended with %v (ErrInvalidImage: %v) after %d of 3 steps", err, errors.Is(err, ErrInvalidImage), len(steps))
	}
	if len(steps) != 3 {
		t.Fatalf("%d steps, want the manifest, its layer and its config: %+v", len(steps), steps)
	}
	if !errors.Is(steps[1].Err, ErrInvalidImage) || steps[1].Descriptor.Data != nil || steps[1].Descriptor.Digest != layer {
		t.Errorf("the layer's step %+v, want ErrInvalidImage and no Data", steps[1])
	}
	if _, err := e.ReadDocument(steps[0].Descriptor); !errors.Is(err, ErrInvalidImage) {
		t.Errorf("ReadDocument of the manifest: %v, want ErrInvalidImage", err)
	}
}

// Was a finding (low: a lying size came out negative in Go). The library takes a descriptor size as
// a uint64 and hands it to the walk's callback as is; the Go binding converts it to int64
// without a check, so a hostile layer declaring 18446744073709551615 bytes is a step whose
// Descriptor.Size is -1 (and 2^63 comes out as -2^63). A consumer that sums sizes, preallocates
// or compares against a quota is handed a negative number, and ReadDocument of that very
// descriptor answers ErrInvalidArgument ("size -1 is negative") instead of ErrTooLarge.
// containerd's ocispec.Descriptor.Size is int64 too, but encoding/json refuses such a
// manifest outright. Fix: refuse sizes over the int64 range when parsing documents, or
// report such a step with an error and a size the binding can hold.
func TestWalkImageGivesASizeOverInt64AsErrTooLargeNeverNegative(t *testing.T) {
	e := newEngine(t)
	layer, err := e.PutBlob([]byte("layer"))
	if err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	tagRawManifest(t, e, fmt.Sprintf(`"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":18446744073709551615`, layer))
	var negative []WalkStep
	var layerStep *WalkStep
	err = e.WalkImage(context.Background(), "app", func(step WalkStep) error {
		if step.Descriptor.Size < 0 {
			negative = append(negative, step)
		}
		if step.Descriptor.Digest == layer {
			layerStep = &step
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WalkImage: %v", err)
	}
	if len(negative) != 0 {
		t.Fatalf("steps with a negative size: %+v", negative)
	}
	if layerStep == nil || !errors.Is(layerStep.Err, ErrTooLarge) {
		t.Fatalf("the layer's step %+v, want ErrTooLarge", layerStep)
	}
	if _, err := e.ReadDocument(Descriptor{MediaType: mediaTypeManifest, Digest: layer, Size: layerStep.Descriptor.Size}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadDocument at the step's size: %v, want ErrTooLarge", err)
	}
}

// Was a finding (low: silent change of a container's environment and labels). A C string cannot hold
// NUL, so the C layer (ffi c_string) rewrites every NUL of a config string as the two
// characters `\0`; the Go binding reads the config through those C accessors, so
// ReadDocument hands Go (whose strings can hold NUL) a different Env entry than the image's:
// "A=x\u0000y" comes out as `A=x\0y`, a value the image never set, with no error. The
// rewrite is not even one-to-one: labels "k\u0000" and `k\0` (both in the config) come out as
// the same key, so one of them silently replaces the other in Labels. containerd hands the
// config's strings over unchanged (runc then refuses a NUL in the environment). Fix: refuse
// such a config (ErrInvalidImage) or pass lengths, never a changed string.
func TestReadDocumentRefusesNULInConfigStringsWithErrInvalidImage(t *testing.T) {
	e := newEngine(t)
	config, err := e.PutJSON(mediaTypeConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},`+
		`"config":{"Env":["A=x\u0000y"],"Labels":{"k\u0000":"nul","k\\0":"backslash zero"}}}`))
	if err != nil {
		t.Fatalf("PutJSON: %v", err)
	}
	if document, err := e.ReadDocument(config); !errors.Is(err, ErrInvalidImage) {
		t.Fatalf("ReadDocument: %+v, %v; want ErrInvalidImage (a C string cannot hold the NUL)", document, err)
	}
}
