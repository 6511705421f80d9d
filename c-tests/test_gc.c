/* GC and leases through the C API: images built with a streaming layer, ref removal, dry run,
 * lease protection, ingest expiry. */
#include "test_util.h"

#include <sys/stat.h>

static char layout[4200];

static int count_cb(const char *json, void *user_data) {
    (void)json;
    (*(int *)user_data)++;
    return 0;
}

/* An image of one streamed layer made of `text`, tagged `tag`. */
static void build_image(ocicas_engine *engine, const char *tag, const char *text) {
    tag_image(engine, tag, (const uint8_t *)text, strlen(text));
}

int main(void) {
    char root[4096];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);
    char *report = NULL;

    CASE("GC keeps every blob of tagged images");
    build_image(engine, "a", "layer of image a");
    build_image(engine, "b", "layer of image b");
    age_blobs(engine, layout);
    CHECK_OK(ocicas_gc_run(engine, NULL, &report));
    CHECK(json_number(report, "blobsRemoved") == 0 && json_number(report, "blobsKept") == 6);
    ocicas_string_free(report);

    CASE("after a ref is deleted, min_age keeps its blobs (an hour old) while younger than it");
    CHECK_OK(ocicas_ref_delete(engine, "a"));
    ocicas_gc_options options;
    CHECK_OK(ocicas_gc_options_init(&options, OCICAS_GC_OPTIONS_VERSION));
    options.min_age_seconds = 7200;
    CHECK_OK(ocicas_gc_run(engine, &options, &report));
    CHECK(json_number(report, "blobsRemoved") == 0 && json_number(report, "blobsKept") == 6);
    ocicas_string_free(report);
    options.min_age_seconds = -1;
    report = NULL;
    CHECK_STATUS(ocicas_gc_run(engine, &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(report == NULL);
    options.min_age_seconds = 0;

    CASE("after a ref is deleted, a dry run reports what a real run removes");
    options.dry_run = true;
    CHECK_OK(ocicas_gc_run(engine, &options, &report));
    CHECK(json_number(report, "blobsRemoved") == 3 && strstr(report, "\"dryRun\":true") != NULL);
    ocicas_string_free(report);
    CHECK_OK(ocicas_gc_run(engine, NULL, &report));
    CHECK(json_number(report, "blobsRemoved") == 3 && json_number(report, "blobsKept") == 3);
    ocicas_string_free(report);
    CHECK(fsck_is_sound(engine));

    CASE("a leased blob survives GC until the lease is released");
    char *lease = NULL, *digest = NULL;
    CHECK_OK(ocicas_lease_new(engine, NULL, -1, &lease));
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)"leased", 6, &digest));
    CHECK_OK(ocicas_lease_add_blob(engine, lease, digest));
    CHECK_OK(ocicas_lease_add_blob(engine, lease, digest));
    age_blobs(engine, layout);
    CHECK_OK(ocicas_gc_run(engine, NULL, &report));
    CHECK(json_number(report, "blobsRemoved") == 0);
    ocicas_string_free(report);
    int leases = 0;
    CHECK_OK(ocicas_lease_list(engine, count_cb, &leases));
    CHECK(leases == 1);
    CHECK_OK(ocicas_lease_release(engine, lease));
    CHECK_STATUS(ocicas_lease_release(engine, lease), OCICAS_ERR_NOT_FOUND);
    CHECK_OK(ocicas_gc_run(engine, NULL, &report));
    CHECK(json_number(report, "blobsRemoved") == 1);
    ocicas_string_free(report);
    uint64_t size = 0;
    CHECK_STATUS(ocicas_blob_size(engine, digest, &size), OCICAS_ERR_NOT_FOUND);
    ocicas_string_free(digest);
    ocicas_string_free(lease);

    CASE("lease errors");
    CHECK_OK(ocicas_lease_new(engine, "named", 3600, &lease));
    CHECK(strcmp(lease, "named") == 0);
    ocicas_string_free(lease);
    CHECK_STATUS(ocicas_lease_new(engine, "named", -1, &lease), OCICAS_ERR_ALREADY_EXISTS);
    CHECK_STATUS(ocicas_lease_new(engine, "../escape", -1, &lease), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_lease_new(engine, NULL, INT64_MAX, &lease), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("year 9999");
    CHECK_STATUS(ocicas_lease_new(engine, NULL, (int64_t)1 << 40, &lease), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_lease_add_blob(engine, "missing", "sha256:0000000000000000000000000000000000000000000000000000000000000000"),
                 OCICAS_ERR_NOT_FOUND);
    CHECK_STATUS(ocicas_lease_add_blob(engine, "named", "sha256:nothex"), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_lease_add_ingest(engine, "named", ""), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_lease_list(engine, NULL, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_gc_run(engine, NULL, NULL), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("idle ingests go with a negative expiry; held and leased ones stay");
    ocicas_writer *held = NULL, *idle = NULL, *leased = NULL;
    CHECK_OK(ocicas_writer_open(engine, "held", OCICAS_SIZE_UNKNOWN, NULL, &held));
    CHECK_OK(ocicas_writer_open(engine, "idle", OCICAS_SIZE_UNKNOWN, NULL, &idle));
    CHECK_OK(ocicas_writer_write(idle, (const uint8_t *)"x", 1));
    CHECK_OK(ocicas_writer_close(idle));
    CHECK_OK(ocicas_writer_open(engine, "leased", OCICAS_SIZE_UNKNOWN, NULL, &leased));
    CHECK_OK(ocicas_writer_close(leased));
    CHECK_OK(ocicas_lease_add_ingest(engine, "named", "leased"));
    CHECK_OK(ocicas_gc_run(engine, NULL, &report));
    CHECK(strstr(report, "\"ingestsRemoved\":[]") != NULL);
    ocicas_string_free(report);
    options.dry_run = false;
    options.ingest_expiry_seconds = -1;
    CHECK_OK(ocicas_gc_run(engine, &options, &report));
    CHECK(strstr(report, "\"ingestsRemoved\":[\"idle\"]") != NULL);
    ocicas_string_free(report);
    CHECK_OK(ocicas_writer_write(held, (const uint8_t *)"still here", 10));
    CHECK_OK(ocicas_writer_close(held));

    ocicas_engine_close(engine);
    remove_tree(root);
    printf("test_gc: all cases passed\n");
    return 0;
}
