/* GC and leases through the C API: images built with a streaming layer, ref removal, dry run,
 * lease protection, ingest expiry. */
#include "test_util.h"

#include <sys/stat.h>

static char layout[4200];

/* What a lease list saw: how many leases, and a copy of the lease named "named". */
struct seen_leases {
    int count;
    int stop_after;
    int named_found;
    int64_t named_created, named_expires_at;
    bool named_expires;
    size_t named_digests, named_ingests;
    char named_ingest[64];
};

static int lease_cb(const ocicas_lease *lease, void *user_data) {
    struct seen_leases *seen = user_data;
    seen->count++;
    CHECK(ocicas_lease_id(lease) != NULL && ocicas_lease_created_at(lease) > 0);
    CHECK(ocicas_lease_expires(lease) == (ocicas_lease_expires_at(lease) != 0));
    if (strcmp(ocicas_lease_id(lease), "named") == 0) {
        seen->named_found = 1;
        seen->named_created = ocicas_lease_created_at(lease);
        seen->named_expires = ocicas_lease_expires(lease);
        seen->named_expires_at = ocicas_lease_expires_at(lease);
        seen->named_digests = ocicas_string_list_count(ocicas_lease_digests(lease));
        seen->named_ingests = ocicas_string_list_count(ocicas_lease_ingests(lease));
        const char *ingest = ocicas_string_list_get(ocicas_lease_ingests(lease), 0);
        snprintf(seen->named_ingest, sizeof seen->named_ingest, "%s", ingest ? ingest : "");
    }
    return seen->count == seen->stop_after;
}

/* Runs a GC and checks how many blobs it removed and kept (kept < 0: not checked). */
static void gc_expect(ocicas_engine *engine, const ocicas_gc_options *options, uint64_t removed, long kept) {
    ocicas_gc_report *report = NULL;
    CHECK_OK(ocicas_gc_run(engine, options, &report));
    CHECK(ocicas_gc_report_blobs_removed(report) == removed);
    CHECK(kept < 0 || ocicas_gc_report_blobs_kept(report) == (uint64_t)kept);
    CHECK(ocicas_gc_report_dry_run(report) == (options != NULL && options->dry_run));
    CHECK(ocicas_string_list_count(ocicas_gc_report_missing(report)) == 0);
    CHECK(ocicas_string_list_count(ocicas_gc_report_not_removed(report)) == 0);
    ocicas_gc_report_free(report);
}

/* An image of one streamed layer made of `text`, tagged `tag`. */
static void build_image(ocicas_engine *engine, const char *tag, const char *text) {
    tag_image(engine, tag, (const uint8_t *)text, strlen(text));
}

