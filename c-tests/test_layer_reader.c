/* Layer readers: a stored layer read as its uncompressed tar (gzip, zstd, plain), every status
 * of open and read, NULL arguments, a wrong DiffID and a tampered blob failing only at the end,
 * a blob path planted as a symlink, and a reader outliving its engine. */
#include "test_util.h"

#include <fcntl.h>
#include <sys/stat.h>

#define INPUT_SIZE (1024 * 1024 + 777)

#define OCI_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define OCI_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"

static const char *const SHA256_OF_NOTHING =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* A stored layer: what a manifest and config say of it. */
struct layer {
    char *media_type, *digest, *diff_id;
    uint64_t size;
};

static uint8_t *make_input(void) {
    uint8_t *data = malloc(INPUT_SIZE);
    CHECK(data != NULL);
    uint32_t state = 2121;
    for (size_t i = 0; i < INPUT_SIZE; i++) {
        state = state * 1103515245 + 12345;
        data[i] = (uint8_t)("tar bytes of a layer\n"[(state >> 16) % 21]);
    }
    return data;
}

/* Streams `len` bytes into a stored layer compressed as `compression`. */
static struct layer store_layer(ocicas_engine *engine, uint32_t compression, const uint8_t *data, size_t len) {
    ocicas_layer_options options;
    CHECK_OK(ocicas_layer_options_init(&options, OCICAS_LAYER_OPTIONS_VERSION));
    options.compression = compression;
    ocicas_layer_stream *stream = NULL;
    CHECK_OK(ocicas_layer_stream_new(engine, &options, &stream));
    CHECK_OK(ocicas_layer_stream_write(stream, data, len));
    ocicas_descriptor *finished = NULL;
    char *finished_diff_id = NULL;
    CHECK_OK(ocicas_layer_stream_finish(stream, &finished, &finished_diff_id));
    ocicas_descriptor_free(finished);
    ocicas_string_free(finished_diff_id);
    struct layer layer;
    CHECK_OK(ocicas_layer_stream_media_type(stream, &layer.media_type));
    CHECK_OK(ocicas_layer_stream_digest(stream, &layer.digest));
    CHECK_OK(ocicas_layer_stream_diff_id(stream, &layer.diff_id));
    CHECK_OK(ocicas_layer_stream_size(stream, &layer.size));
    ocicas_layer_stream_free(stream);
    return layer;
}

static void free_layer(struct layer *layer) {
    ocicas_string_free(layer->media_type);
    ocicas_string_free(layer->digest);
    ocicas_string_free(layer->diff_id);
}

static ocicas_layer_reader *open_layer(ocicas_engine *engine, const struct layer *layer) {
    ocicas_layer_reader *reader = NULL;
    CHECK_OK(ocicas_layer_reader_open(engine, layer->media_type, layer->digest, layer->size, layer->diff_id, &reader));
    CHECK(reader != NULL);
    return reader;
}

/* Reads to the end or the first failure, with reads of `chunk` bytes; the bytes read go to
 * `out` (INPUT_SIZE + 1 bytes), their count to *out_len. Returns the status that stopped it. */
static ocicas_status read_all(ocicas_layer_reader *reader, size_t chunk, uint8_t *out, size_t *out_len) {
    uint8_t buf[65536];
    size_t total = 0;
    for (;;) {
        size_t n = 12345;
        ocicas_status status = ocicas_layer_reader_read(reader, buf, chunk, &n);
        if (status != OCICAS_OK) {
            CHECK(n == 12345); /* outputs are written only on success */
            *out_len = total;
            return status;
        }
        if (n == 0) {
            *out_len = total;
            return OCICAS_OK;
        }
        CHECK(total + n <= INPUT_SIZE + 1);
        memcpy(out + total, buf, n);
        total += n;
    }
}

/* Reads the whole layer, which must be exactly `input`, and the end again. */
static void check_reads_back(ocicas_engine *engine, const struct layer *layer, const uint8_t *input, uint8_t *out) {
    ocicas_layer_reader *reader = open_layer(engine, layer);
    size_t len = 0;
    CHECK_OK(read_all(reader, 65536, out, &len));
    CHECK(len == INPUT_SIZE && memcmp(out, input, INPUT_SIZE) == 0);
    uint8_t buf[16];
    size_t n = 99;
    CHECK_OK(ocicas_layer_reader_read(reader, buf, sizeof buf, &n));
    CHECK(n == 0);
    ocicas_layer_reader_free(reader);
}

