/* ocicas_engine_set_limit: each limit, set from C, lets input at the limit through and refuses
 * input past it with OCICAS_ERR_TOO_LARGE and a message naming the limit. */
#include "test_util.h"

#include <sys/stat.h>

static int write_to_file(const uint8_t *data, size_t len, void *user_data) {
    return fwrite(data, 1, len, (FILE *)user_data) == len ? 0 : 1;
}

static long file_size(const char *path) {
    struct stat st;
    CHECK(stat(path, &st) == 0);
    return (long)st.st_size;
}

/* Whether fsck finds the layout sound (and, when `needle` is not NULL, names it in a problem or
 * note). */
static int fsck_sound(ocicas_engine *engine, const char *needle) {
    ocicas_fsck_report *report = NULL;
    CHECK_OK(ocicas_fsck(engine, &report));
    int sound = ocicas_fsck_report_sound(report);
    if (needle) {
        CHECK(list_mentions(ocicas_fsck_report_problems(report), needle) ||
              list_mentions(ocicas_fsck_report_notes(report), needle));
    }
    ocicas_fsck_report_free(report);
    return sound;
}

/* Imports `archive` into a fresh layout under `root` whose limit `which` is `value`. */
static ocicas_status import_with_limit(const char *root, const char *name, const char *archive, uint32_t which,
                                       uint64_t value) {
    char layout[4400];
    snprintf(layout, sizeof layout, "%s/%s", root, name);
    ocicas_engine *engine = NULL;
    CHECK_OK(ocicas_engine_open(layout, OCICAS_OPEN_CREATE, &engine));
    CHECK_OK(ocicas_engine_set_limit(engine, which, value));
    ocicas_imported_images *result = NULL;
    ocicas_status status = ocicas_archive_import(engine, archive, NULL, NULL, NULL, -1, NULL, NULL, &result);
    ocicas_imported_images_free(result);
    ocicas_engine_close(engine);
    return status;
}

