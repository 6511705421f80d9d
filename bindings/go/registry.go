package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_registry_push(const ocicas_engine *engine, const char *ref, const char *target,
                                      ocicas_registry_options *options, uintptr_t progress, ocicas_transfer_report **out, char **message) {
    if (progress) { options->progress = ocicas_go_progress_cb; options->progress_user_data = (void *)progress; }
    return ocicas_go_result(ocicas_registry_push(engine, ref, target, options, out), message);
}

static ocicas_status go_registry_pull(const ocicas_engine *engine, const char *source, const char *ref,
                                      ocicas_registry_options *options, uintptr_t progress, ocicas_transfer_report **out, char **message) {
    if (progress) { options->progress = ocicas_go_progress_cb; options->progress_user_data = (void *)progress; }
    return ocicas_go_result(ocicas_registry_pull(engine, source, ref, options, out), message);
}

static ocicas_status go_registry_push_layer(const char *target, uintptr_t source, const ocicas_layer_options *layer,
                                            ocicas_registry_options *options, uintptr_t progress, ocicas_descriptor **out,
                                            char **out_diff_id, char **message) {
    if (progress) { options->progress = ocicas_go_progress_cb; options->progress_user_data = (void *)progress; }
    return ocicas_go_result(ocicas_registry_push_layer(target, ocicas_go_read_cb, (void *)source, layer, options, out, out_diff_id), message);
}
*/
import "C"

import (
	"context"
	"io"
	"math"
	"runtime/cgo"
)

// RegistryOptions say how to reach a registry and what to move; nil means HTTPS, the
// registry's credentials from the Docker config file (if any), 4 blobs at once.
type RegistryOptions struct {
	// Username and Password, when set, are sent instead of the Docker config's credentials.
	Username, Password string
	// Insecure talks plain HTTP (a registry on loopback, say).
	Insecure bool
	// Jobs is how many blobs move at once, each a thread: at most the engine's LimitThreads
	// (more is ErrInvalidArgument); 0 means 4, or that limit when it is lower. PushLayer,
	// having no engine, checks it against the default limits.
	Jobs int
	// ChunkSize is the bytes per upload request, at most 1 GiB; 0 means a whole stored blob
	// per request and 16 MiB chunks of a streamed layer.
	ChunkSize int64
	// MountFrom (push) mounts blobs from this repository of the same registry when it can.
	MountFrom string
	// Platforms (pull of an index) limits the pull to these os/arch[/variant]; none means all.
	Platforms []string
	// Force (pull) moves the local ref when it points to another image.
	Force bool
	// Progress, when set, is called as blobs move, from the library's threads, one call at a
	// time and only during the Push, Pull or PushLayer that took it.
	Progress func(Progress)
}

// Progress is how much of one blob has moved. Digest is "" and Total -1 for a streamed layer
// until it ends.
type Progress struct {
	Digest string
	Done   int64
	Total  int64
}

// TransferReport is what a push or pull did.
type TransferReport struct {
	Descriptor Descriptor `json:"descriptor"`
	Blobs      struct {
		// Transferred blobs (manifests included) crossed the network, Bytes of them.
		Transferred int64 `json:"transferred"`
		Bytes       int64 `json:"bytes"`
		// Skipped blobs were already on the other side; Mounted ones came from MountFrom.
		Skipped int64 `json:"skipped"`
		Mounted int64 `json:"mounted"`
	} `json:"blobs"`
}

// toC fills the C options; strings are copied into args. The progress handle (0 for none) must
// be deleted by the caller after the call.
func (o *RegistryOptions) toC(args *cArgs) (C.ocicas_registry_options, cgo.Handle, *progressCallback) {
	var c C.ocicas_registry_options
	// Fails only for a library older than this header; the call taking c then says so.
	C.ocicas_registry_options_init(&c, C.OCICAS_REGISTRY_OPTIONS_VERSION)
	if o == nil {
		return c, 0, nil
	}
	if o.Username != "" || o.Password != "" {
		c.username = args.str("Username", o.Username)
		c.password = args.str("Password", o.Password)
	}
	if o.Jobs < 0 || int64(o.Jobs) > math.MaxUint32 || o.ChunkSize < 0 {
		args.err = invalidArgument("Jobs %d must be in 0..%d and ChunkSize %d must not be negative", o.Jobs, math.MaxUint32, o.ChunkSize)
		return c, 0, nil
	}
	c.insecure = C.bool(o.Insecure)
	c.jobs = C.uint32_t(o.Jobs)
	c.chunk_size = C.uint64_t(o.ChunkSize)
	c.mount_from = args.optionalStr("MountFrom", o.MountFrom)
	c.platforms, c.n_platforms = args.array("Platforms", o.Platforms)
	c.force = C.bool(o.Force)
	if o.Progress == nil {
		return c, 0, nil
	}
	callback := &progressCallback{report: o.Progress}
	return c, cgo.NewHandle(callback), callback
}