static void blob_path(const char *layout, const char *digest, char *path, size_t size) {
    snprintf(path, size, "%s/blobs/sha256/%s", layout, digest + strlen("sha256:"));
}

int main(void) {
    char root[4096], layout[4200], path[4400];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);
    uint8_t *input = make_input();
    uint8_t *out = malloc(INPUT_SIZE + 1);
    CHECK(out != NULL);
    size_t len = 0;

    struct layer gzip = store_layer(engine, OCICAS_COMPRESSION_GZIP, input, INPUT_SIZE);
    struct layer zstd = store_layer(engine, OCICAS_COMPRESSION_ZSTD, input, INPUT_SIZE);
    struct layer plain = store_layer(engine, OCICAS_COMPRESSION_NONE, input, INPUT_SIZE);

    CASE("gzip, zstd and plain layers read back as their tar, then the end again");
    check_reads_back(engine, &gzip, input, out);
    check_reads_back(engine, &zstd, input, out);
    check_reads_back(engine, &plain, input, out);

    CASE("NULL arguments are INVALID_ARGUMENT; free(NULL) is a no-op");
    ocicas_layer_reader *reader = NULL;
    CHECK_STATUS(ocicas_layer_reader_open(NULL, gzip.media_type, gzip.digest, gzip.size, gzip.diff_id, &reader),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("engine");
    CHECK_STATUS(ocicas_layer_reader_open(engine, NULL, gzip.digest, gzip.size, gzip.diff_id, &reader),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("media_type");
    CHECK_STATUS(ocicas_layer_reader_open(engine, gzip.media_type, NULL, gzip.size, gzip.diff_id, &reader),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_layer_reader_open(engine, gzip.media_type, gzip.digest, gzip.size, NULL, &reader),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("diff_id");
    CHECK_STATUS(ocicas_layer_reader_open(engine, gzip.media_type, gzip.digest, gzip.size, gzip.diff_id, NULL),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(reader == NULL);
    reader = open_layer(engine, &gzip);
    uint8_t buf[4096];
    size_t n = 0;
    CHECK_STATUS(ocicas_layer_reader_read(NULL, buf, sizeof buf, &n), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_layer_reader_read(reader, NULL, sizeof buf, &n), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_layer_reader_read(reader, buf, sizeof buf, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CASE("a read of 0 bytes (NULL allowed) reads nothing and does not end the layer");
    n = 99;
    CHECK_OK(ocicas_layer_reader_read(reader, NULL, 0, &n));
    CHECK(n == 0);
    CHECK_OK(read_all(reader, sizeof buf, out, &len));
    CHECK(len == INPUT_SIZE && memcmp(out, input, INPUT_SIZE) == 0);
    ocicas_layer_reader_free(reader);
    ocicas_layer_reader_free(NULL);
    reader = NULL;

    CASE("malformed digests are INVALID_ARGUMENT; other media types UNSUPPORTED_MEDIA_TYPE");
    CHECK_STATUS(ocicas_layer_reader_open(engine, gzip.media_type, "sha256:abc", gzip.size, gzip.diff_id, &reader),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_layer_reader_open(engine, gzip.media_type, gzip.digest, gzip.size, "../../etc/passwd", &reader),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_layer_reader_open(engine, "application/vnd.oci.image.config.v1+json", gzip.digest, gzip.size,
                                          gzip.diff_id, &reader),
                 OCICAS_ERR_UNSUPPORTED_MEDIA_TYPE);
    CHECK_STATUS(ocicas_layer_reader_open(engine, "application/vnd.oci.image.layer.v1.tar+bzip2", gzip.digest,
                                          gzip.size, gzip.diff_id, &reader),
                 OCICAS_ERR_UNSUPPORTED_MEDIA_TYPE);
    CHECK(reader == NULL);

    CASE("a blob not stored is NOT_FOUND; another size than the stored one SIZE_MISMATCH");
    CHECK_STATUS(ocicas_layer_reader_open(engine, OCI_GZIP, SHA256_OF_NOTHING, 0, gzip.diff_id, &reader),
                 OCICAS_ERR_NOT_FOUND);
    CHECK_STATUS(ocicas_layer_reader_open(engine, gzip.media_type, gzip.digest, gzip.size + 1, gzip.diff_id, &reader),
                 OCICAS_ERR_SIZE_MISMATCH);
    CHECK_STATUS(ocicas_layer_reader_open(engine, gzip.media_type, gzip.digest, gzip.size - 1, gzip.diff_id, &reader),
                 OCICAS_ERR_SIZE_MISMATCH);
    CHECK(reader == NULL);

    CASE("a wrong DiffID is DIGEST_MISMATCH on the read that reaches the end, and on every read after");
    reader = NULL;
    CHECK_OK(ocicas_layer_reader_open(engine, zstd.media_type, zstd.digest, zstd.size, SHA256_OF_NOTHING, &reader));
    CHECK_STATUS(read_all(reader, sizeof buf, out, &len), OCICAS_ERR_DIGEST_MISMATCH);
    CHECK(len == INPUT_SIZE && memcmp(out, input, INPUT_SIZE) == 0);
    CHECK_MESSAGE("DiffID");
    CHECK_STATUS(ocicas_layer_reader_read(reader, buf, sizeof buf, &n), OCICAS_ERR_DIGEST_MISMATCH);
    ocicas_layer_reader_free(reader);

    CASE("a byte of the stored blob changed is DIGEST_MISMATCH, never the end");
    blob_path(layout, plain.digest, path, sizeof path);
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0);
    CHECK(pwrite(fd, "X", 1, 1000) == 1);
    close(fd);
    reader = open_layer(engine, &plain);
    CHECK_STATUS(read_all(reader, sizeof buf, out, &len), OCICAS_ERR_DIGEST_MISMATCH);
    CHECK_MESSAGE(plain.digest);
    ocicas_layer_reader_free(reader);

    CASE("a blob that is not gzip, stored under its own digest, is INVALID_IMAGE at the read");
    char *not_gzip = NULL;
    CHECK_OK(ocicas_blob_put(engine, input, 4096, &not_gzip));
    reader = NULL;
    CHECK_OK(ocicas_layer_reader_open(engine, OCI_GZIP, not_gzip, 4096, gzip.diff_id, &reader));
    CHECK_STATUS(read_all(reader, sizeof buf, out, &len), OCICAS_ERR_INVALID_IMAGE);
    CHECK_MESSAGE("does not decompress as gzip");
    ocicas_layer_reader_free(reader);
    reader = NULL;
    CHECK_OK(ocicas_layer_reader_open(engine, OCI_ZSTD, not_gzip, 4096, gzip.diff_id, &reader));
    CHECK_STATUS(read_all(reader, sizeof buf, out, &len), OCICAS_ERR_INVALID_IMAGE);
    ocicas_layer_reader_free(reader);
    ocicas_string_free(not_gzip);

    CASE("a reader outlives its engine");
    reader = open_layer(engine, &gzip);
    ocicas_engine_close(engine);
    CHECK_OK(read_all(reader, 1000, out, &len));
    CHECK(len == INPUT_SIZE && memcmp(out, input, INPUT_SIZE) == 0);
    ocicas_layer_reader_free(reader);
    CHECK_OK(ocicas_engine_open(layout, 0, &engine));

    CASE("a blob path planted as a symlink is INVALID_IMAGE at open, not followed");
    blob_path(layout, gzip.digest, path, sizeof path);
    char moved[4500];
    snprintf(moved, sizeof moved, "%s/outside", root);
    CHECK(rename(path, moved) == 0);
    CHECK(symlink(moved, path) == 0);
    reader = NULL;
    CHECK_STATUS(ocicas_layer_reader_open(engine, gzip.media_type, gzip.digest, gzip.size, gzip.diff_id, &reader),
                 OCICAS_ERR_INVALID_IMAGE);
    CHECK(reader == NULL);

    free_layer(&gzip);
    free_layer(&zstd);
    free_layer(&plain);
    ocicas_engine_close(engine);
    free(input);
    free(out);
    remove_tree(root);
    printf("ok\n");
    return 0;
}
