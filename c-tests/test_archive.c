/* docker-archive export and import through the C API: round trip by path and by callback,
 * and the error paths. */
#include "test_util.h"

static int write_to_file(const uint8_t *data, size_t len, void *user_data) {
    return fwrite(data, 1, len, (FILE *)user_data) == len ? 0 : 1;
}

static int fail_write(const uint8_t *data, size_t len, void *user_data) {
    (void)data; (void)len; (void)user_data;
    return 5;
}

static int64_t read_from_file(uint8_t *buf, size_t len, void *user_data) {
    size_t n = fread(buf, 1, len, (FILE *)user_data);
    return ferror((FILE *)user_data) ? -1 : (int64_t)n;
}

int main(void) {
    char root[4096], layout[4200];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);

    CASE("export an image built through the C API");
    tag_hello_image(engine, "example/app:1.0");

    char archive[4300];
    snprintf(archive, sizeof archive, "%s/app.tar", root);
    FILE *out = fopen(archive, "wb");
    CHECK(out != NULL);
    const char *refs[] = {"example/app:1.0"};
    CHECK_OK(ocicas_archive_export(engine, refs, NULL, 1, OCICAS_ARCHIVE_LEGACY, write_to_file, out, NULL));
    fclose(out);

    CASE("export errors");
    CHECK_STATUS(ocicas_archive_export(engine, refs, NULL, 1, OCICAS_ARCHIVE_LEGACY, fail_write, NULL, NULL), OCICAS_ERR_IO);
    CHECK_MESSAGE("write callback");
    const char *unknown[] = {"nope"};
    CHECK_STATUS(ocicas_archive_export(engine, unknown, NULL, 1, OCICAS_ARCHIVE_LEGACY, write_to_file, stdout, NULL), OCICAS_ERR_NOT_FOUND);
    CHECK_STATUS(ocicas_archive_export(engine, refs, NULL, 1, OCICAS_ARCHIVE_LEGACY, NULL, NULL, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_archive_export(engine, NULL, NULL, 1, OCICAS_ARCHIVE_LEGACY, write_to_file, stdout, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_archive_export(engine, refs, NULL, 1, 7, write_to_file, stdout, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("unknown archive format 7");

    CASE("import by path into another layout keeps the RepoTag");
    char other_root[4096], other_layout[4200];
    ocicas_engine *other = new_layout(other_root, sizeof other_root, other_layout, sizeof other_layout);
    ocicas_imported_images *result = NULL;
    CHECK_OK(ocicas_archive_import(other, archive, NULL, NULL, NULL, -1, NULL, NULL, &result));
    CHECK(imported_one_with_refs(result, "example/app:1.0"));
    ocicas_imported_images_free(result);
    ocicas_descriptor *descriptor = NULL;
    CHECK_OK(ocicas_ref_get(other, "example/app:1.0", &descriptor));
    CHECK(strcmp(key_value(ocicas_descriptor_annotations(descriptor), "io.containerd.image.name"),
                 "docker.io/example/app:1.0") == 0);
    ocicas_descriptor_free(descriptor);

    CASE("import from a read callback under another name");
    FILE *in = fopen(archive, "rb");
    CHECK(in != NULL);
    CHECK_OK(ocicas_archive_import(other, NULL, read_from_file, in, "example/app:1.0", -1, "renamed", NULL, &result));
    fclose(in);
    CHECK(imported_one_with_refs(result, "renamed"));
    ocicas_imported_images_free(result);
    CHECK(fsck_is_sound(other));

    CASE("the docker 25+ form exports and imports under its several RepoTags");
    char oci_archive[4300];
    snprintf(oci_archive, sizeof oci_archive, "%s/app-oci.tar", root);
    const char *image_tags[] = {"example/app:oci", "example/app:latest", NULL};
    const char *const *tags[] = {image_tags};
    out = fopen(oci_archive, "wb");
    CHECK(out != NULL);
    CHECK_OK(ocicas_archive_export(engine, refs, tags, 1, OCICAS_ARCHIVE_OCI, write_to_file, out, NULL));
    fclose(out);
    CHECK_OK(ocicas_archive_import(other, oci_archive, NULL, NULL, NULL, -1, NULL, NULL, &result));
    CHECK(imported_one_with_refs(result, "example/app:oci,example/app:latest"));
    ocicas_imported_images_free(result);
    const char *bad_tags[] = {"example/app", NULL};
    const char *const *bad[] = {bad_tags};
    CHECK_STATUS(ocicas_archive_export(engine, refs, bad, 1, OCICAS_ARCHIVE_OCI, write_to_file, stdout, NULL),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("not NAME:TAG");

    CASE("an image is chosen by tag as docker normalizes it, or by index");
    CHECK_OK(ocicas_archive_import(other, oci_archive, NULL, NULL, "docker.io/example/app", -1, "by-tag", NULL, &result));
    CHECK(imported_one_with_refs(result, "by-tag"));
    ocicas_imported_images_free(result);
    CHECK_OK(ocicas_archive_import(other, oci_archive, NULL, NULL, NULL, 0, "by-index", NULL, &result));
    CHECK(imported_one_with_refs(result, "by-index"));
    ocicas_imported_images_free(result);
    result = NULL;
    CHECK_STATUS(ocicas_archive_import(other, oci_archive, NULL, NULL, NULL, 1, NULL, NULL, &result), OCICAS_ERR_NOT_FOUND);
    CHECK(result == NULL);

    CASE("import errors: garbage, unknown tag, nothing to read");
    char garbage[4300];
    snprintf(garbage, sizeof garbage, "%s/garbage.tar", root);
    write_file(root, "garbage.tar", "this is not a tar archive at all, not even close................");
    CHECK_STATUS(ocicas_archive_import(other, garbage, NULL, NULL, NULL, -1, NULL, NULL, &result), OCICAS_ERR_INVALID_IMAGE);
    CHECK_STATUS(ocicas_archive_import(other, archive, NULL, NULL, "no/such:tag", -1, NULL, NULL, &result), OCICAS_ERR_NOT_FOUND);
    CHECK_STATUS(ocicas_archive_import(other, NULL, NULL, NULL, NULL, -1, NULL, NULL, &result), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_archive_import(other, archive, NULL, NULL, NULL, -1, NULL, NULL, NULL), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("import limits: memory held, bytes written and decompression are TOO_LARGE past their limit");
    struct {
        uint32_t limit;
        uint64_t value;
        const char *name;
        int compressed;
    } limits[] = {
        {OCICAS_LIMIT_ARCHIVE_JSON_TOTAL, 64, "archive_json_total", 0},
        {OCICAS_LIMIT_ARCHIVE_IMPORT_SIZE, 1000, "archive_import_size", 0},
        {OCICAS_LIMIT_ARCHIVE_EXPANSION, 1, "archive_expansion", 1},
    };
    char compressed[4400], command[9000];
    snprintf(compressed, sizeof compressed, "%s.gz", archive);
    snprintf(command, sizeof command, "gzip -c '%s' > '%s'", archive, compressed);
    CHECK(system(command) == 0);
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        char limited_root[4096], limited_layout[4200];
        ocicas_engine *limited = new_layout(limited_root, sizeof limited_root, limited_layout, sizeof limited_layout);
        const char *path = limits[i].compressed ? compressed : archive;
        CHECK_OK(ocicas_archive_import(limited, path, NULL, NULL, NULL, -1, NULL, NULL, &result));
        ocicas_imported_images_free(result);
        CHECK_OK(ocicas_engine_set_limit(limited, limits[i].limit, limits[i].value));
        result = NULL;
        CHECK_STATUS(ocicas_archive_import(limited, path, NULL, NULL, NULL, -1, NULL, NULL, &result), OCICAS_ERR_TOO_LARGE);
        CHECK_MESSAGE(limits[i].name);
        CHECK(result == NULL);
        ocicas_engine_close(limited);
        remove_tree(limited_root);
    }

    ocicas_engine_close(other);
    ocicas_engine_close(engine);
    remove_tree(other_root);
    remove_tree(root);
    printf("test_archive: all cases passed\n");
    return 0;
}
