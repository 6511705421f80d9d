/* Streaming layers: push and pull, every state error, a failing input callback, append. */
#include "test_util.h"

#define INPUT_SIZE (3 * 1024 * 1024 + 123)

struct source {
    const uint8_t *data;
    size_t len, pos;
    size_t fail_at; /* 0: never fail */
};

static int64_t read_source(uint8_t *buf, size_t len, void *user_data) {
    struct source *s = user_data;
    if (s->fail_at && s->pos >= s->fail_at) return -1;
    size_t n = s->len - s->pos < len ? s->len - s->pos : len;
    if (n > 4096) n = 4096;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (int64_t)n;
}

static int count_ingests(const ocicas_ingest_status *status, void *user_data) {
    (void)status;
    (*(int *)user_data)++;
    return 0;
}

static uint8_t *make_input(void) {
    uint8_t *data = malloc(INPUT_SIZE);
    CHECK(data != NULL);
    uint32_t state = 12345;
    for (size_t i = 0; i < INPUT_SIZE; i++) {
        state = state * 1103515245 + 12345;
        data[i] = (uint8_t)("layer tar data "[(state >> 16) % 15]);
    }
    return data;
}

int main(void) {
    char root[4096], layout[4200];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);
    uint8_t *input = make_input();
    char *text = NULL;
    uint64_t size = 0;

    CASE("options init and bad options");
    ocicas_layer_options options;
    CHECK_OK(ocicas_layer_options_init(&options, OCICAS_LAYER_OPTIONS_VERSION));
    CHECK(options.compression == OCICAS_COMPRESSION_GZIP && options.level == OCICAS_LEVEL_DEFAULT);
    ocicas_layer_stream *stream = NULL;
    options.level = 10;
    CHECK_STATUS(ocicas_layer_stream_new(engine, &options, &stream), OCICAS_ERR_INVALID_ARGUMENT);
    options.compression = OCICAS_COMPRESSION_ZSTD;
    options.level = 0;
    CHECK_STATUS(ocicas_layer_stream_new(engine, &options, &stream), OCICAS_ERR_INVALID_ARGUMENT);
    options.docker_media_types = true;
    options.level = OCICAS_LEVEL_DEFAULT;
    CHECK_STATUS(ocicas_layer_stream_new(engine, &options, &stream), OCICAS_ERR_INVALID_ARGUMENT);
    options.compression = 7;
    CHECK_STATUS(ocicas_layer_stream_new(engine, &options, &stream), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_layer_stream_new(NULL, NULL, &stream), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("more threads than OCICAS_LIMIT_THREADS is INVALID_ARGUMENT naming the limit, in both modes");
    CHECK_OK(ocicas_layer_options_init(&options, OCICAS_LAYER_OPTIONS_VERSION));
    options.threads = 5000;
    CHECK_STATUS(ocicas_layer_stream_new(engine, &options, &stream), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("thread limit (threads)");
    struct source none = {input, 0, 0, 0};
    CHECK_STATUS(ocicas_layer_stream_from_reader(read_source, &none, &options, &stream), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("thread limit (threads)");
    uint64_t thread_limit = 0;
    CHECK_OK(ocicas_engine_get_limit(engine, OCICAS_LIMIT_THREADS, &thread_limit));
    options.threads = (uint32_t)thread_limit + 1;
    CHECK_STATUS(ocicas_layer_stream_new(engine, &options, &stream), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_OK(ocicas_engine_set_limit(engine, OCICAS_LIMIT_THREADS, thread_limit + 1));
    CHECK_OK(ocicas_layer_stream_new(engine, &options, &stream));
    ocicas_layer_stream_free(stream);
    stream = NULL;

    CASE("push: NOT_COMPUTED until finished, then the committed layer");
    CHECK_OK(ocicas_layer_stream_new(engine, NULL, &stream));
    for (size_t off = 0; off < INPUT_SIZE; off += 65536) {
        size_t n = INPUT_SIZE - off < 65536 ? INPUT_SIZE - off : 65536;
        CHECK_OK(ocicas_layer_stream_write(stream, input + off, n));
    }
    CHECK_STATUS(ocicas_layer_stream_digest(stream, &text), OCICAS_ERR_NOT_COMPUTED);
    CHECK_STATUS(ocicas_layer_stream_size(stream, &size), OCICAS_ERR_NOT_COMPUTED);
    uint8_t buf[65536];
    size_t n = 0;
    CHECK_STATUS(ocicas_layer_stream_read(stream, buf, sizeof buf, &n), OCICAS_ERR_INVALID_ARGUMENT);
    ocicas_descriptor *layer = NULL, *again = NULL;
    char *layer_diff_id = NULL;
    CHECK_STATUS(ocicas_layer_stream_finish(stream, NULL, &layer_diff_id), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_layer_stream_finish(stream, &layer, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_layer_stream_finish(NULL, &layer, &layer_diff_id), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_OK(ocicas_layer_stream_finish(stream, &layer, &layer_diff_id));
    CHECK(strcmp(ocicas_descriptor_media_type(layer), "application/vnd.oci.image.layer.v1.tar+gzip") == 0);
    CHECK_STATUS(ocicas_layer_stream_write(stream, input, 1), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_layer_stream_finish(stream, &again, &text), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(again == NULL);
    char *digest = NULL, *diff_id = NULL;
    CHECK_OK(ocicas_layer_stream_digest(stream, &digest));
    CHECK_OK(ocicas_layer_stream_diff_id(stream, &diff_id));
    CHECK_OK(ocicas_layer_stream_size(stream, &size));
    /* finish gives what the stream's accessors give. */
    CHECK(strcmp(ocicas_descriptor_digest(layer), digest) == 0 && strcmp(layer_diff_id, diff_id) == 0);
    CHECK(ocicas_descriptor_size(layer) == size);
    uint64_t stored = 0;
    CHECK_OK(ocicas_blob_size(engine, digest, &stored));
    CHECK(stored == size && size < INPUT_SIZE);
    ocicas_layer_stream_free(stream);

    CASE("pull: same bytes as push, NOT_COMPUTED until read to the end, then CONSUMED");
    struct source src = {input, INPUT_SIZE, 0, 0};
    CHECK_OK(ocicas_layer_stream_from_reader(read_source, &src, NULL, &stream));
    CHECK_STATUS(ocicas_layer_stream_write(stream, input, 1), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_layer_stream_finish(stream, &again, &text), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_OK(ocicas_layer_stream_read(stream, buf, 100, &n));
    CHECK(n > 0);
    CHECK_STATUS(ocicas_layer_stream_diff_id(stream, &text), OCICAS_ERR_NOT_COMPUTED);
    uint64_t total = n;
    do {
        CHECK_OK(ocicas_layer_stream_read(stream, buf, sizeof buf, &n));
        total += n;
    } while (n > 0);
    CHECK_STATUS(ocicas_layer_stream_read(stream, buf, sizeof buf, &n), OCICAS_ERR_CONSUMED);
    char *pull_digest = NULL, *pull_diff = NULL;
    CHECK_OK(ocicas_layer_stream_digest(stream, &pull_digest));
    CHECK_OK(ocicas_layer_stream_diff_id(stream, &pull_diff));
    CHECK_OK(ocicas_layer_stream_size(stream, &size));
    CHECK(size == total);
    if (strcmp(pull_digest, digest) != 0) fprintf(stderr, "push %s (%s) pull %s (%s) size %llu\n", digest, diff_id, pull_digest, pull_diff, (unsigned long long)size);
    CHECK(strcmp(pull_digest, digest) == 0 && strcmp(pull_diff, diff_id) == 0);
    ocicas_string_free(pull_digest);
    ocicas_string_free(pull_diff);
    ocicas_layer_stream_free(stream);

    CASE("pull: an input callback that fails midway leaves nothing computed");
    struct source failing = {input, INPUT_SIZE, 0, 100000};
    CHECK_OK(ocicas_layer_stream_from_reader(read_source, &failing, NULL, &stream));
    ocicas_status status;
    do {
        status = ocicas_layer_stream_read(stream, buf, sizeof buf, &n);
    } while (status == OCICAS_OK && n > 0);
    CHECK(status == OCICAS_ERR_IO);
    CHECK_MESSAGE("callback");
    CHECK_STATUS(ocicas_layer_stream_digest(stream, &text), OCICAS_ERR_NOT_COMPUTED);
    ocicas_layer_stream_free(stream);
    CHECK_STATUS(ocicas_layer_stream_from_reader(NULL, NULL, NULL, &stream), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("pull: the media type is known at once; ref_name and lease are refused (nothing is stored)");
    CHECK_OK(ocicas_layer_options_init(&options, OCICAS_LAYER_OPTIONS_VERSION));
    options.compression = OCICAS_COMPRESSION_ZSTD;
    struct source unread = {input, INPUT_SIZE, 0, 0};
    CHECK_OK(ocicas_layer_stream_from_reader(read_source, &unread, &options, &stream));
    CHECK_OK(ocicas_layer_stream_media_type(stream, &text));
    CHECK(strcmp(text, "application/vnd.oci.image.layer.v1.tar+zstd") == 0);
    ocicas_string_free(text);
    CHECK_STATUS(ocicas_layer_stream_media_type(stream, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_layer_stream_media_type(NULL, &text), OCICAS_ERR_INVALID_ARGUMENT);
    ocicas_layer_stream_free(stream);
    options.lease = "some-lease";
    stream = NULL;
    CHECK_STATUS(ocicas_layer_stream_from_reader(read_source, &unread, &options, &stream), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("push mode");
    CHECK(stream == NULL);
    options.lease = NULL;
    options.ref_name = "some-ref";
    CHECK_STATUS(ocicas_layer_stream_from_reader(read_source, &unread, &options, &stream), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("zstd and uncompressed layers");
    CHECK_OK(ocicas_layer_options_init(&options, OCICAS_LAYER_OPTIONS_VERSION));
    options.compression = OCICAS_COMPRESSION_ZSTD;
    options.threads = 2;
    CHECK_OK(ocicas_layer_stream_new(engine, &options, &stream));
    CHECK_OK(ocicas_layer_stream_write(stream, input, INPUT_SIZE));
    CHECK_OK(ocicas_layer_stream_finish(stream, &again, &text));
    CHECK(strstr(ocicas_descriptor_media_type(again), "+zstd") != NULL);
    ocicas_descriptor_free(again);
    ocicas_string_free(text);
    ocicas_layer_stream_free(stream);
    options.compression = OCICAS_COMPRESSION_NONE;
    options.docker_media_types = true;
    CHECK_OK(ocicas_layer_stream_new(engine, &options, &stream));
    CHECK_OK(ocicas_layer_stream_media_type(stream, &text));
    CHECK(strcmp(text, "application/vnd.docker.image.rootfs.diff.tar") == 0);
    ocicas_string_free(text);
    CHECK_OK(ocicas_layer_stream_write(stream, input, 1000));
    CHECK_OK(ocicas_layer_stream_finish(stream, &again, &text));
    CHECK(strcmp(ocicas_descriptor_media_type(again), "application/vnd.docker.image.rootfs.diff.tar") == 0);
    CHECK(ocicas_descriptor_size(again) == 1000);
    ocicas_descriptor_free(again);
    ocicas_string_free(text);
    ocicas_layer_stream_free(stream);

    CASE("freeing an unfinished push stream aborts its ingest");
    CHECK_OK(ocicas_layer_stream_new(engine, NULL, &stream));
    CHECK_OK(ocicas_layer_stream_write(stream, input, 5000));
    ocicas_layer_stream_free(stream);
    int ingests = 0;
    CHECK_OK(ocicas_ingest_list(engine, NULL, 0, count_ingests, &ingests));
    CHECK(ingests == 0);

    CASE("append creates an image, then grows it");
    ocicas_descriptor *manifest = NULL, *tagged = NULL;
    CHECK_OK(ocicas_image_append(engine, "app", layer, layer_diff_id, &manifest));
    CHECK(strcmp(ocicas_descriptor_media_type(manifest), "application/vnd.oci.image.manifest.v1+json") == 0);
    ocicas_descriptor_free(manifest);
    CHECK_OK(ocicas_image_append(engine, "app", layer, layer_diff_id, &manifest));
    CHECK_OK(ocicas_ref_get(engine, "app", &tagged));
    CHECK(strcmp(ocicas_descriptor_digest(manifest), ocicas_descriptor_digest(tagged)) == 0);
    ocicas_image *app = NULL;
    CHECK_OK(ocicas_image_resolve(engine, "app", NULL, &app));
    CHECK(ocicas_image_layer_count(app) == 2 && strcmp(ocicas_string_list_get(ocicas_config_diff_ids(ocicas_image_parsed_config(app)), 1), layer_diff_id) == 0);
    ocicas_image_free(app);
    ocicas_descriptor_free(tagged);
    ocicas_descriptor_free(manifest);
    manifest = NULL;
    CHECK(fsck_is_sound(engine));

    CASE("append: bad arguments are INVALID_ARGUMENT, an absent layer NOT_FOUND; nothing is tagged");
    CHECK_STATUS(ocicas_image_append(engine, "bad name", layer, layer_diff_id, &manifest), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_image_append(engine, "other", layer, "sha256:abc", &manifest), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_image_append(NULL, "other", layer, layer_diff_id, &manifest), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_image_append(engine, NULL, layer, layer_diff_id, &manifest), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_image_append(engine, "other", NULL, layer_diff_id, &manifest), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_image_append(engine, "other", layer, NULL, &manifest), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_image_append(engine, "other", layer, layer_diff_id, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    ocicas_descriptor *absent = NULL;
    CHECK_OK(ocicas_descriptor_new("application/vnd.oci.image.layer.v1.tar+gzip",
                                   "sha256:0000000000000000000000000000000000000000000000000000000000000000", 10, &absent));
    CHECK_STATUS(ocicas_image_append(engine, "other", absent, layer_diff_id, &manifest), OCICAS_ERR_NOT_FOUND);
    ocicas_descriptor_free(absent);
    CHECK(manifest == NULL);
    CHECK_STATUS(ocicas_ref_get(engine, "other", &tagged), OCICAS_ERR_NOT_FOUND);

    ocicas_descriptor_free(layer);
    ocicas_string_free(layer_diff_id);
    ocicas_string_free(digest);
    ocicas_string_free(diff_id);
    free(input);
    ocicas_engine_close(engine);
    remove_tree(root);
    printf("test_stream: all cases passed\n");
    return 0;
}
