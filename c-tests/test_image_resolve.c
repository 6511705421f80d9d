/* Images resolved for a platform as typed values: a single manifest, an OCI index and a Docker
 * manifest list with several platforms, the platform asked for or the host's, every status of
 * ocicas_image_resolve (NULL arguments, unknown ref, no manifest for the platform, a ref that
 * is no image), the accessors on NULL and past the end, and a layer opened from what they give. */
#include "test_util.h"

#define OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

/* Stores an image over `base`'s layer whose config is for linux/`architecture` with a full
 * runtime config; returns its manifest's descriptor (free with ocicas_descriptor_free). */
static ocicas_descriptor *store_image_for(ocicas_engine *engine, const ocicas_image *base, const char *architecture) {
    const ocicas_descriptor *layer = ocicas_image_layer(base, 0);
    char config[2048], manifest[2048];
    snprintf(config, sizeof config,
             "{\"architecture\":\"%s\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]},"
             "\"config\":{\"Env\":[\"PATH=/bin\",\"ARCH=%s\"],\"Cmd\":[\"/bin/sh\",\"-c\",\"true\"],"
             "\"Entrypoint\":null,\"WorkingDir\":\"/srv\",\"User\":\"1000:1000\",\"Labels\":{\"b\":\"2\",\"a\":\"1\"}}}",
             architecture, ocicas_string_list_get(ocicas_config_diff_ids(ocicas_image_parsed_config(base)), 0),
             architecture);
    ocicas_descriptor *config_descriptor = NULL;
    CHECK_OK(ocicas_blob_put_json(engine, "application/vnd.oci.image.config.v1+json", config, &config_descriptor));
    CHECK(strcmp(ocicas_descriptor_media_type(config_descriptor), "application/vnd.oci.image.config.v1+json") == 0);
    char config_json[512];
    descriptor_json(config_descriptor, config_json, sizeof config_json);
    ocicas_descriptor_free(config_descriptor);
    snprintf(manifest, sizeof manifest,
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":%s,"
             "\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%llu}]}",
             config_json, ocicas_descriptor_media_type(layer), ocicas_descriptor_digest(layer),
             (unsigned long long)ocicas_descriptor_size(layer));
    ocicas_descriptor *descriptor = NULL;
    CHECK_OK(ocicas_blob_put_json(engine, "application/vnd.oci.image.manifest.v1+json", manifest, &descriptor));
    return descriptor;
}

/* `descriptor` JSON with a platform (and an annotation) added, in `out`. */
static void with_platform(char *out, size_t size, const char *descriptor, const char *os, const char *architecture) {
    snprintf(out, size, "%.*s,\"platform\":{\"os\":\"%s\",\"architecture\":\"%s\"},\"annotations\":{\"arch\":\"%s\"}}",
             (int)(strlen(descriptor) - 1), descriptor, os, architecture, architecture);
}

/* Tags `ref` as an index of `media_type` over the host image and a linux/riscv64 one. */
static void tag_index(ocicas_engine *engine, const char *ref, const char *media_type, const ocicas_image *host) {
    ocicas_descriptor *riscv = store_image_for(engine, host, "riscv64");
    char riscv_json[512];
    descriptor_json(riscv, riscv_json, sizeof riscv_json);
    ocicas_descriptor_free(riscv);
    const ocicas_descriptor *host_manifest = ocicas_image_manifest(host);
    const ocicas_config *host_config = ocicas_image_parsed_config(host);
    char host_entry[1024], riscv_entry[1024], index[4096];
    snprintf(host_entry, sizeof host_entry,
             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%llu,\"platform\":{\"os\":\"%s\",\"architecture\":\"%s\"}}",
             ocicas_descriptor_media_type(host_manifest), ocicas_descriptor_digest(host_manifest),
             (unsigned long long)ocicas_descriptor_size(host_manifest), ocicas_config_os(host_config),
             ocicas_config_architecture(host_config));
    with_platform(riscv_entry, sizeof riscv_entry, riscv_json, "linux", "riscv64");
    snprintf(index, sizeof index, "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[%s,%s]}", media_type,
             host_entry, riscv_entry);
    ocicas_descriptor *descriptor = NULL;
    CHECK_OK(ocicas_blob_put_json(engine, media_type, index, &descriptor));
    CHECK_OK(ocicas_ref_put(engine, ref, descriptor, false));
    ocicas_descriptor_free(descriptor);
}

static void check_strings(const ocicas_string_list *list, size_t count, const char *const *expected) {
    CHECK(ocicas_string_list_count(list) == count);
    for (size_t i = 0; i < count; i++) CHECK(strcmp(ocicas_string_list_get(list, i), expected[i]) == 0);
    CHECK(ocicas_string_list_get(list, count) == NULL);
}

