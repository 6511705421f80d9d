/* Blobs and readers: put, put_json, open/read_at/size, read (verified), stat, delete, list. */
#include "test_util.h"

#include <pthread.h>
#include <sys/stat.h>

#define HELLO_DIGEST "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
#define ABSENT_DIGEST "sha256:0000000000000000000000000000000000000000000000000000000000000000"

struct collected {
    char digests[16][160];
    int count;
    int stop_after;
};

static int collect(const char *digest, void *user_data) {
    struct collected *c = user_data;
    snprintf(c->digests[c->count++], sizeof c->digests[0], "%s", digest);
    return c->stop_after && c->count >= c->stop_after;
}

static const ocicas_reader *shared_reader;

static void *read_concurrently(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        uint8_t buf[2];
        size_t n = 0;
        CHECK_OK(ocicas_reader_read_at(shared_reader, buf, 2, 1, &n));
        CHECK(n == 2 && memcmp(buf, "el", 2) == 0);
    }
    return NULL;
}

static char layout[4200];

static void blob_path(const char *digest, char *path, size_t size) {
    snprintf(path, size, "%s/blobs/sha256/%s", layout, digest + strlen("sha256:"));
}

int main(void) {
    char root[4096];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);
    char *digest = NULL;
    char path[4600];
    struct stat st;

    CASE("put returns the sha256 and stores a 0444 file");
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)"hello", 5, &digest));
    CHECK(strcmp(digest, HELLO_DIGEST) == 0);
    blob_path(digest, path, sizeof path);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0444);
    ocicas_string_free(digest);

    CASE("put is idempotent; zero bytes with NULL data; NULL data with a length");
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)"hello", 5, &digest));
    ocicas_string_free(digest);
    CHECK_OK(ocicas_blob_put(engine, NULL, 0, &digest));
    CHECK(strcmp(digest, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    ocicas_string_free(digest);
    CHECK_STATUS(ocicas_blob_put(engine, NULL, 3, &digest), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_blob_put(NULL, (const uint8_t *)"x", 1, &digest), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_blob_put(engine, (const uint8_t *)"x", 1, NULL), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("put_many stores each blob, in order, and writes nothing on an error");
    {
        ocicas_blob_input blobs[3] = {
            {(const uint8_t *)"hello", 5}, {(const uint8_t *)"world", 5}, {NULL, 0}};
        char *digests[3] = {NULL, NULL, NULL};
        CHECK_OK(ocicas_blob_put_many(engine, blobs, 3, digests));
        CHECK(strcmp(digests[0], HELLO_DIGEST) == 0);
        CHECK(strcmp(digests[2], "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
        uint64_t world_size = 0;
        CHECK_OK(ocicas_blob_size(engine, digests[1], &world_size));
        CHECK(world_size == 5);
        CHECK_OK(ocicas_blob_delete(engine, digests[1])); /* the cases below count the blobs */
        for (int i = 0; i < 3; i++) {
            ocicas_string_free(digests[i]);
            digests[i] = NULL;
        }
        CHECK_OK(ocicas_blob_put_many(engine, NULL, 0, NULL));
        blobs[1].data = NULL;
        CHECK_STATUS(ocicas_blob_put_many(engine, blobs, 3, digests), OCICAS_ERR_INVALID_ARGUMENT);
        CHECK_MESSAGE("blobs[1].data");
        CHECK(digests[0] == NULL && digests[1] == NULL);
        CHECK_STATUS(ocicas_blob_put_many(engine, NULL, 1, digests), OCICAS_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(ocicas_blob_put_many(engine, blobs, 1, NULL), OCICAS_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(ocicas_blob_put_many(NULL, blobs, 1, digests), OCICAS_ERR_INVALID_ARGUMENT);
    }

    CASE("stat, open, read_at, size");
    uint64_t size = 0;
    CHECK_OK(ocicas_blob_size(engine, HELLO_DIGEST, &size));
    CHECK(size == 5);
    ocicas_reader *reader = NULL;
    CHECK_OK(ocicas_blob_open(engine, HELLO_DIGEST, &reader));
    CHECK_OK(ocicas_reader_size(reader, &size));
    CHECK(size == 5);
    uint8_t buf[16];
    size_t n = 0;
    CHECK_OK(ocicas_reader_read_at(reader, buf, sizeof buf, 0, &n));
    CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
    CHECK_OK(ocicas_reader_read_at(reader, buf, 2, 3, &n));
    CHECK(n == 2 && memcmp(buf, "lo", 2) == 0);
    CHECK_OK(ocicas_reader_read_at(reader, buf, sizeof buf, 99, &n));
    CHECK(n == 0);
    n = 1;
    CHECK_OK(ocicas_reader_read_at(reader, buf, sizeof buf, UINT64_MAX, &n));
    CHECK(n == 0);
    CHECK_STATUS(ocicas_reader_read_at(reader, buf, SIZE_MAX, 0, &n), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_blob_put(engine, buf, SIZE_MAX, &digest), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_reader_read_at(reader, NULL, 4, 0, &n), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_reader_read_at(NULL, buf, 4, 0, &n), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_reader_size(reader, NULL), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("one reader used by two threads at once");
    shared_reader = reader;
    pthread_t a, b;
    CHECK(pthread_create(&a, NULL, read_concurrently, NULL) == 0);
    CHECK(pthread_create(&b, NULL, read_concurrently, NULL) == 0);
    CHECK(pthread_join(a, NULL) == 0 && pthread_join(b, NULL) == 0);
    ocicas_reader_free(reader);

    CASE("read returns verified bytes; a small limit is TOO_LARGE");
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK_OK(ocicas_blob_read(engine, HELLO_DIGEST, 100, &data, &len));
    CHECK(len == 5 && memcmp(data, "hello", 5) == 0);
    ocicas_bytes_free(data, len);
    data = NULL;
    CHECK_STATUS(ocicas_blob_read(engine, HELLO_DIGEST, 4, &data, &len), OCICAS_ERR_TOO_LARGE);
    CHECK(data == NULL);

    CASE("a corrupted blob is DIGEST_MISMATCH naming the digest");
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)"precious", 8, &digest));
    blob_path(digest, path, sizeof path);
    CHECK(chmod(path, 0644) == 0);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("tampered", f);
    fclose(f);
    CHECK_STATUS(ocicas_blob_read(engine, digest, 100, &data, &len), OCICAS_ERR_DIGEST_MISMATCH);
    CHECK_MESSAGE(digest);
    ocicas_fsck_report *report = NULL;
    CHECK_OK(ocicas_fsck(engine, &report));
    CHECK(!ocicas_fsck_report_sound(report) && list_mentions(ocicas_fsck_report_problems(report), digest));
    ocicas_fsck_report_free(report);
    CHECK_OK(ocicas_blob_delete(engine, digest));
    ocicas_string_free(digest);

    CASE("malformed digests are INVALID_ARGUMENT everywhere");
    const char *bad[] = {"sha256:../../etc/passwd",
                         "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
                         "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982",
                         "md5:d41d8cd98f00b204e9800998ecf8427e", "",
                         "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_STATUS(ocicas_blob_open(engine, bad[i], &reader), OCICAS_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(ocicas_blob_size(engine, bad[i], &size), OCICAS_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(ocicas_blob_read(engine, bad[i], 10, &data, &len), OCICAS_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(ocicas_blob_delete(engine, bad[i]), OCICAS_ERR_INVALID_ARGUMENT);
    }
    CHECK_STATUS(ocicas_blob_open(engine, NULL, &reader), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("absent blobs are NOT_FOUND; sha512 digests parse");
    CHECK_STATUS(ocicas_blob_open(engine, ABSENT_DIGEST, &reader), OCICAS_ERR_NOT_FOUND);
    CHECK_MESSAGE(ABSENT_DIGEST);
    CHECK_STATUS(ocicas_blob_size(engine, ABSENT_DIGEST, &size), OCICAS_ERR_NOT_FOUND);
    CHECK_STATUS(ocicas_blob_read(engine, ABSENT_DIGEST, 10, &data, &len), OCICAS_ERR_NOT_FOUND);
    char sha512[200] = "sha512:";
    for (int i = 0; i < 128; i++) strcat(sha512, "a");
    CHECK_STATUS(ocicas_blob_size(engine, sha512, &size), OCICAS_ERR_NOT_FOUND);

    CASE("delete is idempotent");
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)"gone", 4, &digest));
    CHECK_OK(ocicas_blob_delete(engine, digest));
    CHECK_OK(ocicas_blob_delete(engine, digest));
    CHECK_STATUS(ocicas_blob_size(engine, digest, &size), OCICAS_ERR_NOT_FOUND);
    ocicas_string_free(digest);

    CASE("junk under blobs/ is not listed, never followed, never blocks");
    char junk[4600];
    snprintf(junk, sizeof junk, "%s/blobs/sha256/notahash", layout);
    write_file(layout, "blobs/sha256/notahash", "junk");
    const char *symlink_hex = "1111111111111111111111111111111111111111111111111111111111111111";
    snprintf(junk, sizeof junk, "%s/blobs/sha256/%s", layout, symlink_hex);
    CHECK(symlink("/etc/passwd", junk) == 0);
    const char *fifo_hex = "2222222222222222222222222222222222222222222222222222222222222222";
    snprintf(junk, sizeof junk, "%s/blobs/sha256/%s", layout, fifo_hex);
    CHECK(mkfifo(junk, 0644) == 0);
    const char *dir_hex = "3333333333333333333333333333333333333333333333333333333333333333";
    snprintf(junk, sizeof junk, "%s/blobs/sha256/%s", layout, dir_hex);
    CHECK(mkdir(junk, 0755) == 0);
    char name[200];
    snprintf(name, sizeof name, "sha256:%s", symlink_hex);
    CHECK_STATUS(ocicas_blob_open(engine, name, &reader), OCICAS_ERR_INVALID_IMAGE);
    CHECK_MESSAGE("symlink");
    snprintf(name, sizeof name, "sha256:%s", fifo_hex);
    CHECK_STATUS(ocicas_blob_open(engine, name, &reader), OCICAS_ERR_INVALID_IMAGE);
    snprintf(name, sizeof name, "sha256:%s", dir_hex);
    CHECK_STATUS(ocicas_blob_read(engine, name, 10, &data, &len), OCICAS_ERR_INVALID_IMAGE);

    CASE("list is sorted, stops early, and needs a callback");
    struct collected all = {0};
    CHECK_OK(ocicas_blob_list(engine, collect, &all));
    CHECK(all.count == 2);
    CHECK(strcmp(all.digests[0], HELLO_DIGEST) == 0);
    CHECK(strcmp(all.digests[0], all.digests[1]) < 0);
    struct collected first = {.stop_after = 1};
    CHECK_OK(ocicas_blob_list(engine, collect, &first));
    CHECK(first.count == 1);
    CHECK_STATUS(ocicas_blob_list(engine, NULL, NULL), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("put_json stores canonical JSON: equal documents, equal digests");
    ocicas_descriptor *d1 = NULL, *d2 = NULL;
    CHECK_OK(ocicas_blob_put_json(engine, "application/json", "{\"b\":1, \"a\":[1,2]}", &d1));
    CHECK_OK(ocicas_blob_put_json(engine, "application/json", "{\"a\":[1,2],\"b\":1}", &d2));
    CHECK(strcmp(ocicas_descriptor_digest(d1), ocicas_descriptor_digest(d2)) == 0);
    CHECK(strcmp(ocicas_descriptor_media_type(d1), "application/json") == 0 && ocicas_descriptor_size(d1) == 17);
    CHECK(ocicas_key_value_list_count(ocicas_descriptor_annotations(d1)) == 0);
    CHECK(ocicas_descriptor_platform_os(d1) == NULL && ocicas_descriptor_data(d1) == NULL);
    uint64_t stored = 0;
    CHECK_OK(ocicas_blob_size(engine, ocicas_descriptor_digest(d1), &stored));
    CHECK(stored == 17);
    ocicas_descriptor_free(d1);
    ocicas_descriptor_free(d2);
    d1 = NULL;
    CHECK_STATUS(ocicas_blob_put_json(engine, "application/json", "{oops", &d1), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("JSON");
    CHECK_STATUS(ocicas_blob_put_json(NULL, "application/json", "{}", &d1), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_blob_put_json(engine, NULL, "{}", &d1), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_blob_put_json(engine, "application/json", NULL, &d1), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_blob_put_json(engine, "application/json", "{}", NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(d1 == NULL);

    ocicas_engine_close(engine);
    remove_tree(root);
    printf("test_blob: all cases passed\n");
    return 0;
}
