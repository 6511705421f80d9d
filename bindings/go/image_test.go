package ocicas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// putJSON stores document (marshalled) as mediaType.
func putJSON(t *testing.T, e *Engine, mediaType string, document any) Descriptor {
	t.Helper()
	encoded, err := json.Marshal(document)
	if err != nil {
		t.Fatal(err)
	}
	descriptor, err := e.PutJSON(mediaType, encoded)
	if err != nil {
		t.Fatalf("PutJSON: %v", err)
	}
	return descriptor
}

// tagMultiPlatform tags "multi" as an OCI index over the image "app" (this host's) and a
// linux/riscv64 image with a runtime config over the same layer; returns the riscv64 manifest.
func tagMultiPlatform(t *testing.T, e *Engine, app *Image) Descriptor {
	t.Helper()
	config := putJSON(t, e, "application/vnd.oci.image.config.v1+json", map[string]any{
		"architecture": "riscv64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": app.DiffIDs},
		"config": map[string]any{"Env": []string{"FOO=bar"}, "Cmd": []string{"/bin/sh"}, "Entrypoint": nil,
			"WorkingDir": "/srv", "User": "nobody", "Labels": map[string]string{"k": "v"}},
	})
	riscv := putJSON(t, e, "application/vnd.oci.image.manifest.v1+json", map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": config, "layers": app.Layers,
	})
	riscv.Platform = &Platform{OS: "linux", Architecture: "riscv64"}
	host := app.Manifest
	host.Annotations = nil
	host.Platform = &Platform{OS: app.OS, Architecture: app.Architecture}
	index := putJSON(t, e, "application/vnd.oci.image.index.v1+json", map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []Descriptor{host, riscv},
	})
	if err := e.PutRef("multi", index, false); err != nil {
		t.Fatalf("PutRef: %v", err)
	}
	return riscv
}

func TestResolveImageGivesTypedManifestConfigLayersAndRuntimeConfig(t *testing.T) {
	e := newEngine(t)
	data := sampleTar(t)
	if _, err := e.AppendLayer("app", storeLayer(t, e, data)); err != nil {
		t.Fatalf("AppendLayer: %v", err)
	}
	app, err := e.ResolveImage("app", nil)
	if err != nil {
		t.Fatalf("ResolveImage: %v", err)
	}
	if len(app.Layers) != 1 || len(app.DiffIDs) != 1 || len(app.Env) != 0 || app.WorkingDir != "" {
		t.Fatalf("app: %+v", app)
	}
	got, err := readLayer(t, e, app.Layer(0))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("layer 0: %d bytes, %v", len(got), err)
	}

	riscvManifest := tagMultiPlatform(t, e, app)
	riscv, err := e.ResolveImage("multi", &Platform{OS: "linux", Architecture: "riscv64"})
	if err != nil {
		t.Fatalf("ResolveImage riscv64: %v", err)
	}
	if riscv.Manifest.Digest != riscvManifest.Digest || riscv.Manifest.Platform == nil ||
		riscv.Manifest.Platform.Architecture != "riscv64" || riscv.Architecture != "riscv64" {
		t.Fatalf("riscv64 image: %+v", riscv)
	}
	runtime := fmt.Sprintf("%v %v %v %s %s %v", riscv.Env, riscv.Cmd, riscv.Entrypoint, riscv.WorkingDir, riscv.User, riscv.Labels)
	if runtime != "[FOO=bar] [/bin/sh] [] /srv nobody map[k:v]" {
		t.Fatalf("runtime config: %s", runtime)
	}
	host, err := e.ResolveImage("multi", nil)
	if err != nil || host.Manifest.Digest != app.Manifest.Digest {
		t.Fatalf("host image: %+v, %v", host, err)
	}
}

func TestResolveImageErrors(t *testing.T) {
	e := newEngine(t)
	_, err := e.ResolveImage("nothing", nil)
	wantErr(t, err, ErrNotFound)
	if _, err := e.AppendLayer("app", storeLayer(t, e, sampleTar(t))); err != nil {
		t.Fatalf("AppendLayer: %v", err)
	}
	app, err := e.ResolveImage("app", nil)
	if err != nil {
		t.Fatalf("ResolveImage: %v", err)
	}
	tagMultiPlatform(t, e, app)
	_, err = e.ResolveImage("multi", &Platform{OS: "plan9", Architecture: "mips"})
	wantErr(t, err, ErrNotFound)
	if !strings.Contains(err.Error(), "linux/riscv64") {
		t.Fatalf("the error names no available platform: %v", err)
	}
	_, err = e.ResolveImage("app", &Platform{OS: "plan9", Architecture: "mips"})
	wantErr(t, err, ErrNotFound)
	_, err = e.ResolveImage("app", &Platform{Architecture: "amd64"})
	wantErr(t, err, ErrInvalidArgument)
	_, err = e.ResolveImage("bad ref!", nil)
	wantErr(t, err, ErrInvalidArgument)
}
