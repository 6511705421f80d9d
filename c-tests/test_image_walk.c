/* An image's graph walked (ocicas_image_walk) and its documents read by descriptor
 * (ocicas_document_read): the steps of an index with their depths, parents, platforms and
 * statuses, a callback that stops the walk, every status a step can carry (a missing layer, a
 * layer of another size, a config described as an index or changed in place, nesting past the
 * walk depth), every status of both functions, and the index, manifest and config read as
 * typed values. */
#include "test_util.h"

#include <sys/stat.h>

#define OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define OCI_LAYER "application/vnd.oci.image.layer.v1.tar"

#define MAX_STEPS 16

/* One step as the callback saw it, copied. */
struct step {
    char media_type[128];
    char digest[80];
    char parent[80];
    char platform_os[32];
    uint64_t depth;
    ocicas_status status;
    char message[512];
};

struct steps {
    struct step items[MAX_STEPS];
    size_t count;
    /* The callback returns non-zero once `count` reaches this (0: never). */
    size_t stop_after;
};

static int record_step(const ocicas_descriptor *descriptor, uint64_t depth, const char *parent_digest,
                       ocicas_status blob_status, void *user_data) {
    struct steps *steps = user_data;
    CHECK(steps->count < MAX_STEPS);
    struct step *step = &steps->items[steps->count++];
    snprintf(step->media_type, sizeof step->media_type, "%s", ocicas_descriptor_media_type(descriptor));
    snprintf(step->digest, sizeof step->digest, "%s", ocicas_descriptor_digest(descriptor));
    snprintf(step->parent, sizeof step->parent, "%s", parent_digest ? parent_digest : "");
    const char *os = ocicas_descriptor_platform_os(descriptor);
    snprintf(step->platform_os, sizeof step->platform_os, "%s", os ? os : "");
    step->depth = depth;
    step->status = blob_status;
    snprintf(step->message, sizeof step->message, "%s", blob_status == OCICAS_OK ? "" : ocicas_last_error_message());
    return steps->stop_after != 0 && steps->count >= steps->stop_after;
}

static struct steps walk(ocicas_engine *engine, const char *ref) {
    struct steps steps = {0};
    CHECK_OK(ocicas_image_walk(engine, ref, record_step, &steps));
    return steps;
}

/* The step of `media_type`; exactly one must be there. */
static const struct step *only_step(const struct steps *steps, const char *media_type) {
    const struct step *found = NULL;
    for (size_t i = 0; i < steps->count; i++) {
        if (strcmp(steps->items[i].media_type, media_type) != 0) continue;
        CHECK(found == NULL);
        found = &steps->items[i];
    }
    CHECK(found != NULL);
    return found;
}

/* Stores `json` of `media_type` and tags it `ref`. */
static void tag_json(ocicas_engine *engine, const char *ref, const char *media_type, const char *json) {
    ocicas_descriptor *descriptor = NULL;
    CHECK_OK(ocicas_blob_put_json(engine, media_type, json, &descriptor));
    char text[512];
    descriptor_json(descriptor, text, sizeof text);
    ocicas_descriptor_free(descriptor);
    CHECK_OK(ocicas_ref_put_json(engine, ref, text, false));
}

/* Tags `ref` as a manifest over the config and the one layer these descriptors describe. */
static void tag_manifest(ocicas_engine *engine, const char *ref, const char *config_json, const char *layer_json) {
    char manifest[2048];
    snprintf(manifest, sizeof manifest, "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":%s,\"layers\":[%s]}",
             OCI_MANIFEST, config_json, layer_json);
    tag_json(engine, ref, OCI_MANIFEST, manifest);
}