int main(void) {
    char root[4096];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);
    ocicas_gc_report *report = NULL;

    CASE("GC keeps every blob of tagged images, and reports their bytes");
    build_image(engine, "a", "layer of image a");
    build_image(engine, "b", "layer of image b");
    age_blobs(engine, layout);
    CHECK_OK(ocicas_gc_run(engine, NULL, &report));
    CHECK(ocicas_gc_report_blobs_removed(report) == 0 && ocicas_gc_report_blobs_kept(report) == 6);
    CHECK(ocicas_gc_report_bytes_removed(report) == 0 && ocicas_gc_report_bytes_kept(report) > 0);
    CHECK(!ocicas_gc_report_dry_run(report));
    CHECK(ocicas_gc_report_leases_removed(report) == 0 && ocicas_gc_report_temp_files_removed(report) == 0);
    CHECK(ocicas_gc_report_labels_removed(report) == 0);
    CHECK(ocicas_string_list_count(ocicas_gc_report_missing(report)) == 0);
    CHECK(ocicas_string_list_count(ocicas_gc_report_ingests_removed(report)) == 0);
    CHECK(ocicas_string_list_count(ocicas_gc_report_not_removed(report)) == 0);
    ocicas_gc_report_free(report);
    report = NULL;

    CASE("the GC report's accessors take NULL");
    CHECK(!ocicas_gc_report_dry_run(NULL) && ocicas_gc_report_blobs_removed(NULL) == 0);
    CHECK(ocicas_gc_report_bytes_removed(NULL) == 0 && ocicas_gc_report_blobs_kept(NULL) == 0);
    CHECK(ocicas_gc_report_bytes_kept(NULL) == 0 && ocicas_gc_report_missing(NULL) == NULL);
    CHECK(ocicas_gc_report_ingests_removed(NULL) == NULL && ocicas_gc_report_leases_removed(NULL) == 0);
    CHECK(ocicas_gc_report_temp_files_removed(NULL) == 0 && ocicas_gc_report_labels_removed(NULL) == 0);
    CHECK(ocicas_gc_report_not_removed(NULL) == NULL);
    ocicas_gc_report_free(NULL);

    CASE("after a ref is deleted, min_age keeps its blobs (an hour old) while younger than it");
    CHECK_OK(ocicas_ref_delete(engine, "a"));
    ocicas_gc_options options;
    CHECK_OK(ocicas_gc_options_init(&options, OCICAS_GC_OPTIONS_VERSION));
    options.min_age_seconds = 7200;
    gc_expect(engine, &options, 0, 6);
    options.min_age_seconds = -1;
    CHECK_STATUS(ocicas_gc_run(engine, &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(report == NULL);
    options.min_age_seconds = 0;

    CASE("after a ref is deleted, a dry run reports what a real run removes");
    options.dry_run = true;
    CHECK_OK(ocicas_gc_run(engine, &options, &report));
    CHECK(ocicas_gc_report_dry_run(report) && ocicas_gc_report_blobs_removed(report) == 3);
    uint64_t dry_bytes = ocicas_gc_report_bytes_removed(report);
    CHECK(dry_bytes > 0);
    ocicas_gc_report_free(report);
    CHECK_OK(ocicas_gc_run(engine, NULL, &report));
    CHECK(ocicas_gc_report_blobs_removed(report) == 3 && ocicas_gc_report_blobs_kept(report) == 3);
    CHECK(ocicas_gc_report_bytes_removed(report) == dry_bytes);
    ocicas_gc_report_free(report);
    CHECK(fsck_is_sound(engine));

    CASE("a leased blob survives GC until the lease is released");
    char *lease = NULL, *digest = NULL;
    CHECK_OK(ocicas_lease_new(engine, NULL, -1, &lease));
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)"leased", 6, &digest));
    CHECK_OK(ocicas_lease_add_blob(engine, lease, digest));
    CHECK_OK(ocicas_lease_add_blob(engine, lease, digest));
    age_blobs(engine, layout);
    gc_expect(engine, NULL, 0, -1);
    struct seen_leases seen = {0};
    CHECK_OK(ocicas_lease_list(engine, lease_cb, &seen));
    CHECK(seen.count == 1 && !seen.named_found);
    CHECK_OK(ocicas_lease_release(engine, lease));
    CHECK_STATUS(ocicas_lease_release(engine, lease), OCICAS_ERR_NOT_FOUND);
    gc_expect(engine, NULL, 1, -1);
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
    CHECK_STATUS(ocicas_lease_list(NULL, lease_cb, &seen), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_gc_run(engine, NULL, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_gc_run(NULL, NULL, &report), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("a lease's accessors: times, blobs, ingests; NULL reads as nothing");
    char *forever = NULL;
    CHECK_OK(ocicas_lease_new(engine, "forever", -1, &forever));
    ocicas_string_free(forever);
    CHECK_OK(ocicas_lease_add_ingest(engine, "named", "kept-ingest"));
    int64_t before = (int64_t)time(NULL) * 1000000000;
    memset(&seen, 0, sizeof seen);
    CHECK_OK(ocicas_lease_list(engine, lease_cb, &seen));
    CHECK(seen.count == 2 && seen.named_found);
    CHECK(seen.named_expires && seen.named_expires_at > seen.named_created);
    /* Made just before, to expire an hour after it was made (within the test's run). */
    CHECK(seen.named_expires_at - seen.named_created == (int64_t)3600 * 1000000000);
    CHECK(seen.named_created <= before + 1000000000 && seen.named_created > before - (int64_t)600 * 1000000000);
    CHECK(seen.named_digests == 0 && seen.named_ingests == 1 && strcmp(seen.named_ingest, "kept-ingest") == 0);
    memset(&seen, 0, sizeof seen);
    seen.stop_after = 1;
    CHECK_OK(ocicas_lease_list(engine, lease_cb, &seen));
    CHECK(seen.count == 1);
    CHECK(ocicas_lease_id(NULL) == NULL && ocicas_lease_created_at(NULL) == 0);
    CHECK(!ocicas_lease_expires(NULL) && ocicas_lease_expires_at(NULL) == 0);
    CHECK(ocicas_lease_digests(NULL) == NULL && ocicas_lease_ingests(NULL) == NULL);
    CHECK_OK(ocicas_lease_release(engine, "forever"));

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
    CHECK(ocicas_string_list_count(ocicas_gc_report_ingests_removed(report)) == 0);
    ocicas_gc_report_free(report);
    options.dry_run = false;
    options.ingest_expiry_seconds = -1;
    CHECK_OK(ocicas_gc_run(engine, &options, &report));
    const ocicas_string_list *ingests = ocicas_gc_report_ingests_removed(report);
    CHECK(ocicas_string_list_count(ingests) == 1 && strcmp(ocicas_string_list_get(ingests, 0), "idle") == 0);
    ocicas_gc_report_free(report);
    CHECK_OK(ocicas_writer_write(held, (const uint8_t *)"still here", 10));
    CHECK_OK(ocicas_writer_close(held));

    ocicas_engine_close(engine);
    remove_tree(root);
    printf("test_gc: all cases passed\n");
    return 0;
}
