/* References in index.json: put (idempotent, clobber, force), get, delete, list, and fsck. */
#include "test_util.h"

#include <pthread.h>
#include <sys/stat.h>

static ocicas_engine *engine;
static char layout[4200];

struct names {
    char name[8][64];
    int count;
    int stop_after;
};

static int collect(const char *name, const ocicas_descriptor *descriptor, void *user_data) {
    struct names *n = user_data;
    CHECK(strncmp(ocicas_descriptor_digest(descriptor), "sha256:", 7) == 0 && ocicas_descriptor_size(descriptor) > 0);
    CHECK(strcmp(key_value(ocicas_descriptor_annotations(descriptor), "org.opencontainers.image.ref.name"), name) == 0);
    snprintf(n->name[n->count++], sizeof n->name[0], "%s", name);
    return n->stop_after && n->count >= n->stop_after;
}

/* A descriptor of a blob holding `content` (stored), to free with ocicas_descriptor_free. */
static ocicas_descriptor *descriptor_for(const char *content) {
    char *digest = NULL;
    ocicas_descriptor *descriptor = NULL;
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)content, strlen(content), &digest));
    CHECK_OK(ocicas_descriptor_new("application/vnd.example.thing+json", digest, strlen(content), &descriptor));
    ocicas_string_free(digest);
    return descriptor;
}

static const ocicas_descriptor *shared_descriptor;

static void *tag_many(void *arg) {
    const char *prefix = arg;
    for (int i = 0; i < 50; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s-%d", prefix, i);
        CHECK_OK(ocicas_ref_put(engine, name, shared_descriptor, false));
    }
    return NULL;
}