// Push pushes image ref of the layout to target, "HOST/REPO[:TAG]" (without a tag, by
// digest). Blobs the registry has are skipped; manifests go last, children before parents.
//
// When ctx is done, the push stops before its next request and within the blob body being
// sent (at its next chunk), with an error that is both ctx's and ErrCancelled; a document
// request in flight ends first, within the engine's registry limits (each document request
// within LimitRegistryTimeout seconds, each blob moving at least LimitRegistryMinRate bytes/s;
// past either, ErrTooLarge). The registry then purges the unfinished upload; nothing is tagged.
func (e *Engine) Push(ctx context.Context, ref, target string, opts *RegistryOptions) (TransferReport, error) {
	var report TransferReport
	err := withContext(ctx, func(cancel *C.ocicas_cancel) error {
		var args cArgs
		defer args.free()
		cRef, cTarget := args.str("ref", ref), args.str("target", target)
		options, handle, callback := opts.toC(&args)
		if args.err != nil {
			return args.err
		}
		options.cancel = cancel
		var out *C.ocicas_transfer_report
		var message *C.char
		status := C.go_registry_push(e.use(), cRef, cTarget, &options, C.uintptr_t(handle), &out, &message)
		e.done()
		var err error
		report, err = transferResult(status, message, out, handle, callback)
		return err
	})
	return report, err
}

// Pull pulls source, "HOST/REPO[:TAG][@DIGEST]", into the layout and tags it ref ("" means
// the tag). A pull that stopped resumes each blob where it stopped; a failed pull tags nothing.
// A blob that another pull (in this or another process) is fetching into the same layout is
// waited for while that pull moves it, then taken from the store.
//
// When ctx is done, the pull stops as Push does, with an error that is both ctx's and
// ErrCancelled: the blobs it finished stay (under a lease that expires), the others are
// resumable ingests, and nothing is tagged.
func (e *Engine) Pull(ctx context.Context, source, ref string, opts *RegistryOptions) (TransferReport, error) {
	var report TransferReport
	err := withContext(ctx, func(cancel *C.ocicas_cancel) error {
		var args cArgs
		defer args.free()
		cSource, cRef := args.str("source", source), args.optionalStr("ref", ref)
		options, handle, callback := opts.toC(&args)
		if args.err != nil {
			return args.err
		}
		options.cancel = cancel
		var out *C.ocicas_transfer_report
		var message *C.char
		status := C.go_registry_pull(e.use(), cSource, cRef, &options, C.uintptr_t(handle), &out, &message)
		e.done()
		var err error
		report, err = transferResult(status, message, out, handle, callback)
		return err
	})
	return report, err
}

func transferResult(status C.ocicas_status, message *C.char, out *C.ocicas_transfer_report, handle cgo.Handle, callback *progressCallback) (TransferReport, error) {
	if handle != 0 {
		handle.Delete()
		callback.repanic()
	}
	if err := toError(status, message); err != nil {
		return TransferReport{}, err
	}
	defer C.ocicas_transfer_report_free(out)
	descriptor, err := goDescriptor(C.ocicas_transfer_report_descriptor(out))
	if err != nil {
		return TransferReport{}, err
	}
	report := TransferReport{Descriptor: descriptor}
	report.Blobs.Transferred = int64(C.ocicas_transfer_report_transferred(out))
	report.Blobs.Bytes = int64(C.ocicas_transfer_report_bytes(out))
	report.Blobs.Skipped = int64(C.ocicas_transfer_report_skipped(out))
	report.Blobs.Mounted = int64(C.ocicas_transfer_report_mounted(out))
	return report, nil
}

// PushLayer compresses the uncompressed tar that source gives and uploads it to repo
// ("HOST/REPO") while it is compressed, nothing written to disk: the seed's
// remote.WriteLayer(repo, stream.NewLayer(source)) in one pass. When ctx is done, it stops at
// its next chunk read from source or uploaded, with an error that is both ctx's and
// ErrCancelled; nothing is completed in the registry then. A document request in flight ends
// first, within the default registry limits (LimitRegistryTimeout 300 s; past it, ErrTooLarge).
func PushLayer(ctx context.Context, repo string, source io.Reader, opts *RegistryOptions, layerOpts ...LayerOption) (LayerDescriptor, error) {
	var descriptor LayerDescriptor
	err := withContext(ctx, func(cancel *C.ocicas_cancel) error {
		var args cArgs
		defer args.free()
		cRepo := args.str("repo", repo)
		layer := newLayerOptions(layerOpts).toC(&args)
		options, progress, progressCallback := opts.toC(&args)
		if args.err != nil {
			return args.err
		}
		options.cancel = cancel
		reader := &readCallback{source: source}
		readHandle := cgo.NewHandle(reader)
		defer readHandle.Delete()
		var out *C.ocicas_descriptor
		var diffID, message *C.char
		status := C.go_registry_push_layer(cRepo, C.uintptr_t(readHandle), &layer, &options, C.uintptr_t(progress), &out, &diffID, &message)
		if progress != 0 {
			progress.Delete()
			progressCallback.repanic()
		}
		reader.repanic()
		if err := toError(status, message); err != nil {
			if reader.err != nil && reader.err != io.EOF {
				return reader.err
			}
			return err
		}
		diff := takeString(diffID)
		pushed, err := takeDescriptor(out)
		if err != nil {
			return err
		}
		descriptor = LayerDescriptor{MediaType: pushed.MediaType, Digest: pushed.Digest, Size: pushed.Size, DiffID: diff}
		return nil
	})
	return descriptor, err
}
