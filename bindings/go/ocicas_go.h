/* C helpers shared by the cgo preambles of this package. Each Go file's preamble includes this
 * header and defines the shims of the ocicas functions it calls: a shim calls the function and,
 * when it fails, copies ocicas_last_error_message() before returning. The message is per
 * thread and a goroutine may move to another thread between two cgo calls, so it must be read
 * inside the same call that failed. */
#ifndef OCICAS_GO_H
#define OCICAS_GO_H

#include <ocicas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Copies the calling thread's message on failure into *message (freed by Go with free). */
static inline ocicas_status ocicas_go_result(ocicas_status status, char **message) {
    if (status != OCICAS_OK) *message = strdup(ocicas_last_error_message());
    return status;
}

/* The Go callbacks exported by callbacks.go; user_data carries a runtime/cgo.Handle. */
extern int64_t ocicasGoRead(uint8_t *buf, size_t len, uintptr_t handle);
extern int32_t ocicasGoWrite(uint8_t *data, size_t len, uintptr_t handle);
extern int ocicasGoVisit(char *text, uintptr_t handle);
extern int ocicasGoVisitValue(void *value, uintptr_t handle);
extern int ocicasGoVisitRef(char *name, void *descriptor, uintptr_t handle);
extern void ocicasGoProgress(char *digest, uint64_t done, uint64_t total, uintptr_t handle);

/* Trampolines with the exact callback types of ocicas.h, so no Go pointer is ever stored in C:
 * only the integer handle travels through user_data. */
static inline int64_t ocicas_go_read_cb(uint8_t *buf, size_t len, void *user_data) {
    return ocicasGoRead(buf, len, (uintptr_t)user_data);
}

static inline int32_t ocicas_go_write_cb(const uint8_t *data, size_t len, void *user_data) {
    return ocicasGoWrite((uint8_t *)data, len, (uintptr_t)user_data);
}

/* Serves every callback that receives one string: the blob list. */
static inline int ocicas_go_visit_cb(const char *text, void *user_data) {
    return ocicasGoVisit((char *)text, (uintptr_t)user_data);
}

static inline int ocicas_go_visit_blob_info_cb(const ocicas_blob_info *info, void *user_data) {
    return ocicasGoVisitValue((void *)info, (uintptr_t)user_data);
}

static inline int ocicas_go_visit_lease_cb(const ocicas_lease *lease, void *user_data) {
    return ocicasGoVisitValue((void *)lease, (uintptr_t)user_data);
}

static inline int ocicas_go_visit_ingest_status_cb(const ocicas_ingest_status *status, void *user_data) {
    return ocicasGoVisitValue((void *)status, (uintptr_t)user_data);
}

static inline int ocicas_go_visit_ref_cb(const char *name, const ocicas_descriptor *descriptor, void *user_data) {
    return ocicasGoVisitRef((char *)name, (void *)descriptor, (uintptr_t)user_data);
}

/* Called from the library's transfer threads, one call at a time. */
static inline void ocicas_go_progress_cb(const char *digest, uint64_t done, uint64_t total, void *user_data) {
    ocicasGoProgress((char *)digest, done, total, (uintptr_t)user_data);
}

#endif