/* Tags "multi": an OCI index whose one entry is `app`'s manifest, for linux/amd64. */
static void tag_index(ocicas_engine *engine, const ocicas_image *app) {
    const ocicas_descriptor *manifest = ocicas_image_manifest(app);
    char index[1024];
    snprintf(index, sizeof index,
             "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
             "\"size\":%llu,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}],"
             "\"annotations\":{\"made.by\":\"test_image_walk\"}}",
             OCI_INDEX, ocicas_descriptor_media_type(manifest), ocicas_descriptor_digest(manifest),
             (unsigned long long)ocicas_descriptor_size(manifest));
    tag_json(engine, "multi", OCI_INDEX, index);
}

static void test_walk_of_an_index(ocicas_engine *engine, const ocicas_image *app) {
    CASE("walk_of_an_index");
    struct steps steps = walk(engine, "multi");
    CHECK(steps.count == 4);
    const struct step *index = &steps.items[0];
    CHECK(strcmp(index->media_type, OCI_INDEX) == 0 && index->depth == 0 && index->parent[0] == '\0');
    const struct step *manifest = only_step(&steps, OCI_MANIFEST);
    CHECK(manifest->depth == 1 && strcmp(manifest->parent, index->digest) == 0);
    CHECK(strcmp(manifest->digest, ocicas_descriptor_digest(ocicas_image_manifest(app))) == 0);
    CHECK(strcmp(manifest->platform_os, "linux") == 0);
    const struct step *config = only_step(&steps, OCI_CONFIG);
    CHECK(config->depth == 2 && strcmp(config->parent, manifest->digest) == 0);
    const struct step *layer = &steps.items[2];
    CHECK(strcmp(layer->digest, ocicas_descriptor_digest(ocicas_image_layer(app, 0))) == 0);
    CHECK(layer->depth == 2 && strcmp(layer->parent, manifest->digest) == 0);
    for (size_t i = 0; i < steps.count; i++) CHECK(steps.items[i].status == OCICAS_OK);
}

static void test_callback_stops_the_walk_with_ok(ocicas_engine *engine) {
    CASE("callback_stops_the_walk_with_ok");
    struct steps steps = {0};
    steps.stop_after = 2;
    CHECK_OK(ocicas_image_walk(engine, "multi", record_step, &steps));
    CHECK(steps.count == 2);
}

