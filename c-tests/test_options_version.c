/* Options structs that can grow: each starts with its version, `_init(options, version)` fills
 * the defaults of a version the library knows, and every function taking options refuses a
 * version it does not know (a zeroed struct included) with INVALID_ARGUMENT, doing nothing.
 *
 * How growth keeps old callers working: a later version only appends fields and bumps its
 * *_VERSION; the library reads the version first and then only that version's fields, and
 * `_init` writes only them. So the layout of version 1 is frozen: the assertions below fail
 * the build when a field of it moves or changes size. */
#include <stddef.h>

#include "test_util.h"

#if defined(__x86_64__) || defined(__aarch64__)
_Static_assert(OCICAS_GC_OPTIONS_VERSION == 1, "a new version: add its layout below, keep version 1's");
_Static_assert(offsetof(ocicas_gc_options, version) == 0, "version is the first field");
_Static_assert(offsetof(ocicas_gc_options, dry_run) == 4, "ocicas_gc_options v1 moved");
_Static_assert(offsetof(ocicas_gc_options, ingest_expiry_seconds) == 8, "ocicas_gc_options v1 moved");
_Static_assert(offsetof(ocicas_gc_options, cancel) == 16, "ocicas_gc_options v1 moved");
_Static_assert(offsetof(ocicas_gc_options, min_age_seconds) == 24, "ocicas_gc_options v1 moved");
_Static_assert(sizeof(ocicas_gc_options) == 32, "ocicas_gc_options v1 is 32 bytes");

_Static_assert(OCICAS_REGISTRY_OPTIONS_VERSION == 1, "a new version: add its layout below, keep version 1's");
_Static_assert(offsetof(ocicas_registry_options, version) == 0, "version is the first field");
_Static_assert(offsetof(ocicas_registry_options, username) == 8, "ocicas_registry_options v1 moved");
_Static_assert(offsetof(ocicas_registry_options, password) == 16, "ocicas_registry_options v1 moved");
_Static_assert(offsetof(ocicas_registry_options, insecure) == 24, "ocicas_registry_options v1 moved");
_Static_assert(offsetof(ocicas_registry_options, jobs) == 28, "ocicas_registry_options v1 moved");
_Static_assert(offsetof(ocicas_registry_options, chunk_size) == 32, "ocicas_registry_options v1 moved");
_Static_assert(offsetof(ocicas_registry_options, mount_from) == 40, "ocicas_registry_options v1 moved");
_Static_assert(offsetof(ocicas_registry_options, platforms) == 48, "ocicas_registry_options v1 moved");
_Static_assert(offsetof(ocicas_registry_options, n_platforms) == 56, "ocicas_registry_options v1 moved");
_Static_assert(offsetof(ocicas_registry_options, force) == 64, "ocicas_registry_options v1 moved");
_Static_assert(offsetof(ocicas_registry_options, progress) == 72, "ocicas_registry_options v1 moved");
_Static_assert(offsetof(ocicas_registry_options, progress_user_data) == 80, "ocicas_registry_options v1 moved");
_Static_assert(offsetof(ocicas_registry_options, cancel) == 88, "ocicas_registry_options v1 moved");
_Static_assert(sizeof(ocicas_registry_options) == 96, "ocicas_registry_options v1 is 96 bytes");

_Static_assert(OCICAS_LAYER_OPTIONS_VERSION == 1, "a new version: add its layout below, keep version 1's");
_Static_assert(offsetof(ocicas_layer_options, version) == 0, "version is the first field");
_Static_assert(offsetof(ocicas_layer_options, compression) == 4, "ocicas_layer_options v1 moved");
_Static_assert(offsetof(ocicas_layer_options, level) == 8, "ocicas_layer_options v1 moved");
_Static_assert(offsetof(ocicas_layer_options, docker_media_types) == 12, "ocicas_layer_options v1 moved");
_Static_assert(offsetof(ocicas_layer_options, threads) == 16, "ocicas_layer_options v1 moved");
_Static_assert(offsetof(ocicas_layer_options, ref_name) == 24, "ocicas_layer_options v1 moved");
_Static_assert(offsetof(ocicas_layer_options, lease) == 32, "ocicas_layer_options v1 moved");
_Static_assert(offsetof(ocicas_layer_options, cancel) == 40, "ocicas_layer_options v1 moved");
_Static_assert(sizeof(ocicas_layer_options) == 48, "ocicas_layer_options v1 is 48 bytes");
#endif

static int count_blob(const char *digest, void *count) {
    (void)digest;
    ++*(size_t *)count;
    return 0;
}

static size_t blob_count(ocicas_engine *engine) {
    size_t count = 0;
    CHECK_OK(ocicas_blob_list(engine, count_blob, &count));
    return count;
}

static int64_t no_input(uint8_t *buf, size_t len, void *user_data) {
    (void)buf, (void)len, (void)user_data;
    return 0;
}

