/* Small helpers: status names and messages, the streaming digester, the writer's offset, and
 * the one meaning of a blob_read limit (0 is 0 bytes, OCICAS_NO_LIMIT is none). */
#include "test_util.h"

#define EMPTY_SHA256 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_SHA256 "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define MILLION_A_SHA256 "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
#define EMPTY_SHA512                                                                                   \
    "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f" \
    "63b931bd47417a81a538327af927da3e"
#define ABC_SHA512                                                                                     \
    "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd" \
    "454d4423643ce80e2a9ac94fa54ca49f"
#define MILLION_A_SHA512                                                                               \
    "sha512:e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973ebde0ff244877ea60a4cb0432ce577c3" \
    "1beb009c5c2c49aa2e4eadb217ad8cc09b"

/* Each status with its identifier as this header spells it (#x): a name the library gives
 * that is not the identifier fails. */
#define STATUS(x) {x, #x}
static const struct {
    ocicas_status status;
    const char *name;
} statuses[] = {
    STATUS(OCICAS_OK),
    STATUS(OCICAS_ERR_INVALID_ARGUMENT),
    STATUS(OCICAS_ERR_NOT_FOUND),
    STATUS(OCICAS_ERR_ALREADY_EXISTS),
    STATUS(OCICAS_ERR_INVALID_IMAGE),
    STATUS(OCICAS_ERR_DIGEST_MISMATCH),
    STATUS(OCICAS_ERR_SIZE_MISMATCH),
    STATUS(OCICAS_ERR_CLOBBER),
    STATUS(OCICAS_ERR_LOCKED),
    STATUS(OCICAS_ERR_IO),
    STATUS(OCICAS_ERR_TOO_LARGE),
    STATUS(OCICAS_ERR_UNSUPPORTED_MEDIA_TYPE),
    STATUS(OCICAS_ERR_NOT_IMPLEMENTED),
    STATUS(OCICAS_ERR_PANIC),
    STATUS(OCICAS_ERR_NOT_COMPUTED),
    STATUS(OCICAS_ERR_CONSUMED),
    STATUS(OCICAS_ERR_UNAUTHORIZED),
    STATUS(OCICAS_ERR_REMOTE),
    STATUS(OCICAS_ERR_CANCELLED),
};
#define N_STATUSES (sizeof statuses / sizeof statuses[0])

static void check_status_names(void) {
    CASE("every status has its header identifier as name and a distinct message");
    for (size_t i = 0; i < N_STATUSES; i++) {
        const char *name = ocicas_status_name(statuses[i].status);
        const char *message = ocicas_status_message(statuses[i].status);
        CHECK(name != NULL && strcmp(name, statuses[i].name) == 0);
        CHECK(message != NULL && *message != '\0' && strcmp(message, "unknown status") != 0);
        /* Static storage: the same pointer every time. */
        CHECK(ocicas_status_name(statuses[i].status) == name);
        for (size_t j = 0; j < i; j++) {
            CHECK(strcmp(message, ocicas_status_message(statuses[j].status)) != 0);
        }
    }
    CHECK(strcmp(ocicas_status_message(OCICAS_ERR_NOT_FOUND), "not found") == 0);

    CASE("a number that is no status has a fixed name and message, never NULL");
    const uint32_t unknown[] = {N_STATUSES, 99, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        CHECK(strcmp(ocicas_status_name(unknown[i]), "OCICAS_ERR_UNKNOWN") == 0);
        CHECK(strcmp(ocicas_status_message(unknown[i]), "unknown status") == 0);
    }
}

/* The digest of `len` bytes fed to a new `algorithm` digester in pieces of `piece` bytes. */
static char *digest_in_pieces(const char *algorithm, const uint8_t *data, size_t len, size_t piece) {
    ocicas_digester *digester = NULL;
    CHECK_OK(ocicas_digester_new(algorithm, &digester));
    for (size_t at = 0; at < len; at += piece) {
        CHECK_OK(ocicas_digester_update(digester, data + at, len - at < piece ? len - at : piece));
    }
    char *digest = NULL;
    CHECK_OK(ocicas_digester_finish(digester, &digest));
    ocicas_digester_free(digester);
    return digest;
}