/* The riscv64 image of `tag_index`, as resolved: platform, runtime config, annotations. */
static void check_riscv_image(const ocicas_image *image) {
    const ocicas_config *config = ocicas_image_parsed_config(image);
    CHECK(strcmp(ocicas_config_os(config), "linux") == 0);
    CHECK(strcmp(ocicas_config_architecture(config), "riscv64") == 0);
    CHECK(ocicas_config_variant(config) == NULL);
    const ocicas_descriptor *manifest = ocicas_image_manifest(image);
    CHECK(strcmp(ocicas_descriptor_platform_architecture(manifest), "riscv64") == 0);
    CHECK(strcmp(ocicas_descriptor_platform_os(manifest), "linux") == 0);
    CHECK(ocicas_descriptor_platform_variant(manifest) == NULL);
    const ocicas_key_value_list *annotations = ocicas_descriptor_annotations(manifest);
    CHECK(ocicas_key_value_list_count(annotations) == 1);
    CHECK(strcmp(ocicas_key_value_list_key(annotations, 0), "arch") == 0);
    CHECK(strcmp(ocicas_key_value_list_value(annotations, 0), "riscv64") == 0);
    const char *const env[] = {"PATH=/bin", "ARCH=riscv64"};
    check_strings(ocicas_config_env(config), 2, env);
    const char *const cmd[] = {"/bin/sh", "-c", "true"};
    check_strings(ocicas_config_cmd(config), 3, cmd);
    check_strings(ocicas_config_entrypoint(config), 0, NULL);
    CHECK(strcmp(ocicas_config_working_dir(config), "/srv") == 0);
    CHECK(strcmp(ocicas_config_user(config), "1000:1000") == 0);
    const ocicas_key_value_list *labels = ocicas_config_labels(config);
    CHECK(ocicas_key_value_list_count(labels) == 2);
    CHECK(strcmp(ocicas_key_value_list_key(labels, 0), "a") == 0);
    CHECK(strcmp(ocicas_key_value_list_value(labels, 1), "2") == 0);
    CHECK(ocicas_key_value_list_key(labels, 2) == NULL && ocicas_key_value_list_value(labels, 2) == NULL);
    CHECK(ocicas_image_layer_count(image) == 1);
    CHECK(strncmp(ocicas_descriptor_digest(ocicas_image_config(image)), "sha256:", 7) == 0);
}