int main(void) {
    char root[4096], layout[4096];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);

    CASE("_init fills the defaults of the version asked for and sets it");
    ocicas_gc_options gc;
    memset(&gc, 0xAB, sizeof gc);
    CHECK_OK(ocicas_gc_options_init(&gc, OCICAS_GC_OPTIONS_VERSION));
    CHECK(gc.version == OCICAS_GC_OPTIONS_VERSION && !gc.dry_run && gc.ingest_expiry_seconds == 0 &&
          gc.cancel == NULL && gc.min_age_seconds == 0);
    ocicas_registry_options registry;
    memset(&registry, 0xAB, sizeof registry);
    CHECK_OK(ocicas_registry_options_init(&registry, OCICAS_REGISTRY_OPTIONS_VERSION));
    CHECK(registry.version == OCICAS_REGISTRY_OPTIONS_VERSION && registry.username == NULL && !registry.insecure &&
          registry.jobs == 0 && registry.platforms == NULL && registry.progress == NULL && registry.cancel == NULL);
    ocicas_layer_options layer;
    memset(&layer, 0xAB, sizeof layer);
    CHECK_OK(ocicas_layer_options_init(&layer, OCICAS_LAYER_OPTIONS_VERSION));
    CHECK(layer.version == OCICAS_LAYER_OPTIONS_VERSION && layer.compression == OCICAS_COMPRESSION_GZIP &&
          layer.level == OCICAS_LEVEL_DEFAULT && layer.threads == 0 && layer.ref_name == NULL && layer.cancel == NULL);

    CASE("_init refuses a version it does not know (0, the next one) and NULL, writing nothing");
    const uint32_t unknown[] = {0, 2, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        ocicas_gc_options untouched_gc = gc;
        CHECK_STATUS(ocicas_gc_options_init(&untouched_gc, unknown[i]), OCICAS_ERR_INVALID_ARGUMENT);
        CHECK_MESSAGE("ocicas_gc_options_init");
        CHECK(memcmp(&untouched_gc, &gc, sizeof gc) == 0);
        ocicas_registry_options untouched_registry = registry;
        CHECK_STATUS(ocicas_registry_options_init(&untouched_registry, unknown[i]), OCICAS_ERR_INVALID_ARGUMENT);
        CHECK_MESSAGE("ocicas_registry_options_init");
        CHECK(memcmp(&untouched_registry, &registry, sizeof registry) == 0);
        ocicas_layer_options untouched_layer = layer;
        CHECK_STATUS(ocicas_layer_options_init(&untouched_layer, unknown[i]), OCICAS_ERR_INVALID_ARGUMENT);
        CHECK_MESSAGE("ocicas_layer_options_init");
        CHECK(memcmp(&untouched_layer, &layer, sizeof layer) == 0);
    }
    CHECK_STATUS(ocicas_gc_options_init(NULL, OCICAS_GC_OPTIONS_VERSION), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_registry_options_init(NULL, OCICAS_REGISTRY_OPTIONS_VERSION), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_layer_options_init(NULL, OCICAS_LAYER_OPTIONS_VERSION), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("gc_run refuses options of an unknown version and removes nothing");
    char *digest = NULL;
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)"garbage", 7, &digest));
    ocicas_string_free(digest);
    size_t before = blob_count(engine);
    CHECK(before == 1);
    ocicas_gc_report *report = NULL;
    ocicas_gc_options zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    CHECK_STATUS(ocicas_gc_run(engine, &zeroed, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("version 0");
    ocicas_gc_options next = gc;
    next.version = OCICAS_GC_OPTIONS_VERSION + 1;
    CHECK_STATUS(ocicas_gc_run(engine, &next, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(report == NULL && blob_count(engine) == before);
    age_blobs(engine, layout);
    CHECK_OK(ocicas_gc_run(engine, &gc, &report));
    CHECK(report != NULL && blob_count(engine) == 0);
    ocicas_gc_report_free(report);

    CASE("layer streams refuse layer options of an unknown version, in both modes");
    ocicas_layer_options zeroed_layer;
    memset(&zeroed_layer, 0, sizeof zeroed_layer);
    ocicas_layer_stream *stream = NULL;
    CHECK_STATUS(ocicas_layer_stream_new(engine, &zeroed_layer, &stream), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("ocicas_layer_options");
    CHECK_STATUS(ocicas_layer_stream_from_reader(no_input, NULL, &zeroed_layer, &stream), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(stream == NULL);

    CASE("push and pull refuse registry options of an unknown version before any request");
    ocicas_registry_options zeroed_registry;
    memset(&zeroed_registry, 0, sizeof zeroed_registry);
    ocicas_transfer_report *transfer = NULL;
    CHECK_STATUS(ocicas_registry_push(engine, "app", "127.0.0.1:9/app:1", &zeroed_registry, &transfer),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("ocicas_registry_options");
    CHECK_STATUS(ocicas_registry_pull(engine, "127.0.0.1:9/app:1", "app", &zeroed_registry, &transfer),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(transfer == NULL);

    ocicas_engine_close(engine);
    remove_tree(root);
    printf("ok\n");
    return 0;
}
