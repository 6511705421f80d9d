package ocicas

import (
	"context"
	"errors"
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