static void test_null_arguments(ocicas_engine *engine) {
    CASE("null_arguments");
    ocicas_image *image = NULL;
    CHECK_STATUS(ocicas_image_resolve(NULL, "app", NULL, &image), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_image_resolve(engine, NULL, NULL, &image), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_image_resolve(engine, "app", NULL, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    ocicas_platform no_os = {NULL, "amd64", NULL};
    CHECK_STATUS(ocicas_image_resolve(engine, "app", &no_os, &image), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("platform.os");
    ocicas_platform no_architecture = {"linux", NULL, NULL};
    CHECK_STATUS(ocicas_image_resolve(engine, "app", &no_architecture, &image), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_image_resolve(engine, "bad ref name!", NULL, &image), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(image == NULL);
    CHECK(ocicas_image_manifest(NULL) == NULL && ocicas_image_config(NULL) == NULL);
    CHECK(ocicas_image_layer_count(NULL) == 0 && ocicas_image_layer(NULL, 0) == NULL);
    CHECK(ocicas_image_parsed_config(NULL) == NULL);
    CHECK(ocicas_descriptor_media_type(NULL) == NULL && ocicas_descriptor_digest(NULL) == NULL);
    CHECK(ocicas_descriptor_size(NULL) == 0 && ocicas_descriptor_annotations(NULL) == NULL);
    CHECK(ocicas_descriptor_platform_os(NULL) == NULL && ocicas_descriptor_platform_architecture(NULL) == NULL);
    CHECK(ocicas_descriptor_platform_variant(NULL) == NULL);
    CHECK(ocicas_string_list_count(NULL) == 0 && ocicas_string_list_get(NULL, 0) == NULL);
    CHECK(ocicas_key_value_list_count(NULL) == 0 && ocicas_key_value_list_key(NULL, 0) == NULL);
    CHECK(ocicas_key_value_list_value(NULL, 0) == NULL);
    ocicas_image_free(NULL);
}

static void test_unknown_ref_is_not_found(ocicas_engine *engine) {
    CASE("unknown_ref_is_not_found");
    ocicas_image *image = NULL;
    CHECK_STATUS(ocicas_image_resolve(engine, "nothing", NULL, &image), OCICAS_ERR_NOT_FOUND);
    CHECK(image == NULL);
}

/* The single-manifest image `app`: host platform, its layer read through to the end. */
static void test_single_manifest(ocicas_engine *engine, ocicas_image *app) {
    CASE("single_manifest");
    const ocicas_config *config = ocicas_image_parsed_config(app);
    CHECK(ocicas_image_layer_count(app) == 1);
    CHECK(ocicas_image_layer(app, 1) == NULL);
    CHECK(ocicas_string_list_count(ocicas_config_diff_ids(config)) == 1);
    CHECK(ocicas_descriptor_platform_os(ocicas_image_manifest(app)) == NULL);
    CHECK(ocicas_string_list_count(ocicas_config_env(config)) == 0);
    CHECK(strcmp(ocicas_config_working_dir(config), "") == 0);
    const ocicas_descriptor *layer = ocicas_image_layer(app, 0);
    ocicas_layer_reader *reader = NULL;
    CHECK_OK(ocicas_layer_reader_open(engine, ocicas_descriptor_media_type(layer), ocicas_descriptor_digest(layer),
                                      ocicas_descriptor_size(layer),
                                      ocicas_string_list_get(ocicas_config_diff_ids(config), 0), &reader));
    uint8_t buf[4096];
    size_t total = 0, n = 0;
    do {
        CHECK_OK(ocicas_layer_reader_read(reader, buf, sizeof buf, &n));
        total += n;
    } while (n > 0);
    CHECK(total == 2048);
    ocicas_layer_reader_free(reader);

    ocicas_platform host = {ocicas_config_os(config), ocicas_config_architecture(config), NULL};
    ocicas_image *again = NULL;
    CHECK_OK(ocicas_image_resolve(engine, "app", &host, &again));
    CHECK(strcmp(ocicas_descriptor_digest(ocicas_image_manifest(again)),
                 ocicas_descriptor_digest(ocicas_image_manifest(app))) == 0);
    ocicas_image_free(again);
}

static void test_platform_mismatch_is_not_found(ocicas_engine *engine) {
    CASE("platform_mismatch_is_not_found");
    ocicas_platform plan9 = {"plan9", "mips", NULL};
    ocicas_image *image = NULL;
    CHECK_STATUS(ocicas_image_resolve(engine, "app", &plan9, &image), OCICAS_ERR_NOT_FOUND);
    CHECK_MESSAGE("plan9/mips");
    CHECK_STATUS(ocicas_image_resolve(engine, "multi", &plan9, &image), OCICAS_ERR_NOT_FOUND);
    CHECK_MESSAGE("linux/riscv64");
    ocicas_platform riscv_v2 = {"linux", "riscv64", "v2"};
    CHECK_STATUS(ocicas_image_resolve(engine, "multi", &riscv_v2, &image), OCICAS_ERR_NOT_FOUND);
    CHECK(image == NULL);
}

/* Index `ref` of `tag_index`: the platform asked for, or the host's when none is. */
static void check_index(ocicas_engine *engine, const char *ref, const ocicas_image *app) {
    ocicas_platform riscv = {"linux", "riscv64", NULL};
    ocicas_image *image = NULL;
    CHECK_OK(ocicas_image_resolve(engine, ref, &riscv, &image));
    check_riscv_image(image);
    ocicas_image_free(image);
    CHECK_OK(ocicas_image_resolve(engine, ref, NULL, &image));
    CHECK(strcmp(ocicas_descriptor_digest(ocicas_image_manifest(image)),
                 ocicas_descriptor_digest(ocicas_image_manifest(app))) == 0);
    CHECK(strcmp(ocicas_descriptor_platform_os(ocicas_image_manifest(image)),
                 ocicas_config_os(ocicas_image_parsed_config(app))) == 0);
    ocicas_image_free(image);
}

static void test_index_with_several_platforms(ocicas_engine *engine, const ocicas_image *app) {
    CASE("index_with_several_platforms");
    check_index(engine, "multi", app);
}

static void test_docker_manifest_list(ocicas_engine *engine, const ocicas_image *app) {
    CASE("docker_manifest_list");
    tag_index(engine, "list", DOCKER_LIST, app);
    check_index(engine, "list", app);
}

static void test_ref_to_a_config_is_invalid_image(ocicas_engine *engine, const ocicas_image *app) {
    CASE("ref_to_a_config_is_invalid_image");
    CHECK_OK(ocicas_ref_put(engine, "config", ocicas_image_config(app), false));
    ocicas_image *image = NULL;
    CHECK_STATUS(ocicas_image_resolve(engine, "config", NULL, &image), OCICAS_ERR_INVALID_IMAGE);
    CHECK(image == NULL);
}

int main(void) {
    char root[4096], layout[4200];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);
    tag_hello_image(engine, "app");
    ocicas_image *app = NULL;
    CHECK_OK(ocicas_image_resolve(engine, "app", NULL, &app));
    tag_index(engine, "multi", OCI_INDEX, app);

    test_null_arguments(engine);
    test_unknown_ref_is_not_found(engine);
    test_single_manifest(engine, app);
    test_platform_mismatch_is_not_found(engine);
    test_index_with_several_platforms(engine, app);
    test_docker_manifest_list(engine, app);
    test_ref_to_a_config_is_invalid_image(engine, app);

    ocicas_image_free(app);
    ocicas_engine_close(engine);
    remove_tree(root);
    printf("ok\n");
    return 0;
}
