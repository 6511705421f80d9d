package ocicas

// Engine.WalkImage and Engine.ReadDocument attacked with hostile documents. Each test here is a
// finding: it fails until the product is fixed. The comment on each says what is wrong and
// how bad it is.

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

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

// FINDING (medium: one hostile descriptor ends every Go walk of the image). WalkImage promises
// that "a blob the walk cannot go into is a step with its Err and the walk goes on: fn
// decides whether that ends it". But a layer descriptor whose "data" field is not base64 (the
// library accepts and hands it on as it is) makes goDescriptor fail, and WalkImage returns
// that as its own error: the walk ends at that step, fn never sees the rest of the graph
// (here the config), and the error is a bare fmt error that is not ErrInvalidImage, so a
// caller cannot even tell bad input from a library failure. A GC-like or copy-like consumer
// (containerd's images.Walk users) stops halfway. Fix: make such a step carry ErrInvalidImage
// (or drop the undecodable data) and go on.
func TestAttackWalkImageIsEndedByANonBase64DataField(t *testing.T) {
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
}

// FINDING (low: a lying size comes out negative in Go). The library takes a descriptor size as
// a uint64 and hands it to the walk's callback as is; the Go binding converts it to int64
// without a check, so a hostile layer declaring 18446744073709551615 bytes is a step whose
// Descriptor.Size is -1 (and 2^63 comes out as -2^63). A consumer that sums sizes, preallocates
// or compares against a quota is handed a negative number, and ReadDocument of that very
// descriptor answers ErrInvalidArgument ("size -1 is negative") instead of ErrTooLarge.
// containerd's ocispec.Descriptor.Size is int64 too, but encoding/json refuses such a
// manifest outright. Fix: refuse sizes over the int64 range when parsing documents, or
// report such a step with an error and a size the binding can hold.
func TestAttackWalkStepSizeOverInt64ComesOutNegative(t *testing.T) {
	e := newEngine(t)
	layer, err := e.PutBlob([]byte("layer"))
	if err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	tagRawManifest(t, e, fmt.Sprintf(`"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":18446744073709551615`, layer))
	var negative []WalkStep
	err = e.WalkImage(context.Background(), "app", func(step WalkStep) error {
		if step.Descriptor.Size < 0 {
			negative = append(negative, step)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WalkImage: %v", err)
	}
	if len(negative) != 0 {
		t.Fatalf("steps with a negative size: %+v", negative)
	}
}

// FINDING (low: silent change of a container's environment and labels). A C string cannot hold
// NUL, so the C layer (ffi c_string) rewrites every NUL of a config string as the two
// characters `\0`; the Go binding reads the config through those C accessors, so
// ReadDocument hands Go (whose strings can hold NUL) a different Env entry than the image's:
// "A=x\u0000y" comes out as `A=x\0y`, a value the image never set, with no error. The
// rewrite is not even one-to-one: labels "k\u0000" and `k\0` (both in the config) come out as
// the same key, so one of them silently replaces the other in Labels. containerd hands the
// config's strings over unchanged (runc then refuses a NUL in the environment). Fix: refuse
// such a config (ErrInvalidImage) or pass lengths, never a changed string.
func TestAttackReadDocumentRewritesNULInConfigStrings(t *testing.T) {
	e := newEngine(t)
	config, err := e.PutJSON(mediaTypeConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},`+
		`"config":{"Env":["A=x\u0000y"],"Labels":{"k\u0000":"nul","k\\0":"backslash zero"}}}`))
	if err != nil {
		t.Fatalf("PutJSON: %v", err)
	}
	document, err := e.ReadDocument(config)
	if errors.Is(err, ErrInvalidImage) {
		return
	}
	if err != nil {
		t.Fatalf("ReadDocument: %v", err)
	}
	got := document.ImageConfig
	if len(got.Env) != 1 || got.Env[0] != "A=x\x00y" {
		t.Errorf("Env %q, the config says [\"A=x\\x00y\"]", got.Env)
	}
	if len(got.Labels) != 2 {
		t.Errorf("Labels %q: two labels in the config, %d in Go", got.Labels, len(got.Labels))
	}
}
