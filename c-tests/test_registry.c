/* Push, pull and push-layer through the C API, against loopback docker-registry instances that
 * the `registry` ctest fixture starts (c-tests/registry.sh): every status path of
 * ocicas_registry_*, progress callbacks, Basic auth, and the deadlines of the registry limits. */
#include "test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

static char registry[256], auth_registry[256];

/* Reads the "127.0.0.1:PORT" the fixture wrote to OCICAS_TEST_REGISTRY_DIR/name. */
static void read_host(const char *name, char *host, size_t size) {
    const char *dir = getenv("OCICAS_TEST_REGISTRY_DIR");
    CHECK(dir != NULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL && errno == ENOENT) {
        printf("skipped: no registry was started (%s is missing; see registry_start)\n", path);
        exit(77);
    }
    CHECK(f != NULL);
    CHECK(fgets(host, (int)size, f) != NULL);
    fclose(f);
    host[strcspn(host, "\n")] = '\0';
}

/* Counts progress calls and those that completed a blob (done == total). */
struct progress_count {
    int calls, completed, unknown_total;
};

static void count_progress(const char *digest, uint64_t done, uint64_t total, void *user_data) {
    struct progress_count *count = user_data;
    count->calls++;
    if (total == OCICAS_PROGRESS_TOTAL_UNKNOWN) {
        count->unknown_total++;
    } else if (done == total && digest != NULL && strncmp(digest, "sha256:", 7) == 0) {
        count->completed++;
    }
}

/* A loopback socket that listens and never accepts: connections complete in the kernel's backlog,
 * and no answer ever comes. Writes "127.0.0.1:PORT" to `host`; returns the socket to close. */
static int silent_listener(char *host, size_t size) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&address, sizeof address) == 0);
    CHECK(listen(fd, 8) == 0);
    socklen_t length = sizeof address;
    CHECK(getsockname(fd, (struct sockaddr *)&address, &length) == 0);
    snprintf(host, size, "127.0.0.1:%d", ntohs(address.sin_port));
    return fd;
}

/* A read callback over a fixed buffer; fails with -1 once `fail_at` bytes were given. */
struct source {
    const uint8_t *data;
    size_t len, pos, fail_at;
};

static int64_t read_source(uint8_t *buf, size_t len, void *user_data) {
    struct source *source = user_data;
    if (source->pos >= source->fail_at) return -1;
    size_t n = source->len - source->pos;
    if (n > len) n = len;
    memcpy(buf, source->data + source->pos, n);
    source->pos += n;
    return (int64_t)n;
}

/* A progress callback that requests `cancel` once a blob has moved past `after` bytes. */
struct cancel_at {
    const ocicas_cancel *cancel;
    uint64_t after;
    int requested;
};

static void cancel_mid_blob(const char *digest, uint64_t done, uint64_t total, void *user_data) {
    (void)digest;
    struct cancel_at *at = user_data;
    if (done >= at->after && total != OCICAS_PROGRESS_TOTAL_UNKNOWN && done < total) {
        CHECK_OK(ocicas_cancel_request(at->cancel));
        at->requested = 1;
    }
}

static int count_blob(const char *digest, void *user_data) {
    (void)digest;
    (*(int *)user_data)++;
    return 0;
}

