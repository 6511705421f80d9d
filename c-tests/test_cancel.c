/* Cancellation through the C API: ocicas_cancel and its NULL paths; GC, layer streams, archive
 * import and export cancelled before they start, from a callback mid-way, and (GC) from
 * another thread while it runs. A cancelled operation is OCICAS_ERR_CANCELLED, stores no
 * partial blob and leaves the store sound. (Push and pull: test_registry.c.) */
#include "test_util.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>

static char layout[4200];

static int count_cb(const char *item, void *user_data) {
    (void)item;
    (*(int *)user_data)++;
    return 0;
}

static int blob_count(ocicas_engine *engine) {
    int n = 0;
    CHECK_OK(ocicas_blob_list(engine, count_cb, &n));
    return n;
}

static int count_ingests(const ocicas_ingest_status *status, void *user_data) {
    (void)status;
    (*(int *)user_data)++;
    return 0;
}

static int ingest_count(ocicas_engine *engine) {
    int n = 0;
    CHECK_OK(ocicas_ingest_list(engine, NULL, 0, count_ingests, &n));
    return n;
}

/* Input of `len` xorshift64 bytes (gzip cannot shrink them); requests `cancel` once
 * `cancel_at` bytes were given. */
struct input {
    size_t len, pos, cancel_at;
    const ocicas_cancel *cancel;
    uint64_t state;
};

static int64_t read_input(uint8_t *buf, size_t len, void *user_data) {
    struct input *input = user_data;
    if (input->pos >= input->cancel_at) CHECK_OK(ocicas_cancel_request(input->cancel));
    size_t n = input->len - input->pos;
    if (n > len) n = len;
    for (size_t i = 0; i < n; i++) {
        input->state ^= input->state << 13;
        input->state ^= input->state >> 7;
        input->state ^= input->state << 17;
        buf[i] = (uint8_t)input->state;
    }
    input->pos += n;
    return (int64_t)n;
}

/* An archive written to memory. */
struct buffer {
    uint8_t *data;
    size_t len, pos;
    size_t cancel_at;
    const ocicas_cancel *cancel;
};

static int append(const uint8_t *data, size_t len, void *user_data) {
    struct buffer *buffer = user_data;
    buffer->data = realloc(buffer->data, buffer->len + len);
    CHECK(buffer->data != NULL);
    memcpy(buffer->data + buffer->len, data, len);
    buffer->len += len;
    if (buffer->cancel != NULL && buffer->len >= buffer->cancel_at) CHECK_OK(ocicas_cancel_request(buffer->cancel));
    return 0;
}

static int64_t read_buffer(uint8_t *buf, size_t len, void *user_data) {
    struct buffer *buffer = user_data;
    if (buffer->cancel != NULL && buffer->pos >= buffer->cancel_at) CHECK_OK(ocicas_cancel_request(buffer->cancel));
    size_t n = buffer->len - buffer->pos;
    if (n > len) n = len;
    memcpy(buf, buffer->data + buffer->pos, n);
    buffer->pos += n;
    return (int64_t)n;
}

/* Holds the store lock shared (as a commit does), so that a GC cannot sweep, until it has
 * requested the flag from this thread while the GC runs on the main one. */
struct requester {
    int lock_fd;
    const ocicas_cancel *cancel;
};

static void *request_while_locked(void *argument) {
    struct requester *requester = argument;
    struct timespec moment = {0, 100 * 1000 * 1000};
    nanosleep(&moment, NULL);
    CHECK_OK(ocicas_cancel_request(requester->cancel));
    CHECK(flock(requester->lock_fd, LOCK_UN) == 0);
    return NULL;
}

