/* Ingest writers, ingest management, blob info/labels/walk: every status path. */
#include "test_util.h"

#define HELLO_WORLD "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"

/* Counts the ingests listed and checks that each status reads whole during the call. */
static int count_ingests_cb(const ocicas_ingest_status *status, void *user_data) {
    CHECK(strncmp(ocicas_ingest_status_ref(status), "ref-", 4) == 0);
    CHECK(ocicas_ingest_status_started_at(status) > 0);
    CHECK(ocicas_ingest_status_updated_at(status) >= ocicas_ingest_status_started_at(status));
    (*(int *)user_data)++;
    return 0;
}

/* Counts the blobs walked and checks that each info reads whole during the call. */
static int count_blobs_cb(const ocicas_blob_info *info, void *user_data) {
    CHECK(strncmp(ocicas_blob_info_digest(info), "sha256:", 7) == 0);
    CHECK(ocicas_blob_info_created_at(info) > 0 && ocicas_blob_info_labels(info) != NULL);
    (*(int *)user_data)++;
    return 0;
}

static int stop_blobs_cb(const ocicas_blob_info *info, void *user_data) {
    (void)info;
    (*(int *)user_data)++;
    return 1;
}

/* The value of label `key`, or NULL. */
static const char *label(const ocicas_blob_info *info, const char *key) {
    const ocicas_key_value_list *labels = ocicas_blob_info_labels(info);
    for (size_t i = 0; i < ocicas_key_value_list_count(labels); i++) {
        if (strcmp(ocicas_key_value_list_key(labels, i), key) == 0) return ocicas_key_value_list_value(labels, i);
    }
    return NULL;
}

