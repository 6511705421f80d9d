package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_engine_set_limit(ocicas_engine *engine, uint32_t limit, uint64_t value, char **message) {
    return ocicas_go_result(ocicas_engine_set_limit(engine, limit, value), message);
}

static ocicas_status go_engine_get_limit(const ocicas_engine *engine, uint32_t limit, uint64_t *out, char **message) {
    return ocicas_go_result(ocicas_engine_get_limit(engine, limit, out), message);
}
*/
import "C"

// Limit names one of the bounds an Engine enforces on what one operation may use (the
// README's limits table lists each with its default). Input over a limit is ErrTooLarge.
type Limit uint32

// The limits, with the names the CLI's --limit NAME=VALUE uses.
const (
	LimitJSONSize            Limit = C.OCICAS_LIMIT_JSON_SIZE             // json_size
	LimitArchiveManifestSize Limit = C.OCICAS_LIMIT_ARCHIVE_MANIFEST_SIZE // archive_manifest_size
	LimitArchiveHeaderSize   Limit = C.OCICAS_LIMIT_ARCHIVE_HEADER_SIZE   // archive_header_size
	LimitArchiveMembers      Limit = C.OCICAS_LIMIT_ARCHIVE_MEMBERS       // archive_members
	LimitLabelSize           Limit = C.OCICAS_LIMIT_LABEL_SIZE            // label_size
	LimitWalkDepth           Limit = C.OCICAS_LIMIT_WALK_DEPTH            // walk_depth
	LimitMetadataSize        Limit = C.OCICAS_LIMIT_METADATA_SIZE         // metadata_size
	LimitArchiveJSONTotal    Limit = C.OCICAS_LIMIT_ARCHIVE_JSON_TOTAL    // archive_json_total
	LimitArchiveImportSize   Limit = C.OCICAS_LIMIT_ARCHIVE_IMPORT_SIZE   // archive_import_size
	LimitThreads             Limit = C.OCICAS_LIMIT_THREADS               // threads
	LimitRegistryTimeout     Limit = C.OCICAS_LIMIT_REGISTRY_TIMEOUT      // registry_timeout
	LimitRegistryMinRate     Limit = C.OCICAS_LIMIT_REGISTRY_MIN_RATE     // registry_min_rate
	LimitArchiveExpansion    Limit = C.OCICAS_LIMIT_ARCHIVE_EXPANSION     // archive_expansion
	LimitLockTimeout         Limit = C.OCICAS_LIMIT_LOCK_TIMEOUT          // lock_timeout
)

// SetLimit sets one of the engine's limits. Set limits before sharing the Engine between
// goroutines. ErrInvalidArgument for an unknown limit or a value out of its range (0 is never
// valid but for the walk depth; threads is at most 1024).
func (e *Engine) SetLimit(limit Limit, value uint64) error {
	var message *C.char
	status := C.go_engine_set_limit(e.use(), C.uint32_t(limit), C.uint64_t(value), &message)
	e.done()
	return toError(status, message)
}

// GetLimit returns the current value of one of the engine's limits.
func (e *Engine) GetLimit(limit Limit) (uint64, error) {
	var value C.uint64_t
	var message *C.char
	status := C.go_engine_get_limit(e.use(), C.uint32_t(limit), &value, &message)
	e.done()
	return uint64(value), toError(status, message)
}