int main(void) {
    char root[4096], layout[4200];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);
    tag_hello_image(engine, "example/app:1.0");

    CASE("an unknown limit and a NULL engine are INVALID_ARGUMENT");
    CHECK_STATUS(ocicas_engine_set_limit(engine, 0, 1), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("unknown limit");
    CHECK_STATUS(ocicas_engine_set_limit(engine, 99, 1), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_engine_set_limit(NULL, OCICAS_LIMIT_JSON_SIZE, 1), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("values out of a limit's range are INVALID_ARGUMENT and change nothing; get reads them back");
    uint64_t value = 0;
    CHECK_OK(ocicas_engine_get_limit(engine, OCICAS_LIMIT_LABEL_SIZE, &value));
    CHECK(value == 4096);
    CHECK_STATUS(ocicas_engine_set_limit(engine, OCICAS_LIMIT_LABEL_SIZE, 0), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("label_size");
    CHECK_STATUS(ocicas_engine_set_limit(engine, OCICAS_LIMIT_THREADS, 1025), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_OK(ocicas_engine_set_limit(engine, OCICAS_LIMIT_THREADS, 3));
    CHECK_OK(ocicas_engine_get_limit(engine, OCICAS_LIMIT_THREADS, &value));
    CHECK(value == 3);
    CHECK_OK(ocicas_engine_get_limit(engine, OCICAS_LIMIT_LABEL_SIZE, &value));
    CHECK(value == 4096);
    CHECK_STATUS(ocicas_engine_get_limit(engine, 99, &value), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_engine_get_limit(engine, OCICAS_LIMIT_THREADS, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_engine_get_limit(NULL, OCICAS_LIMIT_THREADS, &value), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("label size: key + value at the limit pass, one byte more is TOO_LARGE");
    char *text = NULL;
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)"labelled", 8, &text));
    char digest[200];
    snprintf(digest, sizeof digest, "%s", text);
    ocicas_string_free(text);
    CHECK_OK(ocicas_engine_set_limit(engine, OCICAS_LIMIT_LABEL_SIZE, 10));
    CHECK_OK(ocicas_blob_update_labels(engine, digest, "{\"key\":\"1234567\"}", NULL, 0, NULL));
    CHECK_STATUS(ocicas_blob_update_labels(engine, digest, "{\"key\":\"12345678\"}", NULL, 0, NULL),
                 OCICAS_ERR_TOO_LARGE);
    CHECK_MESSAGE("label_size");
    CHECK_OK(ocicas_engine_set_limit(engine, OCICAS_LIMIT_LABEL_SIZE, 4096));

    CASE("JSON size: index.json at the limit reads, one byte over the limit is TOO_LARGE");
    char index_path[4400];
    snprintf(index_path, sizeof index_path, "%s/index.json", layout);
    long index_size = file_size(index_path);
    ocicas_descriptor *ref = NULL;
    CHECK_OK(ocicas_engine_set_limit(engine, OCICAS_LIMIT_JSON_SIZE, (uint64_t)index_size));
    CHECK_OK(ocicas_ref_get(engine, "example/app:1.0", &ref));
    ocicas_descriptor_free(ref);
    CHECK_OK(ocicas_engine_set_limit(engine, OCICAS_LIMIT_JSON_SIZE, (uint64_t)index_size - 1));
    ref = NULL;
    CHECK_STATUS(ocicas_ref_get(engine, "example/app:1.0", &ref), OCICAS_ERR_TOO_LARGE);
    CHECK_MESSAGE("json_size");
    CHECK(ref == NULL);
    CHECK_OK(ocicas_engine_set_limit(engine, OCICAS_LIMIT_JSON_SIZE, 4 << 20));

    CASE("walk depth: following the tagged manifest's children needs depth 1; at 0 fsck reports the limit");
    CHECK_OK(ocicas_engine_set_limit(engine, OCICAS_LIMIT_WALK_DEPTH, 1));
    CHECK(fsck_sound(engine, NULL));
    CHECK_OK(ocicas_engine_set_limit(engine, OCICAS_LIMIT_WALK_DEPTH, 0));
    CHECK(!fsck_sound(engine, "walk_depth"));
    CHECK_OK(ocicas_engine_set_limit(engine, OCICAS_LIMIT_WALK_DEPTH, 16));

    CASE("archive limits: an exported image imports at the defaults, not with each set too low");
    char archive[4300];
    snprintf(archive, sizeof archive, "%s/app.tar", root);
    FILE *out = fopen(archive, "wb");
    CHECK(out != NULL);
    const char *refs[] = {"example/app:1.0"};
    CHECK_OK(ocicas_archive_export(engine, refs, NULL, 1, OCICAS_ARCHIVE_LEGACY, write_to_file, out, NULL));
    fclose(out);
    CHECK_OK(import_with_limit(root, "members-ok", archive, OCICAS_LIMIT_ARCHIVE_MEMBERS, 100000));
    /* A legacy archive of one one-layer image has at least three members. */
    CHECK_STATUS(import_with_limit(root, "members-over", archive, OCICAS_LIMIT_ARCHIVE_MEMBERS, 2),
                 OCICAS_ERR_TOO_LARGE);
    CHECK_MESSAGE("archive_members");
    CHECK_OK(import_with_limit(root, "manifest-ok", archive, OCICAS_LIMIT_ARCHIVE_MANIFEST_SIZE, 1 << 20));
    CHECK_STATUS(import_with_limit(root, "manifest-over", archive, OCICAS_LIMIT_ARCHIVE_MANIFEST_SIZE, 10),
                 OCICAS_ERR_TOO_LARGE);
    CHECK_MESSAGE("archive_manifest_size");
    CHECK_OK(import_with_limit(root, "header-ok", archive, OCICAS_LIMIT_ARCHIVE_HEADER_SIZE, 1 << 20));
    /* Every member has a 512-byte header block: 511 bytes cannot reach the first one. */
    CHECK_STATUS(import_with_limit(root, "header-over", archive, OCICAS_LIMIT_ARCHIVE_HEADER_SIZE, 511),
                 OCICAS_ERR_TOO_LARGE);
    CHECK_MESSAGE("archive_header_size");

    ocicas_engine_close(engine);
    remove_tree(root);
    printf("ok\n");
    return 0;
}