int main(void) {
    char root[4096];
    make_temp_dir(root, sizeof root);
    snprintf(layout, sizeof layout, "%s/layout", root);
    CHECK(mkdir(layout, 0755) == 0);
    /* A layout another tool wrote, with a field we do not know. */
    write_file(layout, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
    write_file(layout, "index.json", "{\"schemaVersion\":2,\"manifests\":[],\"x-custom\":{\"k\":1}}");
    char blobs[4300];
    snprintf(blobs, sizeof blobs, "%s/blobs", layout);
    CHECK(mkdir(blobs, 0755) == 0);
    CHECK_OK(ocicas_engine_open(layout, 0, &engine));

    ocicas_descriptor *first = descriptor_for("{\"manifest\":1}");
    ocicas_descriptor *second = descriptor_for("{\"manifest\":2}");

    CASE("a new descriptor has what it was made of, and nothing else");
    CHECK(strcmp(ocicas_descriptor_media_type(first), "application/vnd.example.thing+json") == 0);
    CHECK(ocicas_descriptor_size(first) == strlen("{\"manifest\":1}"));
    CHECK(ocicas_key_value_list_count(ocicas_descriptor_annotations(first)) == 0);
    CHECK(ocicas_descriptor_platform_os(first) == NULL && ocicas_descriptor_data(first) == NULL);
    ocicas_descriptor *made = NULL;
    const char *zero_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    CHECK_STATUS(ocicas_descriptor_new(NULL, zero_digest, 1, &made), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_descriptor_new("a/b", NULL, 1, &made), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_descriptor_new("a/b", zero_digest, 1, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_descriptor_new("", zero_digest, 1, &made), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("media_type");
    CHECK_STATUS(ocicas_descriptor_new("a/b", "sha256:abc", 1, &made), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(made == NULL);

    CASE("put, then put again is idempotent");
    CHECK_OK(ocicas_ref_put(engine, "v1", first, false));
    CHECK_OK(ocicas_ref_put(engine, "v1", first, false));

    CASE("a different descriptor is CLOBBER unless forced");
    CHECK_STATUS(ocicas_ref_put(engine, "v1", second, false), OCICAS_ERR_CLOBBER);
    CHECK_MESSAGE("v1");
    CHECK_OK(ocicas_ref_put(engine, "v1", second, true));
    ocicas_descriptor *got = NULL;
    CHECK_OK(ocicas_ref_get(engine, "v1", &got));
    CHECK(strcmp(ocicas_descriptor_digest(got), ocicas_descriptor_digest(second)) == 0);
    CHECK(strcmp(ocicas_descriptor_media_type(got), "application/vnd.example.thing+json") == 0);
    CHECK(ocicas_descriptor_size(got) == strlen("{\"manifest\":2}"));
    CHECK(ocicas_key_value_list_count(ocicas_descriptor_annotations(got)) == 1);
    CHECK(strcmp(key_value(ocicas_descriptor_annotations(got), "org.opencontainers.image.ref.name"), "v1") == 0);
    CHECK(ocicas_string_list_count(ocicas_descriptor_urls(got)) == 0 && ocicas_descriptor_artifact_type(got) == NULL);
    CHECK(ocicas_descriptor_data(got) == NULL && ocicas_descriptor_platform_os(got) == NULL);
    CHECK(ocicas_descriptor_platform_os_features(got) == NULL && ocicas_descriptor_platform_os_version(got) == NULL);
    ocicas_descriptor_free(got);

    CASE("every field of a descriptor put as JSON reads back through its accessors");
    char full[2048];
    snprintf(full, sizeof full,
             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%llu,\"urls\":[\"https://example.com/a\",\"https://example.com/b\"],\"artifactType\":\"application/x-thing\","
             "\"data\":\"eyJtYW5pZmVzdCI6MX0=\",\"annotations\":{\"k\":\"v\"},\"platform\":{\"os\":\"windows\","
             "\"architecture\":\"amd64\",\"os.version\":\"10.0.17763.1\",\"os.features\":[\"win32k\"],\"variant\":\"v3\"}}",
             ocicas_descriptor_media_type(first), ocicas_descriptor_digest(first),
             (unsigned long long)ocicas_descriptor_size(first));
    CHECK_OK(ocicas_ref_put_json(engine, "full", full, false));
    got = NULL;
    CHECK_OK(ocicas_ref_get(engine, "full", &got));
    const ocicas_string_list *urls = ocicas_descriptor_urls(got);
    CHECK(ocicas_string_list_count(urls) == 2 && strcmp(ocicas_string_list_get(urls, 1), "https://example.com/b") == 0);
    CHECK(strcmp(ocicas_descriptor_artifact_type(got), "application/x-thing") == 0);
    CHECK(strcmp(ocicas_descriptor_data(got), "eyJtYW5pZmVzdCI6MX0=") == 0);
    CHECK(strcmp(key_value(ocicas_descriptor_annotations(got), "k"), "v") == 0);
    CHECK(strcmp(ocicas_descriptor_platform_os(got), "windows") == 0);
    CHECK(strcmp(ocicas_descriptor_platform_architecture(got), "amd64") == 0);
    CHECK(strcmp(ocicas_descriptor_platform_variant(got), "v3") == 0);
    CHECK(strcmp(ocicas_descriptor_platform_os_version(got), "10.0.17763.1") == 0);
    const ocicas_string_list *features = ocicas_descriptor_platform_os_features(got);
    CHECK(ocicas_string_list_count(features) == 1 && strcmp(ocicas_string_list_get(features, 0), "win32k") == 0);

    CASE("a descriptor got is put back whole: annotations, platform, data");
    CHECK_OK(ocicas_ref_put(engine, "full-copy", got, false));
    ocicas_descriptor *copy = NULL;
    CHECK_OK(ocicas_ref_get(engine, "full-copy", &copy));
    CHECK(strcmp(key_value(ocicas_descriptor_annotations(copy), "k"), "v") == 0);
    CHECK(strcmp(key_value(ocicas_descriptor_annotations(copy), "org.opencontainers.image.ref.name"), "full-copy") == 0);
    CHECK(strcmp(ocicas_descriptor_platform_os_version(copy), "10.0.17763.1") == 0);
    CHECK(strcmp(ocicas_descriptor_data(copy), "eyJtYW5pZmVzdCI6MX0=") == 0);
    CHECK(ocicas_string_list_count(ocicas_descriptor_urls(copy)) == 2);
    ocicas_descriptor_free(copy);
    ocicas_descriptor_free(got);
    CHECK_OK(ocicas_ref_delete(engine, "full"));
    CHECK_OK(ocicas_ref_delete(engine, "full-copy"));

    CASE("descriptor accessors and free take NULL");
    ocicas_descriptor_free(NULL);
    CHECK(ocicas_descriptor_urls(NULL) == NULL && ocicas_descriptor_artifact_type(NULL) == NULL);
    CHECK(ocicas_descriptor_data(NULL) == NULL && ocicas_descriptor_platform_os_version(NULL) == NULL);
    CHECK(ocicas_descriptor_platform_os_features(NULL) == NULL && ocicas_descriptor_digest(NULL) == NULL);

    CASE("unknown fields of index.json survive a put");
    char index_path[4300];
    snprintf(index_path, sizeof index_path, "%s/index.json", layout);
    FILE *f = fopen(index_path, "r");
    CHECK(f != NULL);
    char index[8192] = {0};
    CHECK(fread(index, 1, sizeof index - 1, f) > 0);
    fclose(f);
    CHECK(strstr(index, "\"x-custom\":{\"k\":1}") != NULL);

    CASE("wrong size, absent blob, bad names, bad JSON");
    ocicas_descriptor *wrong_size = NULL, *absent = NULL;
    CHECK_OK(ocicas_descriptor_new("application/vnd.example.thing+json", ocicas_descriptor_digest(first), 999, &wrong_size));
    CHECK_STATUS(ocicas_ref_put(engine, "w", wrong_size, false), OCICAS_ERR_SIZE_MISMATCH);
    ocicas_descriptor_free(wrong_size);
    CHECK_OK(ocicas_descriptor_new("a/b", zero_digest, 1, &absent));
    CHECK_STATUS(ocicas_ref_put(engine, "absent", absent, false), OCICAS_ERR_NOT_FOUND);
    ocicas_descriptor_free(absent);
    CHECK_STATUS(ocicas_ref_put_json(engine, "absent",
                                     "{\"mediaType\":\"a/b\",\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000000\",\"size\":1}",
                                     false),
                 OCICAS_ERR_NOT_FOUND);
    const char *bad_names[] = {"", "a//b", ".x", "a b", "x/"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        CHECK_STATUS(ocicas_ref_put(engine, bad_names[i], first, false), OCICAS_ERR_INVALID_ARGUMENT);
        CHECK_MESSAGE("reference name");
    }
    CHECK_STATUS(ocicas_ref_put_json(engine, "j", "{not json", false), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ref_put_json(engine, "j", "{\"mediaType\":\"a/b\",\"digest\":\"sha256:abc\",\"size\":1}", false),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ref_put_json(engine, "j", "{\"mediaType\":\"a/b\",\"digest\":\"sha256:0000000000000000000000000000000000000000000000000000000000000000\",\"size\":-1}", false),
                 OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ref_put(engine, NULL, first, false), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ref_put(engine, "j", NULL, false), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ref_put(NULL, "j", first, false), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ref_put_json(engine, NULL, full, false), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ref_put_json(engine, "j", NULL, false), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("get of an unknown ref is NOT_FOUND; delete is idempotent");
    got = NULL;
    CHECK_STATUS(ocicas_ref_get(engine, "nope", &got), OCICAS_ERR_NOT_FOUND);
    CHECK_MESSAGE("nope");
    CHECK(got == NULL);
    CHECK_STATUS(ocicas_ref_get(NULL, "v1", &got), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ref_get(engine, NULL, &got), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ref_get(engine, "v1", NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(got == NULL);
    CHECK_OK(ocicas_ref_put(engine, "temp", first, false));
    CHECK_OK(ocicas_ref_delete(engine, "temp"));
    CHECK_OK(ocicas_ref_delete(engine, "temp"));
    CHECK_STATUS(ocicas_ref_get(engine, "temp", &got), OCICAS_ERR_NOT_FOUND);

    CASE("list in order, stopping early");
    CHECK_OK(ocicas_ref_put(engine, "v2", first, false));
    struct names all = {0};
    CHECK_OK(ocicas_ref_list(engine, collect, &all));
    CHECK(all.count == 2 && strcmp(all.name[0], "v1") == 0 && strcmp(all.name[1], "v2") == 0);
    struct names one = {.stop_after = 1};
    CHECK_OK(ocicas_ref_list(engine, collect, &one));
    CHECK(one.count == 1);
    CHECK_STATUS(ocicas_ref_list(engine, NULL, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_ref_list(NULL, collect, &all), OCICAS_ERR_INVALID_ARGUMENT);

    CASE("two threads tagging at once lose no update");
    shared_descriptor = first;
    pthread_t a, b;
    CHECK(pthread_create(&a, NULL, tag_many, "left") == 0);
    CHECK(pthread_create(&b, NULL, tag_many, "right") == 0);
    CHECK(pthread_join(a, NULL) == 0 && pthread_join(b, NULL) == 0);
    for (int i = 0; i < 50; i++) {
        char name[64];
        snprintf(name, sizeof name, "left-%d", i);
        CHECK_OK(ocicas_ref_get(engine, name, &got));
        ocicas_descriptor_free(got);
        snprintf(name, sizeof name, "right-%d", i);
        CHECK_OK(ocicas_ref_get(engine, name, &got));
        ocicas_descriptor_free(got);
    }

    CASE("fsck reports a sound layout");
    ocicas_fsck_report *report = NULL;
    CHECK_OK(ocicas_fsck(engine, &report));
    CHECK(ocicas_fsck_report_sound(report) && ocicas_fsck_report_reachable(report) == 2);
    CHECK(ocicas_fsck_report_blobs_checked(report) == 2);
    ocicas_fsck_report_free(report);
    CHECK_STATUS(ocicas_fsck(engine, NULL), OCICAS_ERR_INVALID_ARGUMENT);

    ocicas_descriptor_free(first);
    ocicas_descriptor_free(second);
    ocicas_engine_close(engine);
    remove_tree(root);
    printf("test_ref: all cases passed\n");
    return 0;
}