static void check_digest(const char *algorithm, const uint8_t *data, size_t len, size_t piece, const char *expected) {
    char *digest = digest_in_pieces(algorithm, data, len, piece);
    if (strcmp(digest, expected) != 0) {
        fprintf(stderr, "%s of %zu bytes in pieces of %zu: %s, expected %s\n", algorithm, len, piece, digest, expected);
        exit(1);
    }
    ocicas_string_free(digest);
}

static void check_digester(void) {
    CASE("sha256 and sha512 of the standard vectors, whole and in pieces across block boundaries");
    check_digest("sha256", NULL, 0, 1, EMPTY_SHA256);
    check_digest("sha512", NULL, 0, 1, EMPTY_SHA512);
    check_digest("sha256", (const uint8_t *)"abc", 3, 3, ABC_SHA256);
    check_digest("sha256", (const uint8_t *)"abc", 3, 1, ABC_SHA256);
    check_digest("sha512", (const uint8_t *)"abc", 3, 2, ABC_SHA512);
    size_t million = 1000000;
    uint8_t *as = malloc(million);
    CHECK(as != NULL);
    memset(as, 'a', million);
    const size_t pieces[] = {million, 4096, 997, 63, 129};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        check_digest("sha256", as, million, pieces[i], MILLION_A_SHA256);
        check_digest("sha512", as, million, pieces[i], MILLION_A_SHA512);
    }
    free(as);

    CASE("an empty update (NULL, 0) changes nothing");
    ocicas_digester *digester = NULL;
    char *digest = NULL;
    CHECK_OK(ocicas_digester_new("sha256", &digester));
    CHECK_OK(ocicas_digester_update(digester, NULL, 0));
    CHECK_OK(ocicas_digester_update(digester, (const uint8_t *)"ab", 2));
    CHECK_OK(ocicas_digester_update(digester, NULL, 0));
    CHECK_OK(ocicas_digester_update(digester, (const uint8_t *)"c", 1));
    CHECK_OK(ocicas_digester_finish(digester, &digest));
    CHECK(strcmp(digest, ABC_SHA256) == 0);
    ocicas_string_free(digest);

    CASE("after finish, update and finish are INVALID_ARGUMENT and leave the outputs alone");
    digest = (char *)"untouched";
    CHECK_STATUS(ocicas_digester_finish(digester, &digest), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("already finished");
    CHECK(strcmp(digest, "untouched") == 0);
    CHECK_STATUS(ocicas_digester_update(digester, (const uint8_t *)"x", 1), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("already finished");
    CHECK_STATUS(ocicas_digester_update(digester, NULL, 0), OCICAS_ERR_INVALID_ARGUMENT);
    ocicas_digester_free(digester);

    CASE("an unknown algorithm is INVALID_ARGUMENT, naming it, and gives no digester");
    const char *unknown[] = {"md5", "sha384", "SHA256", "sha256 ", "", "sha256:"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        ocicas_digester *untouched = (ocicas_digester *)&digest;
        CHECK_STATUS(ocicas_digester_new(unknown[i], &untouched), OCICAS_ERR_INVALID_ARGUMENT);
        CHECK(untouched == (ocicas_digester *)&digest);
    }
    CHECK_STATUS(ocicas_digester_new("md5", &digester), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("md5");

    CASE("NULL arguments of every digester function");
    CHECK_STATUS(ocicas_digester_new(NULL, &digester), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("algorithm");
    CHECK_STATUS(ocicas_digester_new("sha256", NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_digester_update(NULL, (const uint8_t *)"x", 1), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_digester_update(NULL, NULL, 0), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_digester_finish(NULL, &digest), OCICAS_ERR_INVALID_ARGUMENT);
    ocicas_digester_free(NULL);
    CHECK_OK(ocicas_digester_new("sha512", &digester));
    CHECK_STATUS(ocicas_digester_update(digester, NULL, 3), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("data");
    CHECK_STATUS(ocicas_digester_update(digester, (const uint8_t *)"x", SIZE_MAX), OCICAS_ERR_INVALID_ARGUMENT);
    /* A finish refused for its NULL output does not finish: the digester goes on. */
    CHECK_STATUS(ocicas_digester_finish(digester, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("out_digest");
    CHECK_OK(ocicas_digester_update(digester, (const uint8_t *)"abc", 3));
    CHECK_OK(ocicas_digester_finish(digester, &digest));
    CHECK(strcmp(digest, ABC_SHA512) == 0);
    ocicas_string_free(digest);
    ocicas_digester_free(digester);

    CASE("a digester freed unfinished leaks nothing (valgrind run)");
    CHECK_OK(ocicas_digester_new("sha256", &digester));
    CHECK_OK(ocicas_digester_update(digester, (const uint8_t *)"abc", 3));
    ocicas_digester_free(digester);
}

/* The writer's offset, and that it is the offset of its status. */
static uint64_t offset_of(ocicas_writer *writer) {
    uint64_t offset = UINT64_MAX;
    CHECK_OK(ocicas_writer_offset(writer, &offset));
    ocicas_ingest_status *status = NULL;
    CHECK_OK(ocicas_writer_status(writer, &status));
    CHECK(ocicas_ingest_status_offset(status) == offset);
    ocicas_ingest_status_free(status);
    return offset;
}

static void check_writer_offset_and_digester_commit(ocicas_engine *engine) {
    CASE("the offset follows writes, survives a close and reopen, and agrees with the status");
    uint8_t data[10000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7 + i / 251);
    ocicas_digester *sha256 = NULL, *sha512 = NULL;
    CHECK_OK(ocicas_digester_new("sha256", &sha256));
    CHECK_OK(ocicas_digester_new("sha512", &sha512));
    ocicas_writer *writer = NULL;
    CHECK_OK(ocicas_writer_open(engine, "helpers-1", OCICAS_SIZE_UNKNOWN, NULL, &writer));
    CHECK(offset_of(writer) == 0);
    size_t written = 0;
    const size_t pieces[] = {1, 0, 4095, 1000};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        CHECK_OK(ocicas_writer_write(writer, data + written, pieces[i]));
        CHECK_OK(ocicas_digester_update(sha256, data + written, pieces[i]));
        CHECK_OK(ocicas_digester_update(sha512, data + written, pieces[i]));
        written += pieces[i];
        CHECK(offset_of(writer) == written);
    }
    /* A write refused for passing nothing changes nothing. */
    CHECK_STATUS(ocicas_writer_write(writer, NULL, 5), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(offset_of(writer) == written);
    CHECK_OK(ocicas_writer_close(writer));
    CHECK_OK(ocicas_writer_open(engine, "helpers-1", OCICAS_SIZE_UNKNOWN, NULL, &writer));
    CHECK(offset_of(writer) == written);
    CHECK_OK(ocicas_writer_write(writer, data + written, sizeof data - written));
    CHECK_OK(ocicas_digester_update(sha256, data + written, sizeof data - written));
    CHECK_OK(ocicas_digester_update(sha512, data + written, sizeof data - written));
    CHECK(offset_of(writer) == sizeof data);

    CASE("NULL arguments of ocicas_writer_offset");
    uint64_t offset = 42;
    CHECK_STATUS(ocicas_writer_offset(NULL, &offset), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_writer_offset(writer, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("out_offset");
    CHECK(offset == 42);

    CASE("the digester's digest is the expected of a commit, sha256 and sha512");
    char *expected256 = NULL, *expected512 = NULL, *committed = NULL;
    CHECK_OK(ocicas_digester_finish(sha256, &expected256));
    CHECK_OK(ocicas_digester_finish(sha512, &expected512));
    CHECK(strncmp(expected512, "sha512:", 7) == 0 && strlen(expected512) == 7 + 128);
    /* A digest one byte short of the data is refused: the digester hashed what was written. */
    ocicas_digester *short_one = NULL;
    char *short_digest = NULL;
    CHECK_OK(ocicas_digester_new("sha256", &short_one));
    CHECK_OK(ocicas_digester_update(short_one, data, sizeof data - 1));
    CHECK_OK(ocicas_digester_finish(short_one, &short_digest));
    CHECK_STATUS(ocicas_writer_commit(writer, sizeof data, short_digest, NULL, &committed), OCICAS_ERR_DIGEST_MISMATCH);
    CHECK_OK(ocicas_writer_commit(writer, sizeof data, expected256, NULL, &committed));
    CHECK(strcmp(committed, expected256) == 0);
    ocicas_string_free(committed);
    CHECK_OK(ocicas_writer_close(writer));
    uint8_t *read = NULL;
    size_t len = 0;
    CHECK_OK(ocicas_blob_read(engine, expected256, sizeof data, &read, &len));
    CHECK(len == sizeof data && memcmp(read, data, len) == 0);
    ocicas_bytes_free(read, len);

    CHECK_OK(ocicas_writer_open(engine, "helpers-512", sizeof data, NULL, &writer));
    CHECK_OK(ocicas_writer_write(writer, data, sizeof data));
    CHECK_OK(ocicas_writer_commit(writer, sizeof data, expected512, NULL, &committed));
    CHECK(strcmp(committed, expected512) == 0);
    ocicas_string_free(committed);
    CHECK_OK(ocicas_writer_close(writer));
    CHECK_OK(ocicas_blob_read(engine, expected512, OCICAS_NO_LIMIT, &read, &len));
    CHECK(len == sizeof data && memcmp(read, data, len) == 0);
    ocicas_bytes_free(read, len);

    ocicas_string_free(expected256);
    ocicas_string_free(expected512);
    ocicas_string_free(short_digest);
    ocicas_digester_free(sha256);
    ocicas_digester_free(sha512);
    ocicas_digester_free(short_one);
}

static void check_blob_read_limits(ocicas_engine *engine) {
    CASE("blob_read: 0 allows only the empty blob, the exact size passes, OCICAS_NO_LIMIT any");
    char *hello = NULL, *empty = NULL;
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)"hello", 5, &hello));
    CHECK_OK(ocicas_blob_put(engine, NULL, 0, &empty));
    CHECK(strcmp(empty, EMPTY_SHA256) == 0);
    uint8_t *data = NULL;
    size_t len = 7;
    CHECK_STATUS(ocicas_blob_read(engine, hello, 0, &data, &len), OCICAS_ERR_TOO_LARGE);
    CHECK_MESSAGE(hello);
    CHECK(data == NULL && len == 7);
    CHECK_STATUS(ocicas_blob_read(engine, hello, 4, &data, &len), OCICAS_ERR_TOO_LARGE);
    const uint64_t enough[] = {5, 6, OCICAS_NO_LIMIT - 1, OCICAS_NO_LIMIT};
    for (size_t i = 0; i < sizeof enough / sizeof enough[0]; i++) {
        CHECK_OK(ocicas_blob_read(engine, hello, enough[i], &data, &len));
        CHECK(len == 5 && memcmp(data, "hello", 5) == 0);
        ocicas_bytes_free(data, len);
    }
    const uint64_t any[] = {0, 1, OCICAS_NO_LIMIT};
    for (size_t i = 0; i < sizeof any / sizeof any[0]; i++) {
        len = 7;
        CHECK_OK(ocicas_blob_read(engine, empty, any[i], &data, &len));
        CHECK(len == 0);
        ocicas_bytes_free(data, len);
    }
    CHECK(OCICAS_NO_LIMIT == UINT64_MAX);
    ocicas_string_free(hello);
    ocicas_string_free(empty);
}

int main(void) {
    char root[4096], layout[4200];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);

    check_status_names();
    check_digester();
    check_writer_offset_and_digester_commit(engine);
    check_blob_read_limits(engine);

    ocicas_engine_close(engine);
    remove_tree(root);
    printf("test_helpers: all cases passed\n");
    return 0;
}
