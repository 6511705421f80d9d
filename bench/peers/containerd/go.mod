module github.com/ocicas/ocicas/bench/peers/containerd

go 1.26.6

require (
	github.com/containerd/containerd/v2 v2.4.2
	github.com/containerd/log v0.2.0
	github.com/ocicas/ocicas/bindings/go v0.0.0
	github.com/ocicas/ocicas/bindings/go/containerd v0.0.0
	github.com/opencontainers/go-digest v1.0.0
	github.com/opencontainers/image-spec v1.1.1
	github.com/opencontainers/umoci v0.6.0
)

require (
	github.com/apex/log v1.9.0 // indirect
	github.com/containerd/errdefs v1.0.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/sirupsen/logrus v1.10.2 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

replace (
	github.com/ocicas/ocicas/bindings/go => ../../../bindings/go
	github.com/ocicas/ocicas/bindings/go/containerd => ../../../bindings/go/containerd
)
