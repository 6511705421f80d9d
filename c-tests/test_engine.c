/* ocicas_engine_open / _close, version, errors: every status path. */
#include "test_util.h"

#include <pthread.h>
#include <sys/stat.h>

static char root[4096];

/* Makes root/name a directory with the given oci-layout and index.json (NULL: absent). */
static void make_dir_layout(const char *name, const char *oci_layout, const char *index, int blobs_is_file) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    CHECK(mkdir(dir, 0755) == 0);
    if (oci_layout) write_file(dir, "oci-layout", oci_layout);
    if (index) write_file(dir, "index.json", index);
    if (blobs_is_file) {
        write_file(dir, "blobs", "not a directory");
    } else {
        char blobs[4200];
        snprintf(blobs, sizeof blobs, "%s/blobs", dir);
        CHECK(mkdir(blobs, 0755) == 0);
    }
}

static void expect_invalid(const char *name, const char *culprit) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    ocicas_engine *engine = (ocicas_engine *)0x1;
    CHECK_STATUS(ocicas_engine_open(dir, 0, &engine), OCICAS_ERR_INVALID_IMAGE);
    CHECK_MESSAGE(culprit);
    CHECK(engine == (ocicas_engine *)0x1); /* outputs are written only on success */
}

static void *fail_in_thread(void *arg) {
    (void)arg;
    ocicas_engine *engine = NULL;
    CHECK_STATUS(ocicas_engine_open("/nonexistent/ocicas/thread", 0, &engine), OCICAS_ERR_INVALID_IMAGE);
    return NULL;
}

#define VALID_INDEX "{\"schemaVersion\":2,\"manifests\":[]}"
#define VALID_LAYOUT "{\"imageLayoutVersion\":\"1.0.0\"}"

int main(void) {
    make_temp_dir(root, sizeof root);
    char layout[4200];
    snprintf(layout, sizeof layout, "%s/new", root);

    CASE("version");
    CHECK(ocicas_version() != NULL && strlen(ocicas_version()) > 0);

    CASE("create makes oci-layout, index.json and blobs/sha256");
    ocicas_engine *engine = NULL;
    CHECK_OK(ocicas_engine_open(layout, OCICAS_OPEN_CREATE, &engine));
    CHECK(engine != NULL);
    ocicas_engine_close(engine);
    char path[4400];
    struct stat st;
    snprintf(path, sizeof path, "%s/oci-layout", layout);
    CHECK(stat(path, &st) == 0);
    snprintf(path, sizeof path, "%s/index.json", layout);
    CHECK(stat(path, &st) == 0);
    snprintf(path, sizeof path, "%s/blobs/sha256", layout);
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));

    CASE("reopen without flags");
    engine = NULL;
    CHECK_OK(ocicas_engine_open(layout, 0, &engine));
    ocicas_engine_close(engine);

    CASE("create exclusive on an existing path is ALREADY_EXISTS");
    engine = NULL;
    CHECK_STATUS(ocicas_engine_open(layout, OCICAS_OPEN_CREATE | OCICAS_OPEN_EXCLUSIVE, &engine),
                 OCICAS_ERR_ALREADY_EXISTS);
    CHECK_MESSAGE("already exists");
    CHECK(engine == NULL);

    CASE("EXCLUSIVE without CREATE, unknown flags");
    CHECK_STATUS(ocicas_engine_open(layout, OCICAS_OPEN_EXCLUSIVE, &engine), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_engine_open(layout, 0x80, &engine), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("flags");

    CASE("missing path without CREATE");
    snprintf(path, sizeof path, "%s/missing", root);
    CHECK_STATUS(ocicas_engine_open(path, 0, &engine), OCICAS_ERR_INVALID_IMAGE);

    CASE("broken layouts name the file");
    make_dir_layout("no-oci-layout", NULL, VALID_INDEX, 0);
    expect_invalid("no-oci-layout", "oci-layout");
    make_dir_layout("bad-json", "{not json", VALID_INDEX, 0);
    expect_invalid("bad-json", "oci-layout");
    make_dir_layout("bad-version", "{\"imageLayoutVersion\":\"2.0.0\"}", VALID_INDEX, 0);
    expect_invalid("bad-version", "2.0.0");
    make_dir_layout("index-not-json", VALID_LAYOUT, "[[[", 0);
    expect_invalid("index-not-json", "index.json");
    make_dir_layout("index-no-manifests", VALID_LAYOUT, "{\"schemaVersion\":2}", 0);
    expect_invalid("index-no-manifests", "index.json");
    make_dir_layout("index-array", VALID_LAYOUT, "[]", 0);
    expect_invalid("index-array", "index.json");
    make_dir_layout("index-missing", VALID_LAYOUT, NULL, 0);
    expect_invalid("index-missing", "index.json");
    make_dir_layout("blobs-file", VALID_LAYOUT, VALID_INDEX, 1);
    expect_invalid("blobs-file", "blobs");

    CASE("an empty directory with CREATE becomes a layout");
    snprintf(path, sizeof path, "%s/empty", root);
    CHECK(mkdir(path, 0755) == 0);
    CHECK_OK(ocicas_engine_open(path, OCICAS_OPEN_CREATE, &engine));
    ocicas_engine_close(engine);

    CASE("NULL arguments");
    engine = (ocicas_engine *)0x1;
    CHECK_STATUS(ocicas_engine_open(NULL, 0, &engine), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("path");
    CHECK(engine == (ocicas_engine *)0x1);
    CHECK_STATUS(ocicas_engine_open(layout, 0, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("out_engine");

    CASE("free functions accept NULL");
    ocicas_engine_close(NULL);
    ocicas_string_free(NULL);
    ocicas_bytes_free(NULL, 0);
    ocicas_reader_free(NULL);
    CHECK_OK(ocicas_writer_close(NULL));
    ocicas_layer_stream_free(NULL);

    CASE("the last error message is per thread");
    CHECK_STATUS(ocicas_engine_open(NULL, 0, &engine), OCICAS_ERR_INVALID_ARGUMENT);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, fail_in_thread, NULL) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_MESSAGE("argument path is NULL");

    CASE("a relative path keeps working after chdir");
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(root) == 0);
    CHECK_OK(ocicas_engine_open("relative", OCICAS_OPEN_CREATE, &engine));
    CHECK(chdir("/") == 0);
    char *digest = NULL;
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)"x", 1, &digest));
    snprintf(path, sizeof path, "%s/relative/blobs/%s", root, digest);
    path[strlen(root) + strlen("/relative/blobs/sha256")] = '/';
    CHECK(stat(path, &st) == 0);
    ocicas_string_free(digest);
    ocicas_engine_close(engine);
    CHECK(chdir(cwd) == 0);

    remove_tree(root);
    printf("test_engine: all cases passed\n");
    return 0;
}
