/* The docker-archive reader and writer through the C API: an archive exported by ocicas is
 * opened (in place and from a callback), its image's manifest and blobs are read, copied blob
 * by blob into a new archive by the writer, and that archive imports. Every status path. */
#include "test_util.h"

/* A growable byte buffer, written by write callbacks and read back by read callbacks. */
typedef struct {
    uint8_t *data;
    size_t len, cap, pos;
} buffer;

static int append_to_buffer(const uint8_t *data, size_t len, void *user_data) {
    buffer *b = user_data;
    if (b->len + len > b->cap) {
        size_t cap = (b->len + len) * 2;
        uint8_t *grown = realloc(b->data, cap);
        if (grown == NULL) return 1;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static int64_t read_from_buffer(uint8_t *buf, size_t len, void *user_data) {
    buffer *b = user_data;
    size_t n = b->len - b->pos < len ? b->len - b->pos : len;
    memcpy(buf, b->data + b->pos, n);
    b->pos += n;
    return (int64_t)n;
}

static int64_t fail_read(uint8_t *buf, size_t len, void *user_data) {
    (void)buf; (void)len; (void)user_data;
    return -1;
}

static int fail_write(const uint8_t *data, size_t len, void *user_data) {
    (void)data; (void)len; (void)user_data;
    return 3;
}

/* Copies the digest that follows `key` (e.g. "\"config\":{\"digest\":\"") in `json`. */
static void digest_after(const char *json, const char *key, char out[72]) {
    const char *at = strstr(json, key);
    CHECK(at != NULL);
    memcpy(out, at + strlen(key), 71);
    out[71] = '\0';
}

int main(void) {
    char root[4096], layout[4200];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);
    tag_hello_image(engine, "example/app:1.0");
    buffer archive = {0};
    const char *refs[] = {"example/app:1.0"};
    CHECK_OK(ocicas_archive_export(engine, refs, NULL, 1, OCICAS_ARCHIVE_LEGACY, append_to_buffer, &archive, NULL));
    char path[4300];
    snprintf(path, sizeof path, "%s/app.tar", root);
    FILE *file = fopen(path, "wb");
    CHECK(file != NULL && fwrite(archive.data, 1, archive.len, file) == archive.len);
    fclose(file);

    CASE("a reader opens a file in place and a callback stream alike");
    ocicas_archive_reader *readers[2] = {NULL, NULL};
    CHECK_OK(ocicas_archive_reader_open(engine, path, NULL, NULL, &readers[0]));
    archive.pos = 0;
    CHECK_OK(ocicas_archive_reader_open(engine, NULL, read_from_buffer, &archive, &readers[1]));
    char config[72] = "", layer[72] = "";
    buffer config_bytes = {0}, layer_bytes = {0};
    for (int i = 0; i < 2; i++) {
        char *manifest = NULL, joined[512];
        CHECK(ocicas_archive_reader_item_count(readers[i]) == 1);
        const ocicas_archive_item *item = ocicas_archive_reader_item(readers[i], 0);
        CHECK(item != NULL && ocicas_archive_reader_item(readers[i], 1) == NULL);
        CHECK(strcmp(join_list(ocicas_archive_item_repo_tags(item), joined, sizeof joined), "example/app:1.0") == 0);
        /* The legacy form as ocicas writes it: the config at "<hex>.json", one layer at "<hex>.tar". */
        CHECK(strlen(ocicas_archive_item_config(item)) == 69 && strstr(ocicas_archive_item_config(item), ".json") != NULL);
        const ocicas_string_list *item_layers = ocicas_archive_item_layers(item);
        CHECK(ocicas_string_list_count(item_layers) == 1 && strlen(ocicas_string_list_get(item_layers, 0)) == 68);
        CHECK(strstr(ocicas_string_list_get(item_layers, 0), ".tar") != NULL);
        CHECK_OK(ocicas_archive_reader_manifest(readers[i], "example/app:1.0", -1, OCICAS_MANIFEST_OCI, &manifest));
        CHECK(strstr(manifest, "application/vnd.oci.image.manifest.v1+json") != NULL);
        ocicas_string_free(manifest);
        CHECK_OK(ocicas_archive_reader_manifest(readers[i], NULL, -1, OCICAS_MANIFEST_DOCKER, &manifest));
        CHECK(strstr(manifest, "application/vnd.docker.distribution.manifest.v2+json") != NULL);
        digest_after(manifest, "\"config\":{\"digest\":\"", config);
        digest_after(manifest, "\"layers\":[{\"digest\":\"", layer);
        ocicas_string_free(manifest);
        config_bytes.len = layer_bytes.len = 0;
        uint64_t size = 0;
        CHECK_OK(ocicas_archive_reader_read_blob(readers[i], NULL, 0, config, append_to_buffer, &config_bytes, &size));
        CHECK(config_bytes.len > 0 && config_bytes.data[0] == '{' && size == config_bytes.len);
        CHECK_OK(ocicas_archive_reader_read_blob(readers[i], NULL, -1, layer, append_to_buffer, &layer_bytes, &size));
        CHECK(layer_bytes.len == 2048 && memcmp(layer_bytes.data, "hello.txt", 9) == 0 && size == 2048);
    }

    CASE("reader errors");
    ocicas_archive_reader *reader = readers[0], *none = NULL;
    char *text = NULL;
    CHECK_STATUS(ocicas_archive_reader_open(NULL, path, NULL, NULL, &none), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_archive_reader_open(engine, NULL, NULL, NULL, &none), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_archive_reader_open(engine, path, NULL, NULL, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(none == NULL);
    char missing[4400];
    snprintf(missing, sizeof missing, "%s/missing.tar", root);
    CHECK_STATUS(ocicas_archive_reader_open(engine, missing, NULL, NULL, &none), OCICAS_ERR_NOT_FOUND);
    CHECK(ocicas_archive_reader_item_count(NULL) == 0 && ocicas_archive_reader_item(NULL, 0) == NULL);
    CHECK(ocicas_archive_item_config(NULL) == NULL && ocicas_archive_item_repo_tags(NULL) == NULL);
    CHECK(ocicas_archive_item_layers(NULL) == NULL);
    CHECK_STATUS(ocicas_archive_reader_manifest(reader, NULL, -1, 9, &text), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("unknown manifest format 9");
    CHECK_STATUS(ocicas_archive_reader_manifest(reader, "no/such:tag", -1, OCICAS_MANIFEST_OCI, &text),
                 OCICAS_ERR_NOT_FOUND);
    CHECK_STATUS(ocicas_archive_reader_manifest(reader, NULL, 5, OCICAS_MANIFEST_OCI, &text), OCICAS_ERR_NOT_FOUND);
    CHECK_STATUS(ocicas_archive_reader_manifest(reader, NULL, -1, OCICAS_MANIFEST_OCI, NULL),
                 OCICAS_ERR_INVALID_ARGUMENT);
    const char *stranger = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    uint64_t size = 7;
    CHECK_STATUS(ocicas_archive_reader_read_blob(reader, NULL, -1, stranger, append_to_buffer, &layer_bytes, &size),
                 OCICAS_ERR_NOT_FOUND);
    CHECK_STATUS(ocicas_archive_reader_read_blob(reader, NULL, -1, "sha256:short", append_to_buffer, &layer_bytes, &size),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_archive_reader_read_blob(reader, NULL, -1, layer, NULL, NULL, &size), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_archive_reader_read_blob(reader, NULL, -1, layer, fail_write, NULL, &size), OCICAS_ERR_IO);
    CHECK_MESSAGE("write callback failed");
    CHECK_STATUS(ocicas_archive_reader_read_blob(reader, NULL, -1, layer, append_to_buffer, &layer_bytes, NULL),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(size == 7);
    ocicas_archive_reader_free(readers[0]);
    ocicas_archive_reader_free(readers[1]);
    ocicas_archive_reader_free(NULL);

    CASE("a blob whose bytes do not hash to its digest is written whole, then DIGEST_MISMATCH");
    buffer tampered = {malloc(archive.len), archive.len, archive.len, 0};
    CHECK(tampered.data != NULL);
    memcpy(tampered.data, archive.data, archive.len);
    size_t at = 0; /* the block of the layer's file data: "hello" and zeros */
    while (at < tampered.len && memcmp(tampered.data + at, "hello", 6) != 0) at += 512;
    CHECK(at < tampered.len);
    tampered.data[at] = 'j';
    CHECK_OK(ocicas_archive_reader_open(engine, NULL, read_from_buffer, &tampered, &reader));
    buffer written = {0};
    size = 7;
    CHECK_STATUS(ocicas_archive_reader_read_blob(reader, NULL, -1, layer, append_to_buffer, &written, &size),
                 OCICAS_ERR_DIGEST_MISMATCH);
    CHECK_MESSAGE(layer);
    CHECK(written.len == 2048 && memcmp(written.data + 512, "jello", 5) == 0 && size == 7);
    ocicas_archive_reader_free(reader);
    free(written.data);
    free(tampered.data);

    CASE("a writer copies the image blob by blob; the copy imports");
    buffer copy = {0};
    ocicas_archive_writer *writer = NULL;
    CHECK_OK(ocicas_archive_writer_new(OCICAS_ARCHIVE_OCI, append_to_buffer, &copy, &writer));
    bool has = true;
    CHECK_OK(ocicas_archive_writer_has_blob(writer, layer, &has));
    CHECK(!has);
    config_bytes.pos = layer_bytes.pos = 0;
    CHECK_OK(ocicas_archive_writer_put_blob(writer, OCICAS_ARCHIVE_BLOB_CONFIG, config, config_bytes.len,
                                            read_from_buffer, &config_bytes));
    CHECK_OK(ocicas_archive_writer_put_blob(writer, OCICAS_ARCHIVE_BLOB_LAYER, layer, layer_bytes.len,
                                            read_from_buffer, &layer_bytes));
    CHECK_OK(ocicas_archive_writer_has_blob(writer, layer, &has));
    CHECK(has);
    /* Already written: skipped without reading (the callback would fail). */
    CHECK_OK(ocicas_archive_writer_put_blob(writer, OCICAS_ARCHIVE_BLOB_LAYER, layer, layer_bytes.len, fail_read, NULL));
    const char *diff_ids[] = {layer}, *tags[] = {"example/copy:2"};
    CHECK_STATUS(ocicas_archive_writer_add_image(writer, config, (const char *[]){stranger}, 1, tags, 1),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("was not put");
    CHECK_OK(ocicas_archive_writer_add_image(writer, config, diff_ids, 1, tags, 1));
    CHECK_OK(ocicas_archive_writer_commit(writer));
    CHECK_STATUS(ocicas_archive_writer_commit(writer), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_archive_writer_has_blob(writer, layer, &has), OCICAS_ERR_INVALID_ARGUMENT);
    ocicas_archive_writer_free(writer);
    ocicas_imported_images *result = NULL;
    copy.pos = 0;
    CHECK_OK(ocicas_archive_import(engine, NULL, read_from_buffer, &copy, NULL, -1, NULL, NULL, &result));
    CHECK(imported_one_with_refs(result, "example/copy:2"));
    const ocicas_imported_image *copied = ocicas_imported_images_get(result, 0);
    char joined[512];
    CHECK(strcmp(join_list(ocicas_imported_image_repo_tags(copied), joined, sizeof joined), "example/copy:2") == 0);
    CHECK(strcmp(ocicas_descriptor_media_type(ocicas_imported_image_manifest(copied)),
                 "application/vnd.oci.image.manifest.v1+json") == 0);
    CHECK(ocicas_imported_images_get(result, 1) == NULL);
    ocicas_imported_images_free(result);

    CASE("the imported images' accessors take NULL");
    CHECK(ocicas_imported_images_count(NULL) == 0 && ocicas_imported_images_get(NULL, 0) == NULL);
    CHECK(ocicas_imported_image_manifest(NULL) == NULL && ocicas_imported_image_refs(NULL) == NULL);
    CHECK(ocicas_imported_image_repo_tags(NULL) == NULL);
    ocicas_imported_images_free(NULL);

    CASE("writer errors: wrong bytes, wrong size, unknown kind and format, NULLs");
    buffer sink = {0};
    CHECK_OK(ocicas_archive_writer_new(OCICAS_ARCHIVE_LEGACY, append_to_buffer, &sink, &writer));
    config_bytes.pos = 0;
    CHECK_STATUS(ocicas_archive_writer_put_blob(writer, 7, config, config_bytes.len, read_from_buffer, &config_bytes),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("unknown archive blob kind 7");
    CHECK_STATUS(ocicas_archive_writer_put_blob(writer, OCICAS_ARCHIVE_BLOB_CONFIG, config, config_bytes.len, NULL,
                                                NULL), OCICAS_ERR_INVALID_ARGUMENT);
    config_bytes.pos = 0;
    CHECK_STATUS(ocicas_archive_writer_put_blob(writer, OCICAS_ARCHIVE_BLOB_CONFIG, config, config_bytes.len + 1,
                                                read_from_buffer, &config_bytes), OCICAS_ERR_SIZE_MISMATCH);
    config_bytes.pos = 0;
    CHECK_STATUS(ocicas_archive_writer_put_blob(writer, OCICAS_ARCHIVE_BLOB_CONFIG, config, config_bytes.len,
                                                read_from_buffer, &config_bytes), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("failed earlier");
    ocicas_archive_writer_free(writer);
    CHECK_OK(ocicas_archive_writer_new(OCICAS_ARCHIVE_LEGACY, append_to_buffer, &sink, &writer));
    layer_bytes.pos = 0;
    CHECK_STATUS(ocicas_archive_writer_put_blob(writer, OCICAS_ARCHIVE_BLOB_LAYER, config, layer_bytes.len,
                                                read_from_buffer, &layer_bytes), OCICAS_ERR_DIGEST_MISMATCH);
    CHECK_STATUS(ocicas_archive_writer_commit(writer), OCICAS_ERR_INVALID_ARGUMENT);
    ocicas_archive_writer_free(writer);
    CHECK_STATUS(ocicas_archive_writer_new(4, append_to_buffer, &sink, &writer), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_archive_writer_new(OCICAS_ARCHIVE_OCI, NULL, NULL, &writer), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_archive_writer_new(OCICAS_ARCHIVE_OCI, append_to_buffer, &sink, NULL),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_archive_writer_commit(NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_archive_writer_has_blob(NULL, layer, &has), OCICAS_ERR_INVALID_ARGUMENT);
    ocicas_archive_writer_free(NULL);

    free(archive.data);
    free(copy.data);
    free(sink.data);
    free(config_bytes.data);
    free(layer_bytes.data);
    ocicas_engine_close(engine);
    remove_tree(root);
    printf("test_archive_api: all cases passed\n");
    return 0;
}