int main(void) {
    char root[4096];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);
    ocicas_gc_report *report = NULL;
    ocicas_cancel *cancel = NULL;

    CASE("NULL arguments: new and request refuse them, free ignores them");
    CHECK_STATUS(ocicas_cancel_new(NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_cancel_request(NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("cancel");
    ocicas_cancel_free(NULL);
    ocicas_gc_options gc;
    CHECK_OK(ocicas_gc_options_init(&gc, OCICAS_GC_OPTIONS_VERSION));
    CHECK(gc.cancel == NULL);
    ocicas_layer_options layer_options;
    CHECK_OK(ocicas_layer_options_init(&layer_options, OCICAS_LAYER_OPTIONS_VERSION));
    CHECK(layer_options.cancel == NULL);
    ocicas_registry_options registry_options;
    CHECK_OK(ocicas_registry_options_init(&registry_options, OCICAS_REGISTRY_OPTIONS_VERSION));
    CHECK(registry_options.cancel == NULL);

    CASE("GC cancelled before it starts removes nothing; requesting twice is fine");
    tag_hello_image(engine, "kept");
    char *digest = NULL;
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)"garbage", 7, &digest));
    ocicas_string_free(digest);
    age_blobs(engine, layout);
    int blobs = blob_count(engine);
    CHECK_OK(ocicas_cancel_new(&cancel));
    CHECK_OK(ocicas_cancel_request(cancel));
    CHECK_OK(ocicas_cancel_request(cancel));
    gc.cancel = cancel;
    CHECK_STATUS(ocicas_gc_run(engine, &gc, &report), OCICAS_ERR_CANCELLED);
    CHECK_MESSAGE("GC cancelled");
    CHECK(blob_count(engine) == blobs);
    ocicas_cancel_free(cancel);

    CASE("GC cancelled from another thread while it runs: CANCELLED, nothing removed, the store sound");
    for (int i = 0; i < 200; i++) {
        char text[32];
        snprintf(text, sizeof text, "garbage %d", i);
        CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)text, strlen(text), &digest));
        ocicas_string_free(digest);
    }
    age_blobs(engine, layout);
    blobs = blob_count(engine);
    CHECK_OK(ocicas_cancel_new(&cancel));
    char lock_path[4300];
    snprintf(lock_path, sizeof lock_path, "%s/.ocicas/lock", layout);
    struct requester requester = {open(lock_path, O_RDONLY), cancel};
    CHECK(requester.lock_fd >= 0 && flock(requester.lock_fd, LOCK_SH) == 0);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, request_while_locked, &requester) == 0);
    gc.cancel = cancel;
    CHECK_STATUS(ocicas_gc_run(engine, &gc, &report), OCICAS_ERR_CANCELLED);
    CHECK(pthread_join(thread, NULL) == 0);
    close(requester.lock_fd);
    ocicas_cancel_free(cancel);
    CHECK(blob_count(engine) == blobs);
    CHECK(fsck_is_sound(engine));
    ocicas_descriptor *descriptor = NULL;
    CHECK_OK(ocicas_ref_get(engine, "kept", &descriptor));
    ocicas_descriptor_free(descriptor);
    gc.cancel = NULL;
    CHECK_OK(ocicas_gc_run(engine, &gc, &report));
    CHECK(ocicas_gc_report_blobs_kept(report) == 3);
    ocicas_gc_report_free(report);
    CHECK(blob_count(engine) == 3);

    CASE("a pull-mode layer whose read callback requests the cancel: CANCELLED, nothing computed");
    CHECK_OK(ocicas_cancel_new(&cancel));
    layer_options.cancel = cancel;
    struct input input = {8 << 20, 0, 1 << 20, cancel, 88172645463325252u};
    ocicas_layer_stream *stream = NULL;
    CHECK_OK(ocicas_layer_stream_from_reader(read_input, &input, &layer_options, &stream));
    static uint8_t out[64 << 10];
    size_t n = 0;
    ocicas_status status;
    while ((status = ocicas_layer_stream_read(stream, out, sizeof out, &n)) == OCICAS_OK) CHECK(n > 0);
    CHECK_STATUS(status, OCICAS_ERR_CANCELLED);
    CHECK(input.pos < input.len);
    CHECK_STATUS(ocicas_layer_stream_read(stream, out, sizeof out, &n), OCICAS_ERR_CANCELLED);
    char *text = NULL;
    CHECK_STATUS(ocicas_layer_stream_digest(stream, &text), OCICAS_ERR_NOT_COMPUTED);
    ocicas_layer_stream_free(stream);
    ocicas_cancel_free(cancel);
    ocicas_descriptor *finished = NULL;

    CASE("a push-mode layer cancelled between writes: write and finish are CANCELLED, nothing stored");
    CHECK_OK(ocicas_cancel_new(&cancel));
    layer_options.cancel = cancel;
    CHECK_OK(ocicas_layer_stream_new(engine, &layer_options, &stream));
    CHECK_OK(ocicas_layer_stream_write(stream, out, sizeof out));
    CHECK_OK(ocicas_cancel_request(cancel));
    CHECK_STATUS(ocicas_layer_stream_write(stream, out, sizeof out), OCICAS_ERR_CANCELLED);
    CHECK_STATUS(ocicas_layer_stream_finish(stream, &finished, &text), OCICAS_ERR_CANCELLED);
    ocicas_layer_stream_free(stream);
    CHECK(ingest_count(engine) == 0 && blob_count(engine) == 3);
    ocicas_cancel_free(cancel);

    CASE("a push-mode layer whose finish was cancelled: later writes and finishes are CANCELLED too");
    CHECK_OK(ocicas_cancel_new(&cancel));
    layer_options.cancel = cancel;
    CHECK_OK(ocicas_layer_stream_new(engine, &layer_options, &stream));
    CHECK_OK(ocicas_layer_stream_write(stream, out, sizeof out));
    CHECK_OK(ocicas_cancel_request(cancel));
    CHECK_STATUS(ocicas_layer_stream_finish(stream, &finished, &text), OCICAS_ERR_CANCELLED);
    CHECK_STATUS(ocicas_layer_stream_write(stream, out, sizeof out), OCICAS_ERR_CANCELLED);
    CHECK_STATUS(ocicas_layer_stream_finish(stream, &finished, &text), OCICAS_ERR_CANCELLED);
    CHECK_STATUS(ocicas_layer_stream_digest(stream, &text), OCICAS_ERR_NOT_COMPUTED);
    ocicas_layer_stream_free(stream);
    CHECK(ingest_count(engine) == 0 && blob_count(engine) == 3);
    ocicas_cancel_free(cancel);

    CASE("a cancel requested after a finish changes nothing: the layer stays committed and known");
    CHECK_OK(ocicas_cancel_new(&cancel));
    layer_options.cancel = cancel;
    CHECK_OK(ocicas_layer_stream_new(engine, &layer_options, &stream));
    CHECK_OK(ocicas_layer_stream_write(stream, out, sizeof out));
    CHECK_OK(ocicas_layer_stream_finish(stream, &finished, &text));
    ocicas_descriptor_free(finished);
    ocicas_string_free(text);
    CHECK_OK(ocicas_cancel_request(cancel));
    CHECK_OK(ocicas_layer_stream_digest(stream, &text));
    ocicas_string_free(text);
    CHECK_STATUS(ocicas_layer_stream_write(stream, out, sizeof out), OCICAS_ERR_INVALID_ARGUMENT);
    ocicas_layer_stream_free(stream);
    CHECK(ingest_count(engine) == 0 && blob_count(engine) == 4);
    ocicas_cancel_free(cancel);

    CASE("a flag freed while a layer stream made with it lives: the stream goes on, uncancellable");
    CHECK_OK(ocicas_cancel_new(&cancel));
    layer_options.cancel = cancel;
    CHECK_OK(ocicas_layer_stream_new(engine, &layer_options, &stream));
    ocicas_cancel_free(cancel);
    layer_options.cancel = NULL;
    CHECK_OK(ocicas_layer_stream_write(stream, out, sizeof out));
    CHECK_OK(ocicas_layer_stream_write(stream, out, sizeof out));
    CHECK_OK(ocicas_layer_stream_finish(stream, &finished, &text));
    ocicas_descriptor_free(finished);
    ocicas_string_free(text);
    ocicas_layer_stream_free(stream);
    CHECK(ingest_count(engine) == 0 && blob_count(engine) == 5);

    CASE("export: a write callback that requests the cancel stops it, CANCELLED");
    /* An image of a 4 MiB layer, so the archive is written in many chunks. */
    uint8_t *big = malloc(4 << 20);
    CHECK(big != NULL);
    struct input fill = {4 << 20, 0, SIZE_MAX, NULL, 88172645463325252u};
    CHECK(read_input(big, 4 << 20, &fill) == 4 << 20);
    tag_image(engine, "app:v1", big, 4 << 20);
    free(big);
    const char *refs[] = {"app:v1"};
    CHECK_OK(ocicas_cancel_new(&cancel));
    struct buffer cut = {NULL, 0, 0, 1 << 20, cancel};
    CHECK_STATUS(ocicas_archive_export(engine, refs, NULL, 1, OCICAS_ARCHIVE_LEGACY, append, &cut, cancel),
                 OCICAS_ERR_CANCELLED);
    CHECK_MESSAGE("export cancelled");
    free(cut.data);
    ocicas_cancel_free(cancel);
    struct buffer archive = {NULL, 0, 0, 0, NULL};
    CHECK_OK(ocicas_archive_export(engine, refs, NULL, 1, OCICAS_ARCHIVE_LEGACY, append, &archive, NULL));

    CASE("import: cancelled before, or by its read callback mid-way: CANCELLED, nothing stored or tagged");
    char other_root[4096], other_layout[4200];
    ocicas_engine *other = new_layout(other_root, sizeof other_root, other_layout, sizeof other_layout);
    CHECK_OK(ocicas_cancel_new(&cancel));
    archive.cancel = cancel;
    archive.cancel_at = archive.len / 2;
    ocicas_imported_images *result = NULL;
    CHECK_STATUS(ocicas_archive_import(other, NULL, read_buffer, &archive, NULL, -1, NULL, cancel, &result),
                 OCICAS_ERR_CANCELLED);
    CHECK_MESSAGE("import cancelled");
    CHECK(archive.pos < archive.len);
    CHECK(blob_count(other) == 0 && ingest_count(other) == 0);
    CHECK_STATUS(ocicas_ref_get(other, "app:v1", &descriptor), OCICAS_ERR_NOT_FOUND);
    char path[4300];
    snprintf(path, sizeof path, "%s/app.tar", other_root);
    FILE *file = fopen(path, "wb");
    CHECK(file != NULL && fwrite(archive.data, 1, archive.len, file) == archive.len);
    fclose(file);
    CHECK_STATUS(ocicas_archive_import(other, path, NULL, NULL, NULL, -1, NULL, cancel, &result),
                 OCICAS_ERR_CANCELLED);
    CHECK(blob_count(other) == 0 && ingest_count(other) == 0);
    CHECK(fsck_is_sound(other));
    ocicas_cancel_free(cancel);
    CHECK_OK(ocicas_archive_import(other, path, NULL, NULL, NULL, -1, NULL, NULL, &result));
    ocicas_imported_images_free(result);
    free(archive.data);

    ocicas_engine_close(other);
    ocicas_engine_close(engine);
    remove_tree(other_root);
    remove_tree(root);
    printf("ok\n");
    return 0;
}
