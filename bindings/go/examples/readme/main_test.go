package main

import (
	"bytes"
	"os"
	"regexp"
	"testing"
)

func Example() {
	main()
	// Output:
	// sha256:22c8e3a435f38096822528f9badbc4d9e0ae86319187ea6d4d86bf25b985ab21 holds "hello, ocicas"
	// tagged application/vnd.oci.image.manifest.v1+json with layer sha256:2d357e5f02840909382425934f4563e9ea8a3e47a7ec122d34867a9ccb852534
}

// The README's Go section shows this program verbatim, so it can never drift from the API.
func TestReadmeShowsThisProgram(t *testing.T) {
	readme, err := os.ReadFile("../../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := regexp.MustCompile("(?s)\n###? Go\n.*?```go\n(.*?)```").FindSubmatch(readme)
	if section == nil {
		t.Skip("README.md has no \"## Go\" section with a ```go block yet")
	}
	program, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(section[1], program) {
		t.Fatal("the README's Go example differs from bindings/go/examples/readme/main.go")
	}
}