int main(void) {
    read_host("host", registry, sizeof registry);
    read_host("auth_host", auth_registry, sizeof auth_registry);
    /* No Docker config credentials from the machine running the tests. */
    char root[4096], layout[4200], empty_config[4300];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);
    snprintf(empty_config, sizeof empty_config, "%s/docker-config", root);
    CHECK(setenv("DOCKER_CONFIG", empty_config, 1) == 0);
    tag_hello_image(engine, "hello");
    char target[512];
    ocicas_transfer_report *report = NULL;
    ocicas_registry_options options;
    CHECK_OK(ocicas_registry_options_init(&options, OCICAS_REGISTRY_OPTIONS_VERSION));
    options.insecure = true;

    CASE("options_init gives the defaults");
    ocicas_registry_options defaults;
    CHECK_OK(ocicas_registry_options_init(&defaults, OCICAS_REGISTRY_OPTIONS_VERSION));
    CHECK(!defaults.insecure && defaults.jobs == 0 && defaults.chunk_size == 0 && defaults.username == NULL);

    CASE("push, then a second push transfers nothing");
    struct progress_count pushed = {0};
    options.progress = count_progress;
    options.progress_user_data = &pushed;
    snprintf(target, sizeof target, "%s/c%d/hello:v1", registry, (int)getpid());
    CHECK_OK(ocicas_registry_push(engine, "hello", target, &options, &report));
    CHECK(ocicas_transfer_report_transferred(report) == 3 && ocicas_transfer_report_skipped(report) == 0);
    CHECK(ocicas_transfer_report_bytes(report) > 0 && ocicas_transfer_report_mounted(report) == 0);
    ocicas_descriptor *hello = NULL;
    CHECK_OK(ocicas_ref_get(engine, "hello", &hello));
    const ocicas_descriptor *pushed_image = ocicas_transfer_report_descriptor(report);
    CHECK(strcmp(ocicas_descriptor_digest(pushed_image), ocicas_descriptor_digest(hello)) == 0);
    CHECK(ocicas_descriptor_size(pushed_image) == ocicas_descriptor_size(hello));
    CHECK(strcmp(ocicas_descriptor_media_type(pushed_image), ocicas_descriptor_media_type(hello)) == 0);
    ocicas_descriptor_free(hello);
    ocicas_transfer_report_free(report);
    CHECK(pushed.completed == 2); /* config and layer */
    CHECK_OK(ocicas_registry_push(engine, "hello", target, &options, &report));
    CHECK(ocicas_transfer_report_transferred(report) == 0 && ocicas_transfer_report_skipped(report) == 3);
    CHECK(ocicas_transfer_report_bytes(report) == 0);
    ocicas_transfer_report_free(report);

    CASE("the transfer report's accessors take NULL");
    CHECK(ocicas_transfer_report_descriptor(NULL) == NULL && ocicas_transfer_report_transferred(NULL) == 0);
    CHECK(ocicas_transfer_report_bytes(NULL) == 0 && ocicas_transfer_report_skipped(NULL) == 0);
    CHECK(ocicas_transfer_report_mounted(NULL) == 0);
    ocicas_transfer_report_free(NULL);
    options.progress = NULL;

    CASE("pull into another layout, then a second pull fetches no blob");
    char root2[4096], layout2[4200];
    ocicas_engine *other = new_layout(root2, sizeof root2, layout2, sizeof layout2);
    CHECK_OK(ocicas_registry_pull(other, target, NULL, &options, &report));
    CHECK(ocicas_transfer_report_transferred(report) == 3 && ocicas_transfer_report_bytes(report) > 0);
    ocicas_descriptor *pulled = NULL, *original = NULL;
    CHECK_OK(ocicas_ref_get(other, "v1", &pulled));
    CHECK_OK(ocicas_ref_get(engine, "hello", &original));
    CHECK(strcmp(ocicas_descriptor_digest(pulled), ocicas_descriptor_digest(original)) == 0);
    CHECK(strcmp(ocicas_descriptor_digest(ocicas_transfer_report_descriptor(report)), ocicas_descriptor_digest(pulled)) == 0);
    ocicas_transfer_report_free(report);
    ocicas_descriptor_free(pulled);
    ocicas_descriptor_free(original);
    CHECK_OK(ocicas_registry_pull(other, target, "again", &options, &report));
    CHECK(ocicas_transfer_report_bytes(report) == 0 && ocicas_transfer_report_transferred(report) == 0);
    ocicas_transfer_report_free(report);
    CHECK(fsck_is_sound(other));

    CASE("pull: a ref that points elsewhere is CLOBBER unless forced");
    tag_image(other, "taken", (const uint8_t *)"another image", 13);
    CHECK_STATUS(ocicas_registry_pull(other, target, "taken", &options, &report), OCICAS_ERR_CLOBBER);
    CHECK_MESSAGE("taken");
    options.force = true;
    CHECK_OK(ocicas_registry_pull(other, target, "taken", &options, &report));
    ocicas_transfer_report_free(report);
    options.force = false;

    CASE("pull: an unknown tag or repository is NOT_FOUND and tags nothing");
    snprintf(target, sizeof target, "%s/c%d/hello:missing", registry, (int)getpid());
    CHECK_STATUS(ocicas_registry_pull(other, target, "missing", &options, &report), OCICAS_ERR_NOT_FOUND);
    CHECK_MESSAGE("missing");
    snprintf(target, sizeof target, "%s/c%d/nothing-here:v1", registry, (int)getpid());
    CHECK_STATUS(ocicas_registry_pull(other, target, "missing", &options, &report), OCICAS_ERR_NOT_FOUND);
    ocicas_descriptor *none = NULL;
    CHECK_STATUS(ocicas_ref_get(other, "missing", &none), OCICAS_ERR_NOT_FOUND);
    snprintf(target, sizeof target, "%s/c%d/hello@sha256:%064d", registry, (int)getpid(), 0);
    CHECK_STATUS(ocicas_registry_pull(other, target, NULL, &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("ref name");

    CASE("push-layer from a read callback: the registry serves the printed digest");
    static uint8_t tar[4096];
    memcpy(tar, "not really a tar, but bytes all the same", 40);
    struct source source = {tar, sizeof tar, 0, SIZE_MAX};
    struct progress_count streamed = {0};
    options.progress = count_progress;
    options.progress_user_data = &streamed;
    options.chunk_size = 1000;
    snprintf(target, sizeof target, "%s/c%d/layer", registry, (int)getpid());
    ocicas_descriptor *layer = NULL;
    char *diff_id = NULL;
    CHECK_OK(ocicas_registry_push_layer(target, read_source, &source, NULL, &options, &layer, &diff_id));
    CHECK(strncmp(diff_id, "sha256:", 7) == 0 && strlen(diff_id) == 71);
    CHECK(strstr(ocicas_descriptor_media_type(layer), "tar+gzip") != NULL);
    CHECK(strncmp(ocicas_descriptor_digest(layer), "sha256:", 7) == 0 && strcmp(ocicas_descriptor_digest(layer), diff_id) != 0);
    CHECK(ocicas_descriptor_size(layer) > 0);
    CHECK(streamed.unknown_total > 0);
    ocicas_descriptor_free(layer);
    ocicas_string_free(diff_id);
    layer = NULL;
    diff_id = NULL;
    options.progress = NULL;
    options.chunk_size = 0;

    CASE("push-layer: a failing read callback is IO and completes nothing");
    source = (struct source){tar, sizeof tar, 0, 100};
    CHECK_STATUS(ocicas_registry_push_layer(target, read_source, &source, NULL, &options, &layer, &diff_id), OCICAS_ERR_IO);
    ocicas_layer_options stored;
    CHECK_OK(ocicas_layer_options_init(&stored, OCICAS_LAYER_OPTIONS_VERSION));
    stored.ref_name = "a-ref";
    source.pos = 0;
    CHECK_STATUS(ocicas_registry_push_layer(target, read_source, &source, &stored, &options, &layer, &diff_id),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("stores nothing");
    stored.ref_name = NULL;
    stored.lease = "a-lease";
    CHECK_STATUS(ocicas_registry_push_layer(target, read_source, &source, &stored, &options, &layer, &diff_id),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("stores nothing");

    CASE("push cancelled mid-blob by its progress callback, pull cancelled before it starts: CANCELLED");
    {
        uint8_t *big = malloc(4 << 20);
        CHECK(big != NULL);
        uint64_t state = 88172645463325252u; /* xorshift64: bytes gzip cannot shrink */
        for (size_t i = 0; i < (4u << 20); i++) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            big[i] = (uint8_t)state;
        }
        tag_image(engine, "big", big, 4 << 20);
        free(big);
        ocicas_cancel *cancel = NULL;
        CHECK_OK(ocicas_cancel_new(&cancel));
        struct cancel_at at = {cancel, 1 << 20, 0};
        options.progress = cancel_mid_blob;
        options.progress_user_data = &at;
        options.chunk_size = 256 << 10;
        options.cancel = cancel;
        snprintf(target, sizeof target, "%s/c%d/big:v1", registry, (int)getpid());
        CHECK_STATUS(ocicas_registry_push(engine, "big", target, &options, &report), OCICAS_ERR_CANCELLED);
        CHECK(at.requested);
        CHECK_MESSAGE("cancelled");
        options.progress = NULL;
        options.chunk_size = 0;
        char root3[4096], layout3[4200];
        ocicas_engine *third = new_layout(root3, sizeof root3, layout3, sizeof layout3);
        snprintf(target, sizeof target, "%s/c%d/hello:v1", registry, (int)getpid());
        CHECK_STATUS(ocicas_registry_pull(third, target, NULL, &options, &report), OCICAS_ERR_CANCELLED);
        int blobs = 0;
        CHECK_OK(ocicas_blob_list(third, count_blob, &blobs));
        CHECK(blobs == 0);
        ocicas_descriptor *none_pulled = NULL;
        CHECK_STATUS(ocicas_ref_get(third, "v1", &none_pulled), OCICAS_ERR_NOT_FOUND);
        options.cancel = NULL;
        ocicas_cancel_free(cancel);
        ocicas_engine_close(third);
        remove_tree(root3);
    }

    CASE("Basic auth: no credentials or wrong ones are UNAUTHORIZED; right ones work");
    snprintf(target, sizeof target, "%s/c%d/hello:v1", auth_registry, (int)getpid());
    CHECK_STATUS(ocicas_registry_push(engine, "hello", target, &options, &report), OCICAS_ERR_UNAUTHORIZED);
    CHECK_MESSAGE("credentials");
    options.username = "ocicas";
    options.password = "wrong";
    CHECK_STATUS(ocicas_registry_push(engine, "hello", target, &options, &report), OCICAS_ERR_UNAUTHORIZED);
    CHECK_MESSAGE("ocicas");
    options.password = "secret";
    CHECK_OK(ocicas_registry_push(engine, "hello", target, &options, &report));
    ocicas_transfer_report_free(report);
    CHECK_OK(ocicas_registry_pull(other, target, "from-auth", &options, &report));
    ocicas_transfer_report_free(report);
    options.password = NULL;
    CHECK_STATUS(ocicas_registry_push(engine, "hello", target, &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    options.username = NULL;

    CASE("HTTPS to a plain-HTTP registry is REMOTE, and the message names the insecure option");
    snprintf(target, sizeof target, "%s/c%d/hello:v1", registry, (int)getpid());
    options.insecure = false;
    CHECK_STATUS(ocicas_registry_pull(other, target, NULL, &options, &report), OCICAS_ERR_REMOTE);
    CHECK_MESSAGE("plain HTTP");
    CHECK_MESSAGE("insecure field of ocicas_registry_options");
    options.insecure = true;

    CASE("a registry that never answers is TOO_LARGE once OCICAS_LIMIT_REGISTRY_TIMEOUT passes");
    char silent_host[64], silent_target[128];
    int silent = silent_listener(silent_host, sizeof silent_host);
    snprintf(silent_target, sizeof silent_target, "%s/c/hello:v1", silent_host);
    uint64_t timeout = 0;
    CHECK_OK(ocicas_engine_get_limit(other, OCICAS_LIMIT_REGISTRY_TIMEOUT, &timeout));
    CHECK(timeout == 300);
    CHECK_OK(ocicas_engine_set_limit(other, OCICAS_LIMIT_REGISTRY_TIMEOUT, 1));
    CHECK_STATUS(ocicas_registry_pull(other, silent_target, NULL, &options, &report), OCICAS_ERR_TOO_LARGE);
    CHECK_MESSAGE("registry_timeout");
    CHECK_MESSAGE(silent_host);
    CHECK_STATUS(ocicas_registry_push(other, "v1", silent_target, &options, &report), OCICAS_ERR_TOO_LARGE);
    CHECK_OK(ocicas_engine_set_limit(other, OCICAS_LIMIT_REGISTRY_TIMEOUT, timeout));
    close(silent);

    CASE("a registry that cannot be reached is REMOTE");
    CHECK_STATUS(ocicas_registry_push(engine, "hello", "127.0.0.1:1/c/hello:v1", &options, &report), OCICAS_ERR_REMOTE);
    CHECK_MESSAGE("127.0.0.1:1");
    CHECK_STATUS(ocicas_registry_pull(engine, "127.0.0.1:1/c/hello:v1", NULL, &options, &report), OCICAS_ERR_REMOTE);

    CASE("bad arguments");
    CHECK_STATUS(ocicas_registry_push(engine, "no-such-ref", target, &options, &report), OCICAS_ERR_NOT_FOUND);
    CHECK_STATUS(ocicas_registry_push(engine, "hello", "host.io/UPPER", &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("UPPER");
    CHECK_STATUS(ocicas_registry_push(NULL, "hello", target, &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_registry_push(engine, NULL, target, &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_registry_push(engine, "hello", NULL, &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_registry_push(engine, "hello", target, &options, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_registry_pull(NULL, target, NULL, &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_registry_pull(engine, NULL, NULL, &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_registry_pull(engine, target, "bad ref name", &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_registry_pull(engine, target, NULL, &options, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_registry_push_layer(NULL, read_source, &source, NULL, &options, &layer, &diff_id), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_registry_push_layer(target, NULL, &source, NULL, &options, &layer, &diff_id), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_registry_push_layer(target, read_source, &source, NULL, &options, NULL, &diff_id), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_registry_push_layer(target, read_source, &source, NULL, &options, &layer, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(layer == NULL && diff_id == NULL);
    options.n_platforms = 1; /* with platforms NULL */
    CHECK_STATUS(ocicas_registry_pull(engine, target, NULL, &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    options.n_platforms = 0;
    options.chunk_size = ((uint64_t)1 << 30) + 1;
    CHECK_STATUS(ocicas_registry_push(engine, "hello", target, &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("chunk size");
    CHECK_STATUS(ocicas_registry_push_layer(target, read_source, &source, NULL, &options, &layer, &diff_id),
                 OCICAS_ERR_INVALID_ARGUMENT);
    options.chunk_size = 0;
    options.jobs = 1025; /* over any threads limit */
    CHECK_STATUS(ocicas_registry_pull(engine, target, NULL, &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("jobs");
    CHECK_STATUS(ocicas_registry_push_layer(target, read_source, &source, NULL, &options, &layer, &diff_id),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_OK(ocicas_engine_set_limit(engine, OCICAS_LIMIT_THREADS, 2));
    options.jobs = 3;
    CHECK_STATUS(ocicas_registry_pull(engine, target, NULL, &options, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("threads");
    options.jobs = 0; /* the default, 4, is clamped to the limit */
    snprintf(target, sizeof target, "%s/c%d/hello:v1", registry, (int)getpid());
    CHECK_OK(ocicas_registry_push(engine, "hello", target, &options, &report));
    ocicas_transfer_report_free(report);

    ocicas_engine_close(other);
    ocicas_engine_close(engine);
    remove_tree(root2);
    remove_tree(root);
    printf("ok\n");
    return 0;
}