static void test_walk_statuses(ocicas_engine *engine) {
    CASE("walk_statuses");
    struct steps steps = {0};
    CHECK_STATUS(ocicas_image_walk(NULL, "multi", record_step, &steps), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_image_walk(engine, NULL, record_step, &steps), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_image_walk(engine, "multi", NULL, &steps), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("callback");
    CHECK_STATUS(ocicas_image_walk(engine, "bad ref name!", record_step, &steps), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_image_walk(engine, "nothing", record_step, &steps), OCICAS_ERR_NOT_FOUND);
    CHECK(steps.count == 0);
}

/* A manifest's layer that is not stored is a step with OCICAS_ERR_NOT_FOUND, and the walk goes on. */
static void test_missing_layer_is_a_not_found_step(ocicas_engine *engine, const ocicas_image *app) {
    CASE("missing_layer_is_a_not_found_step");
    char config[512], layer[512];
    descriptor_json(ocicas_image_config(app), config, sizeof config);
    snprintf(layer, sizeof layer, "{\"mediaType\":\"%s\",\"digest\":\"sha256:%064d\",\"size\":3}", OCI_LAYER, 0);
    tag_manifest(engine, "missing", config, layer);
    struct steps steps = walk(engine, "missing");
    CHECK(steps.count == 3);
    const struct step *missing = only_step(&steps, OCI_LAYER);
    CHECK(missing->status == OCICAS_ERR_NOT_FOUND && missing->depth == 1);
    CHECK(strstr(missing->message, "is missing") != NULL);
    CHECK(only_step(&steps, OCI_CONFIG)->status == OCICAS_OK);
}

static void test_layer_of_another_size_is_a_size_mismatch_step(ocicas_engine *engine, const ocicas_image *app) {
    CASE("layer_of_another_size_is_a_size_mismatch_step");
    const ocicas_descriptor *stored = ocicas_image_layer(app, 0);
    char config[512], layer[512];
    descriptor_json(ocicas_image_config(app), config, sizeof config);
    snprintf(layer, sizeof layer, "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%llu}",
             ocicas_descriptor_media_type(stored), ocicas_descriptor_digest(stored),
             (unsigned long long)ocicas_descriptor_size(stored) + 1);
    tag_manifest(engine, "resized", config, layer);
    struct steps steps = walk(engine, "resized");
    CHECK(only_step(&steps, ocicas_descriptor_media_type(stored))->status == OCICAS_ERR_SIZE_MISMATCH);
}

static void test_config_described_as_an_index_is_an_invalid_image_step(ocicas_engine *engine,
                                                                       const ocicas_image *app) {
    CASE("config_described_as_an_index_is_an_invalid_image_step");
    const ocicas_descriptor *config = ocicas_image_config(app);
    char as_index[512], layer[512];
    snprintf(as_index, sizeof as_index, "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%llu}", OCI_INDEX,
             ocicas_descriptor_digest(config), (unsigned long long)ocicas_descriptor_size(config));
    descriptor_json(ocicas_image_layer(app, 0), layer, sizeof layer);
    tag_manifest(engine, "miscast", as_index, layer);
    struct steps steps = walk(engine, "miscast");
    const struct step *step = only_step(&steps, OCI_INDEX);
    CHECK(step->status == OCICAS_ERR_INVALID_IMAGE && step->depth == 1);
}

/* With a walk depth of 1 the manifest under the index is a step, but not its config or layer. */
static void test_nesting_past_the_walk_depth_is_a_too_large_step(const char *layout) {
    CASE("nesting_past_the_walk_depth_is_a_too_large_step");
    ocicas_engine *shallow = NULL;
    CHECK_OK(ocicas_engine_open(layout, 0, &shallow));
    CHECK_OK(ocicas_engine_set_limit(shallow, OCICAS_LIMIT_WALK_DEPTH, 1));
    struct steps steps = walk(shallow, "multi");
    CHECK(steps.count == 2);
    CHECK(steps.items[0].status == OCICAS_OK);
    CHECK(steps.items[1].status == OCICAS_ERR_TOO_LARGE && strstr(steps.items[1].message, "walk depth") != NULL);
    ocicas_engine_close(shallow);
}

static ocicas_document *read_ok(ocicas_engine *engine, const ocicas_descriptor *descriptor,
                                ocicas_document_kind kind) {
    ocicas_document *document = NULL;
    CHECK_OK(ocicas_document_read(engine, descriptor, &document));
    CHECK(ocicas_document_get_kind(document) == kind);
    return document;
}

static void test_read_index(ocicas_engine *engine, const ocicas_image *app) {
    CASE("read_index");
    ocicas_descriptor *descriptor = NULL;
    CHECK_OK(ocicas_ref_get(engine, "multi", &descriptor));
    ocicas_document *index = read_ok(engine, descriptor, OCICAS_DOCUMENT_INDEX);
    CHECK(ocicas_document_manifest_count(index) == 1 && ocicas_document_manifest(index, 1) == NULL);
    const ocicas_descriptor *entry = ocicas_document_manifest(index, 0);
    CHECK(strcmp(ocicas_descriptor_digest(entry), ocicas_descriptor_digest(ocicas_image_manifest(app))) == 0);
    CHECK(strcmp(ocicas_descriptor_platform_architecture(entry), "amd64") == 0);
    CHECK(strcmp(key_value(ocicas_document_annotations(index), "made.by"), "test_image_walk") == 0);
    CHECK(ocicas_document_subject(index) == NULL);
    CHECK(ocicas_document_config_descriptor(index) == NULL && ocicas_document_layer_count(index) == 0);
    CHECK(ocicas_document_layer(index, 0) == NULL && ocicas_document_config(index) == NULL);
    ocicas_document_free(index);
    ocicas_descriptor_free(descriptor);
}

static void test_read_manifest(ocicas_engine *engine, const ocicas_image *app) {
    CASE("read_manifest");
    ocicas_document *manifest = read_ok(engine, ocicas_image_manifest(app), OCICAS_DOCUMENT_MANIFEST);
    CHECK(strcmp(ocicas_descriptor_digest(ocicas_document_config_descriptor(manifest)),
                 ocicas_descriptor_digest(ocicas_image_config(app))) == 0);
    CHECK(ocicas_document_layer_count(manifest) == 1 && ocicas_document_layer(manifest, 1) == NULL);
    CHECK(strcmp(ocicas_descriptor_digest(ocicas_document_layer(manifest, 0)),
                 ocicas_descriptor_digest(ocicas_image_layer(app, 0))) == 0);
    CHECK(ocicas_document_annotations(manifest) != NULL && ocicas_document_manifest_count(manifest) == 0);
    CHECK(ocicas_document_config(manifest) == NULL);
    ocicas_document_free(manifest);
}

/* A config read alone gives what the resolved image's config gives, and the fields only a
 * full runtime config has. */
static void test_read_config(ocicas_engine *engine, const ocicas_image *app) {
    CASE("read_config");
    ocicas_document *document = read_ok(engine, ocicas_image_config(app), OCICAS_DOCUMENT_CONFIG);
    const ocicas_config *config = ocicas_document_config(document);
    const ocicas_config *resolved = ocicas_image_parsed_config(app);
    CHECK(config != NULL && config != resolved);
    CHECK(strcmp(ocicas_config_os(config), ocicas_config_os(resolved)) == 0);
    CHECK(strcmp(ocicas_config_architecture(config), ocicas_config_architecture(resolved)) == 0);
    CHECK(ocicas_string_list_count(ocicas_config_diff_ids(config)) == 1);
    CHECK(strcmp(ocicas_string_list_get(ocicas_config_diff_ids(config), 0),
                 ocicas_string_list_get(ocicas_config_diff_ids(resolved), 0)) == 0);
    CHECK(ocicas_document_annotations(document) == NULL && ocicas_document_manifest_count(document) == 0);
    ocicas_document_free(document);

    const char *full =
        "{\"architecture\":\"arm64\",\"variant\":\"v8\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]},"
        "\"config\":{\"Env\":[\"A=1\"],\"Entrypoint\":[\"/init\"],\"Cmd\":null,\"WorkingDir\":\"/w\",\"User\":\"nobody\","
        "\"Labels\":{\"k\":\"v\"},\"ExposedPorts\":{\"80/tcp\":{},\"53/udp\":{}},\"Volumes\":{\"/data\":{}},"
        "\"StopSignal\":\"SIGINT\"}}";
    ocicas_descriptor *descriptor = NULL;
    CHECK_OK(ocicas_blob_put_json(engine, OCI_CONFIG, full, &descriptor));
    document = read_ok(engine, descriptor, OCICAS_DOCUMENT_CONFIG);
    config = ocicas_document_config(document);
    CHECK(strcmp(ocicas_config_variant(config), "v8") == 0);
    CHECK(strcmp(ocicas_string_list_get(ocicas_config_env(config), 0), "A=1") == 0);
    CHECK(strcmp(ocicas_string_list_get(ocicas_config_entrypoint(config), 0), "/init") == 0);
    CHECK(ocicas_string_list_count(ocicas_config_cmd(config)) == 0);
    CHECK(strcmp(ocicas_config_working_dir(config), "/w") == 0 && strcmp(ocicas_config_user(config), "nobody") == 0);
    CHECK(strcmp(key_value(ocicas_config_labels(config), "k"), "v") == 0);
    const ocicas_string_list *ports = ocicas_config_exposed_ports(config);
    CHECK(ocicas_string_list_count(ports) == 2 && strcmp(ocicas_string_list_get(ports, 0), "53/udp") == 0);
    CHECK(strcmp(ocicas_string_list_get(ocicas_config_volumes(config), 0), "/data") == 0);
    CHECK(strcmp(ocicas_config_stop_signal(config), "SIGINT") == 0);
    ocicas_document_free(document);
    ocicas_descriptor_free(descriptor);
}

static void check_read_status(ocicas_engine *engine, const char *media_type, const char *digest, uint64_t size,
                              ocicas_status expected) {
    ocicas_descriptor *descriptor = NULL;
    CHECK_OK(ocicas_descriptor_new(media_type, digest, size, &descriptor));
    ocicas_document *document = NULL;
    CHECK_STATUS(ocicas_document_read(engine, descriptor, &document), expected);
    CHECK(document == NULL);
    ocicas_descriptor_free(descriptor);
}

static void test_read_statuses(ocicas_engine *engine, const ocicas_image *app, const char *layout) {
    CASE("read_statuses");
    const ocicas_descriptor *manifest = ocicas_image_manifest(app);
    const char *digest = ocicas_descriptor_digest(manifest);
    uint64_t size = ocicas_descriptor_size(manifest);
    ocicas_document *document = NULL;
    CHECK_STATUS(ocicas_document_read(NULL, manifest, &document), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_document_read(engine, NULL, &document), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_document_read(engine, manifest, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    ocicas_descriptor *descriptor = NULL;
    CHECK_STATUS(ocicas_descriptor_new(OCI_MANIFEST, "sha256:abc", 1, &descriptor), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_descriptor_new("", digest, 1, &descriptor), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_descriptor_new(NULL, digest, 1, &descriptor), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_descriptor_new(OCI_MANIFEST, digest, 1, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(descriptor == NULL);

    const ocicas_descriptor *layer = ocicas_image_layer(app, 0);
    CHECK_STATUS(ocicas_document_read(engine, layer, &document), OCICAS_ERR_UNSUPPORTED_MEDIA_TYPE);
    /* An artifact manifest parses, but has no typed C result. */
    const char *artifact_type = "application/vnd.oci.artifact.manifest.v1+json";
    char artifact[256];
    snprintf(artifact, sizeof artifact, "{\"mediaType\":\"%s\",\"artifactType\":\"text/plain\",\"blobs\":[]}",
             artifact_type);
    ocicas_descriptor *artifact_descriptor = NULL;
    CHECK_OK(ocicas_blob_put_json(engine, artifact_type, artifact, &artifact_descriptor));
    CHECK_STATUS(ocicas_document_read(engine, artifact_descriptor, &document), OCICAS_ERR_UNSUPPORTED_MEDIA_TYPE);
    ocicas_descriptor_free(artifact_descriptor);
    char absent[80];
    snprintf(absent, sizeof absent, "sha256:%064d", 0);
    check_read_status(engine, OCI_MANIFEST, absent, 10, OCICAS_ERR_NOT_FOUND);
    check_read_status(engine, OCI_MANIFEST, digest, size + 1, OCICAS_ERR_SIZE_MISMATCH);
    check_read_status(engine, OCI_MANIFEST, digest, (uint64_t)1 << 40, OCICAS_ERR_TOO_LARGE);
    check_read_status(engine, OCI_INDEX, digest, size, OCICAS_ERR_INVALID_IMAGE);
    const char *bad_runtime = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]},"
                              "\"config\":{\"Env\":\"not a list\"}}";
    CHECK_OK(ocicas_blob_put_json(engine, OCI_CONFIG, bad_runtime, &descriptor));
    CHECK_STATUS(ocicas_document_read(engine, descriptor, &document), OCICAS_ERR_INVALID_IMAGE);
    ocicas_descriptor_free(descriptor);

    /* A stored blob whose bytes were changed in place, keeping its size. */
    CHECK_OK(ocicas_blob_put_json(engine, OCI_CONFIG, "{\"architecture\":\"amd64\",\"os\":\"plan9\","
                                                      "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", &descriptor));
    char path[4600];
    snprintf(path, sizeof path, "%s/blobs/sha256/%s", layout, ocicas_descriptor_digest(descriptor) + strlen("sha256:"));
    CHECK(chmod(path, 0644) == 0);
    FILE *blob = fopen(path, "r+");
    CHECK(blob != NULL);
    CHECK(fseek(blob, 40, SEEK_SET) == 0 && fputc('X', blob) == 'X');
    fclose(blob);
    CHECK_STATUS(ocicas_document_read(engine, descriptor, &document), OCICAS_ERR_DIGEST_MISMATCH);
    CHECK(document == NULL);

    /* The walk gives the same blob, as a manifest's config, as a step with that status. */
    char config[512], layer_json[512];
    descriptor_json(descriptor, config, sizeof config);
    descriptor_json(layer, layer_json, sizeof layer_json);
    tag_manifest(engine, "corrupt", config, layer_json);
    struct steps steps = walk(engine, "corrupt");
    CHECK(steps.count == 3 && only_step(&steps, OCI_CONFIG)->status == OCICAS_ERR_DIGEST_MISMATCH);
    ocicas_descriptor_free(descriptor);
}

static void test_accessors_on_null(void) {
    CASE("accessors_on_null");
    CHECK(ocicas_document_get_kind(NULL) == OCICAS_DOCUMENT_NONE);
    CHECK(ocicas_document_annotations(NULL) == NULL && ocicas_document_subject(NULL) == NULL);
    CHECK(ocicas_document_manifest_count(NULL) == 0 && ocicas_document_manifest(NULL, 0) == NULL);
    CHECK(ocicas_document_config_descriptor(NULL) == NULL && ocicas_document_layer_count(NULL) == 0);
    CHECK(ocicas_document_layer(NULL, 0) == NULL && ocicas_document_config(NULL) == NULL);
    CHECK(ocicas_config_os(NULL) == NULL && ocicas_config_architecture(NULL) == NULL);
    CHECK(ocicas_config_variant(NULL) == NULL && ocicas_config_diff_ids(NULL) == NULL);
    CHECK(ocicas_config_env(NULL) == NULL && ocicas_config_cmd(NULL) == NULL && ocicas_config_entrypoint(NULL) == NULL);
    CHECK(ocicas_config_working_dir(NULL) == NULL && ocicas_config_user(NULL) == NULL);
    CHECK(ocicas_config_labels(NULL) == NULL && ocicas_config_exposed_ports(NULL) == NULL);
    CHECK(ocicas_config_volumes(NULL) == NULL && ocicas_config_stop_signal(NULL) == NULL);
    ocicas_document_free(NULL);
}

int main(void) {
    char root[4096], layout[4200];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);
    tag_hello_image(engine, "app");
    ocicas_image *app = NULL;
    CHECK_OK(ocicas_image_resolve(engine, "app", NULL, &app));
    tag_index(engine, app);

    test_walk_of_an_index(engine, app);
    test_callback_stops_the_walk_with_ok(engine);
    test_walk_statuses(engine);
    test_missing_layer_is_a_not_found_step(engine, app);
    test_layer_of_another_size_is_a_size_mismatch_step(engine, app);
    test_config_described_as_an_index_is_an_invalid_image_step(engine, app);
    test_nesting_past_the_walk_depth_is_a_too_large_step(layout);
    test_read_index(engine, app);
    test_read_manifest(engine, app);
    test_read_config(engine, app);
    test_read_statuses(engine, app, layout);
    test_accessors_on_null();

    ocicas_image_free(app);
    ocicas_engine_close(engine);
    remove_tree(root);
    printf("ok\n");
    return 0;
}
