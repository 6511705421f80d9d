package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_gc_run(const ocicas_engine *engine, const ocicas_gc_options *options, ocicas_gc_report **out, char **message) {
    return ocicas_go_result(ocicas_gc_run(engine, options, out), message);
}
*/
import "C"

import (
	"context"
	"time"
)

// GCOptions change what GC does; nil means the defaults.
type GCOptions struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// IngestExpiry removes ingests not updated for this long (rounded up to whole seconds);
	// 0 means the default, 24 hours; a negative value removes every ingest that no live writer
	// or lease holds.
	IngestExpiry time.Duration
	// MinAge keeps, with everything they reference, the blobs committed within this long before
	// the run started (rounded up to whole seconds), as if a writer still meant to tag or lease
	// them. 0 keeps none but those committed during the run and in the second before it, which
	// are always kept; negative is ErrInvalidArgument.
	MinAge time.Duration
}

// GCReport is what a GC removed and kept.
type GCReport struct {
	DryRun       bool  `json:"dryRun"`
	BlobsRemoved int64 `json:"blobsRemoved"`
	// BytesRemoved and BytesKept are the lengths of the blob files as stored (st_size), not
	// what referrers declare and not the blocks allocated: a sparse file counts its holes, a
	// small blob its bytes (du shows allocated space). BlobsKept counts the blobs stored when
	// the run started that it kept.
	BytesRemoved int64 `json:"bytesRemoved"`
	BlobsKept    int64 `json:"blobsKept"`
	BytesKept    int64 `json:"bytesKept"`
	// Missing names each referenced blob that is not stored, and what references it.
	Missing        []string `json:"missing"`
	IngestsRemoved []string `json:"ingestsRemoved"`
	// NotRemoved names what the sweep meant to remove and could not, and left: private state
	// with something planted in it, or an entry of blobs/ named as a blob that is not a regular
	// file (a directory planted during the run). The rest is swept and GC returns no error;
	// fsck says why.
	NotRemoved       []string `json:"notRemoved"`
	LeasesRemoved    int64    `json:"leasesRemoved"`
	TempFilesRemoved int64    `json:"tempFilesRemoved"`
	LabelsRemoved    int64    `json:"labelsRemoved"`
}

// GC removes every blob not reachable from the roots: index.json entries, live leases, blobs
// labelled ocicas.gc.root and ingests in progress, following OCI and Docker indexes and
// manifests and ocicas.gc.ref.* labels. It is safe while other processes write.
//
// When ctx is done, GC stops between its phases, between the blobs it marks and before each
// blob it removes, with an error that is both ctx's and ErrCancelled. Stopped while marking, it
// removed nothing; stopped while sweeping, each blob it removed was garbage (with its labels)
// and the rest waits for the next run. The store is consistent either way.
func (e *Engine) GC(ctx context.Context, opts *GCOptions) (GCReport, error) {
	var report GCReport
	err := withContext(ctx, func(cancel *C.ocicas_cancel) error {
		var options C.ocicas_gc_options
		// Fails only for a library older than this header; the run then says so.
		C.ocicas_gc_options_init(&options, C.OCICAS_GC_OPTIONS_VERSION)
		if opts != nil {
			options.dry_run = C.bool(opts.DryRun)
			switch {
			case opts.IngestExpiry < 0:
				options.ingest_expiry_seconds = -1
			case opts.IngestExpiry > 0:
				options.ingest_expiry_seconds = C.int64_t(wholeSeconds(opts.IngestExpiry))
			}
			switch {
			case opts.MinAge < 0:
				options.min_age_seconds = -1
			case opts.MinAge > 0:
				options.min_age_seconds = C.int64_t(wholeSeconds(opts.MinAge))
			}
		}
		options.cancel = cancel
		var out *C.ocicas_gc_report
		var message *C.char
		status := C.go_gc_run(e.use(), &options, &out, &message)
		e.done()
		if err := toError(status, message); err != nil {
			return err
		}
		report = takeGCReport(out)
		return nil
	})
	return report, err
}

// takeGCReport copies a report returned through an out argument and frees it.
func takeGCReport(report *C.ocicas_gc_report) GCReport {
	defer C.ocicas_gc_report_free(report)
	return GCReport{
		DryRun:           bool(C.ocicas_gc_report_dry_run(report)),
		BlobsRemoved:     int64(C.ocicas_gc_report_blobs_removed(report)),
		BytesRemoved:     int64(C.ocicas_gc_report_bytes_removed(report)),
		BlobsKept:        int64(C.ocicas_gc_report_blobs_kept(report)),
		BytesKept:        int64(C.ocicas_gc_report_bytes_kept(report)),
		Missing:          goStrings(C.ocicas_gc_report_missing(report)),
		IngestsRemoved:   goStrings(C.ocicas_gc_report_ingests_removed(report)),
		NotRemoved:       goStrings(C.ocicas_gc_report_not_removed(report)),
		LeasesRemoved:    int64(C.ocicas_gc_report_leases_removed(report)),
		TempFilesRemoved: int64(C.ocicas_gc_report_temp_files_removed(report)),
		LabelsRemoved:    int64(C.ocicas_gc_report_labels_removed(report)),
	}
}

// wholeSeconds rounds a positive duration up to seconds, so that a short one does not become 0,
// which the ABI reads as "the default" or "never". (Adding a second first would overflow near
// the longest Duration and turn it negative: "never", or "every idle ingest".)
func wholeSeconds(d time.Duration) int64 {
	return int64((d-1)/time.Second) + 1
}
