module github.com/ocicas/ocicas/bindings/go

go 1.25
