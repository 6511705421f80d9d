package ocicas

import (
	"encoding/json"
	"strconv"
	"testing"
)

func TestRefsPutGetListDelete(t *testing.T) {
	engine := newEngine(t)
	config, err := engine.PutJSON("application/vnd.oci.image.config.v1+json", []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := engine.PutJSON("application/vnd.oci.image.manifest.v1+json",
		[]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"`+
			config.MediaType+`","digest":"`+config.Digest+`","size":`+strconv.FormatInt(config.Size, 10)+`},"layers":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	manifest.Annotations = map[string]string{"note": "kept"}
	if err := engine.PutRef("v1", manifest, false); err != nil {
		t.Fatal(err)
	}
	if err := engine.PutRef("v1", manifest, false); err != nil {
		t.Fatalf("putting an equal descriptor again: %v", err)
	}
	if err := engine.PutRef("latest", manifest, false); err != nil {
		t.Fatal(err)
	}
	got, err := engine.GetRef("v1")
	if err != nil || got.Digest != manifest.Digest || got.Size != manifest.Size || got.Annotations["note"] != "kept" {
		t.Fatalf("GetRef: %+v, %v", got, err)
	}
	refs, err := engine.ListRefs()
	if err != nil || len(refs) != 2 || refs[0].Name != "v1" || refs[1].Name != "latest" || refs[1].Descriptor.Digest != manifest.Digest {
		t.Fatalf("ListRefs: %+v, %v", refs, err)
	}
	// The same form as `ocicas ref list --json` prints (docs/CLI.md).
	encoded, err := json.Marshal(refs[1])
	want := `{"name":"latest","descriptor":{"mediaType":"` + manifest.MediaType + `","digest":"` + manifest.Digest +
		`","size":` + strconv.FormatInt(manifest.Size, 10) + `,"annotations":{"note":"kept","org.opencontainers.image.ref.name":"latest"}}}`
	if err != nil || string(encoded) != want {
		t.Fatalf("a Ref as JSON: %s, %v; want %s", encoded, err, want)
	}
	wantErr(t, engine.PutRef("v1", config, false), ErrClobber)
	if err := engine.PutRef("v1", config, true); err != nil {
		t.Fatalf("forced: %v", err)
	}
	for range 2 {
		if err := engine.DeleteRef("v1"); err != nil {
			t.Fatal(err)
		}
	}
	_, err = engine.GetRef("v1")
	wantErr(t, err, ErrNotFound)
}

func TestPutRefErrors(t *testing.T) {
	engine := newEngine(t)
	digest := putBlob(t, engine, "blob")
	wantErr(t, engine.PutRef("bad name", Descriptor{MediaType: "application/octet-stream", Digest: digest, Size: 4}, false), ErrInvalidArgument)
	wantErr(t, engine.PutRef("x", Descriptor{MediaType: "application/octet-stream", Digest: digest, Size: 5}, false), ErrSizeMismatch)
	missing := "sha256:" + "ab" + digest[len("sha256:ab"):]
	if missing == digest {
		missing = "sha256:" + "cd" + digest[len("sha256:cd"):]
	}
	wantErr(t, engine.PutRef("x", Descriptor{MediaType: "application/octet-stream", Digest: missing, Size: 4}, false), ErrNotFound)
	// A document media type the blob does not parse as; other media types are not read.
	wantErr(t, engine.PutRef("x", Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest, Size: 4}, true), ErrInvalidImage)
	if err := engine.PutRef("x", Descriptor{MediaType: "application/octet-stream", Digest: digest, Size: 4}, false); err != nil {
		t.Fatal(err)
	}
}