int main(void) {
    char root[4096], layout[4200];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);
    ocicas_writer *writer = NULL;
    char *text = NULL;

    CASE("empty ref, negative size, malformed expected digest");
    CHECK_STATUS(ocicas_writer_open(engine, "", OCICAS_SIZE_UNKNOWN, NULL, &writer), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_writer_open(engine, "r", -5, NULL, &writer), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_writer_open(engine, "r", 1, "sha256:xyz", &writer), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_writer_open(NULL, "r", 1, NULL, &writer), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_writer_open(engine, "r", 1, NULL, NULL), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("write, status, digest, close keeps the ingest, reopen resumes");
    CHECK_OK(ocicas_writer_open(engine, "ref-1", 11, HELLO_WORLD, &writer));
    CHECK_OK(ocicas_writer_write(writer, (const uint8_t *)"hello ", 6));
    ocicas_ingest_status *status = NULL;
    CHECK_OK(ocicas_writer_status(writer, &status));
    CHECK(strcmp(ocicas_ingest_status_ref(status), "ref-1") == 0 && ocicas_ingest_status_offset(status) == 6);
    CHECK(ocicas_ingest_status_total(status) == 11 && strcmp(ocicas_ingest_status_expected(status), HELLO_WORLD) == 0);
    /* Nanoseconds since the epoch: after 2020, and updated never before started. */
    int64_t started = ocicas_ingest_status_started_at(status);
    CHECK(started > INT64_C(1577836800) * 1000000000 && ocicas_ingest_status_updated_at(status) >= started);
    ocicas_ingest_status_free(status);
    CHECK_STATUS(ocicas_writer_status(writer, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    status = NULL;
    CHECK_STATUS(ocicas_writer_status(NULL, &status), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(status == NULL);
    CHECK_OK(ocicas_writer_digest(writer, &text));
    CHECK(strncmp(text, "sha256:", 7) == 0);
    ocicas_string_free(text);
    ocicas_writer *second = NULL;
    CHECK_STATUS(ocicas_writer_open(engine, "ref-1", 11, NULL, &second), OCICAS_ERR_LOCKED);
    CHECK_MESSAGE("ref-1");
    CHECK_STATUS(ocicas_ingest_abort(engine, "ref-1"), OCICAS_ERR_LOCKED);
    CHECK_OK(ocicas_writer_close(writer));
    CHECK_OK(ocicas_ingest_status_get(engine, "ref-1", &status));
    CHECK(strcmp(ocicas_ingest_status_ref(status), "ref-1") == 0 && ocicas_ingest_status_offset(status) == 6);
    CHECK(ocicas_ingest_status_total(status) == 11 && ocicas_ingest_status_started_at(status) == started);
    ocicas_ingest_status_free(status);
    status = NULL;
    CHECK_STATUS(ocicas_ingest_status_get(NULL, "ref-1", &status), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ingest_status_get(engine, NULL, &status), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ingest_status_get(engine, "ref-1", NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(status == NULL);
    CHECK_STATUS(ocicas_writer_open(engine, "ref-1", 12, NULL, &writer), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_OK(ocicas_writer_open(engine, "ref-1", 11, NULL, &writer));

    CASE("writing past the declared total fails before writing");
    CHECK_STATUS(ocicas_writer_write(writer, (const uint8_t *)"world and more", 14), OCICAS_ERR_SIZE_MISMATCH);
    CHECK_OK(ocicas_writer_write(writer, (const uint8_t *)"world", 5));

    CASE("commit with a wrong size or digest stores nothing and stays resumable");
    CHECK_STATUS(ocicas_writer_commit(writer, 10, NULL, NULL, &text), OCICAS_ERR_SIZE_MISMATCH);
    CHECK_STATUS(ocicas_writer_commit(writer, 11,
                                      "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                                      NULL, &text),
                 OCICAS_ERR_DIGEST_MISMATCH);
    uint64_t size = 0;
    CHECK_STATUS(ocicas_blob_size(engine, HELLO_WORLD, &size), OCICAS_ERR_NOT_FOUND);
    CHECK_STATUS(ocicas_writer_commit(writer, 11, NULL, "{not json", &text), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("commit with labels; write and commit after commit are errors");
    CHECK_OK(ocicas_writer_commit(writer, 11, HELLO_WORLD, "{\"team\":\"storage\"}", &text));
    CHECK(strcmp(text, HELLO_WORLD) == 0);
    ocicas_string_free(text);
    CHECK_STATUS(ocicas_writer_write(writer, (const uint8_t *)"x", 1), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_writer_commit(writer, OCICAS_SIZE_UNKNOWN, NULL, NULL, &text), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_OK(ocicas_writer_close(writer));
    CHECK_STATUS(ocicas_ingest_status_get(engine, "ref-1", &status), OCICAS_ERR_NOT_FOUND);
    CHECK(status == NULL);

    CASE("an expected digest already stored is ALREADY_EXISTS at open");
    CHECK_STATUS(ocicas_writer_open(engine, "ref-2", 11, HELLO_WORLD, &writer), OCICAS_ERR_ALREADY_EXISTS);

    CASE("committing content that is already stored removes the ingest");
    CHECK_OK(ocicas_writer_open(engine, "ref-3", OCICAS_SIZE_UNKNOWN, NULL, &writer));
    CHECK_OK(ocicas_writer_write(writer, (const uint8_t *)"hello world", 11));
    CHECK_STATUS(ocicas_writer_commit(writer, OCICAS_SIZE_UNKNOWN, NULL, NULL, &text), OCICAS_ERR_ALREADY_EXISTS);
    CHECK_OK(ocicas_writer_close(writer));
    CHECK_STATUS(ocicas_ingest_status_get(engine, "ref-3", &status), OCICAS_ERR_NOT_FOUND);

    CASE("truncate(0) restarts; other sizes are NOT_IMPLEMENTED");
    CHECK_OK(ocicas_writer_open(engine, "ref-4", OCICAS_SIZE_UNKNOWN, NULL, &writer));
    CHECK_OK(ocicas_writer_write(writer, (const uint8_t *)"garbage", 7));
    CHECK_STATUS(ocicas_writer_truncate(writer, 3), OCICAS_ERR_NOT_IMPLEMENTED);
    CHECK_OK(ocicas_writer_truncate(writer, 0));
    CHECK_OK(ocicas_writer_write(writer, (const uint8_t *)"fresh", 5));
    CHECK_OK(ocicas_writer_status(writer, &status));
    CHECK(ocicas_ingest_status_offset(status) == 5);
    CHECK(ocicas_ingest_status_total(status) == OCICAS_SIZE_UNKNOWN && ocicas_ingest_status_expected(status) == NULL);
    ocicas_ingest_status_free(status);
    CHECK_OK(ocicas_writer_close(writer));

    CASE("ingest list with filters, abort");
    int count = 0;
    CHECK_OK(ocicas_ingest_list(engine, NULL, 0, count_ingests_cb, &count));
    CHECK(count == 1);
    CHECK_STATUS(ocicas_ingest_list(NULL, NULL, 0, count_ingests_cb, &count), OCICAS_ERR_INVALID_ARGUMENT);
    const char *filters[] = {"ref==ref-4"};
    count = 0;
    CHECK_OK(ocicas_ingest_list(engine, filters, 1, count_ingests_cb, &count));
    CHECK(count == 1);
    const char *no_match[] = {"ref~=^other"};
    count = 0;
    CHECK_OK(ocicas_ingest_list(engine, no_match, 1, count_ingests_cb, &count));
    CHECK(count == 0);
    const char *bad_filter[] = {"ref=="};
    CHECK_STATUS(ocicas_ingest_list(engine, bad_filter, 1, count_ingests_cb, &count), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ingest_list(engine, NULL, 1, count_ingests_cb, &count), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ingest_list(engine, NULL, 0, NULL, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_OK(ocicas_ingest_abort(engine, "ref-4"));
    CHECK_STATUS(ocicas_ingest_abort(engine, "ref-4"), OCICAS_ERR_NOT_FOUND);

    CASE("ingest status accessors and free take NULL");
    ocicas_ingest_status_free(NULL);
    CHECK(ocicas_ingest_status_ref(NULL) == NULL && ocicas_ingest_status_offset(NULL) == 0);
    CHECK(ocicas_ingest_status_total(NULL) == OCICAS_SIZE_UNKNOWN && ocicas_ingest_status_expected(NULL) == NULL);
    CHECK(ocicas_ingest_status_started_at(NULL) == 0 && ocicas_ingest_status_updated_at(NULL) == 0);

    CASE("blob info and label updates by containerd's field paths");
    ocicas_blob_info *info = NULL;
    CHECK_OK(ocicas_blob_info_get(engine, HELLO_WORLD, &info));
    CHECK(strcmp(ocicas_blob_info_digest(info), HELLO_WORLD) == 0 && ocicas_blob_info_size(info) == 11);
    CHECK(ocicas_key_value_list_count(ocicas_blob_info_labels(info)) == 1);
    CHECK(strcmp(label(info, "team"), "storage") == 0);
    /* Nanoseconds since the epoch: after 2020, and updated never before created. */
    int64_t created = ocicas_blob_info_created_at(info);
    CHECK(created > INT64_C(1577836800) * 1000000000 && ocicas_blob_info_updated_at(info) >= created);
    ocicas_blob_info_free(info);
    const char *one_key[] = {"labels.env"};
    info = NULL;
    CHECK_OK(ocicas_blob_update_labels(engine, HELLO_WORLD, "{\"env\":\"prod\",\"ignored\":\"x\"}", one_key, 1, &info));
    CHECK(strcmp(label(info, "env"), "prod") == 0 && strcmp(label(info, "team"), "storage") == 0);
    CHECK(label(info, "ignored") == NULL && ocicas_key_value_list_count(ocicas_blob_info_labels(info)) == 2);
    CHECK(ocicas_blob_info_created_at(info) == created && ocicas_blob_info_updated_at(info) >= created);
    ocicas_blob_info_free(info);
    CHECK_OK(ocicas_blob_update_labels(engine, HELLO_WORLD, NULL, one_key, 1, NULL));
    const char *other_field[] = {"size"};
    info = NULL;
    CHECK_STATUS(ocicas_blob_update_labels(engine, HELLO_WORLD, NULL, other_field, 1, &info), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(info == NULL);
    CHECK_STATUS(ocicas_blob_update_labels(engine, HELLO_WORLD, "[1]", NULL, 0, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_blob_update_labels(NULL, HELLO_WORLD, NULL, NULL, 0, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_blob_update_labels(engine, NULL, NULL, NULL, 0, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    char big[5000];
    memset(big, 'v', sizeof big);
    snprintf(big, 20, "{\"k\":\"");
    memset(big + 6, 'v', 4200);
    snprintf(big + 4206, 10, "\"}");
    CHECK_STATUS(ocicas_blob_update_labels(engine, HELLO_WORLD, big, NULL, 0, NULL), OCICAS_ERR_TOO_LARGE);
    CHECK_MESSAGE("4096");
    const char *absent = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    CHECK_STATUS(ocicas_blob_info_get(engine, absent, &info), OCICAS_ERR_NOT_FOUND);
    CHECK(info == NULL);
    CHECK_STATUS(ocicas_blob_update_labels(engine, absent, NULL, NULL, 0, &info), OCICAS_ERR_NOT_FOUND);
    CHECK(info == NULL);
    CHECK_STATUS(ocicas_blob_info_get(engine, "sha256:xyz", &info), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_blob_info_get(NULL, HELLO_WORLD, &info), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_blob_info_get(engine, NULL, &info), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_blob_info_get(engine, HELLO_WORLD, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(info == NULL);

    CASE("blob info accessors and free take NULL");
    ocicas_blob_info_free(NULL);
    CHECK(ocicas_blob_info_digest(NULL) == NULL && ocicas_blob_info_size(NULL) == 0);
    CHECK(ocicas_blob_info_created_at(NULL) == 0 && ocicas_blob_info_updated_at(NULL) == 0);
    CHECK(ocicas_blob_info_labels(NULL) == NULL);

    CASE("walk with filters: AND within one, OR across several");
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)"other", 5, &text));
    ocicas_string_free(text);
    count = 0;
    CHECK_OK(ocicas_blob_walk(engine, NULL, 0, count_blobs_cb, &count));
    CHECK(count == 2);
    const char *by_label[] = {"labels.team==storage,size==11"};
    count = 0;
    CHECK_OK(ocicas_blob_walk(engine, by_label, 1, count_blobs_cb, &count));
    CHECK(count == 1);
    const char *either[] = {"size==5", "labels.team"};
    count = 0;
    CHECK_OK(ocicas_blob_walk(engine, either, 2, count_blobs_cb, &count));
    CHECK(count == 2);
    count = 0;
    CHECK_OK(ocicas_blob_walk(engine, NULL, 0, stop_blobs_cb, &count));
    CHECK(count == 1);
    const char *bad_regex[] = {"digest~=("};
    CHECK_STATUS(ocicas_blob_walk(engine, bad_regex, 1, count_blobs_cb, &count), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_blob_walk(engine, NULL, 0, NULL, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_blob_walk(NULL, NULL, 0, count_blobs_cb, &count), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("sha512 ingests commit and verify");
    const char *abc512 =
        "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd"
        "454d4423643ce80e2a9ac94fa54ca49f";
    CHECK_OK(ocicas_writer_open(engine, "ref-512", 3, abc512, &writer));
    CHECK_OK(ocicas_writer_write(writer, (const uint8_t *)"abc", 3));
    CHECK_OK(ocicas_writer_commit(writer, 3, NULL, NULL, &text));
    CHECK(strcmp(text, abc512) == 0);
    ocicas_string_free(text);
    CHECK_OK(ocicas_writer_close(writer));
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK_OK(ocicas_blob_read(engine, abc512, 10, &data, &len));
    ocicas_bytes_free(data, len);

    ocicas_engine_close(engine);
    remove_tree(root);
    printf("test_writer: all cases passed\n");
    return 0;
}
