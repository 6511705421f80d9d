/* fsck from C: ocicas_fsck_ext with OCICAS_FSCK_DEEP checks layers against their DiffIDs, with
 * OCICAS_FSCK_NO_HASH the structure only (no blob hashed), unknown flags and NULL arguments are
 * INVALID_ARGUMENT, ocicas_fsck is the same check without flags;
 * a tag that names a blob as a document it does not parse as is INVALID_IMAGE. */
#include "test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#define LAYER_TYPE "application/vnd.oci.image.layer.v1.tar"
#define MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"
#define CONFIG_TYPE "application/vnd.oci.image.config.v1+json"

static ocicas_engine *engine;

/* Stores `content`; writes its descriptor of `media_type` as JSON into `json`. */
static void put(const char *media_type, const char *content, char *json, size_t size) {
    char *digest = NULL;
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)content, strlen(content), &digest));
    snprintf(json, size, "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu}", media_type, digest,
             strlen(content));
    ocicas_string_free(digest);
}

/* Tags an image of one plain layer `layer_content` whose config gives it DiffID `diff_id`. */
static void tag_image_with_diff_id(const char *name, const char *layer_content, const char *diff_id) {
    char layer[256], config[256], text[1024];
    put(LAYER_TYPE, layer_content, layer, sizeof layer);
    snprintf(text, sizeof text,
             "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
             diff_id);
    put(CONFIG_TYPE, text, config, sizeof config);
    char manifest[256];
    snprintf(text, sizeof text, "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":%s,\"layers\":[%s]}",
             MANIFEST_TYPE, config, layer);
    put(MANIFEST_TYPE, text, manifest, sizeof manifest);
    CHECK_OK(ocicas_ref_put_json(engine, name, manifest, false));
}

/* Replaces the file of blob `digest` with `text` (a new file: a blob's may be read-only). */
static void replace_blob(const char *layout, const char *digest, const char *text) {
    char blobs[4300], path[4400];
    snprintf(blobs, sizeof blobs, "%s/blobs/sha256", layout);
    snprintf(path, sizeof path, "%s/%s", blobs, digest + strlen("sha256:"));
    CHECK(unlink(path) == 0);
    write_file(blobs, digest + strlen("sha256:"), text);
}

static int sound(uint32_t flags) {
    ocicas_fsck_report *report = NULL;
    CHECK_OK(ocicas_fsck_ext(engine, flags, &report));
    int is_sound = ocicas_fsck_report_sound(report);
    CHECK(is_sound == (ocicas_string_list_count(ocicas_fsck_report_problems(report)) == 0));
    CHECK(ocicas_fsck_report_notes(report) != NULL && ocicas_fsck_report_reachable(report) > 0);
    /* Without hashing no blob is checked; with it, at least the reachable ones. */
    if (flags & OCICAS_FSCK_NO_HASH) CHECK(ocicas_fsck_report_blobs_checked(report) == 0);
    else CHECK(ocicas_fsck_report_blobs_checked(report) >= ocicas_fsck_report_reachable(report));
    ocicas_fsck_report_free(report);
    return is_sound;
}

int main(void) {
    char root[4096], layout[4200];
    engine = new_layout(root, sizeof root, layout, sizeof layout);

    CASE("an image whose layers hash to their DiffIDs is sound, deep or not");
    tag_hello_image(engine, "good");
    CHECK(sound(0) && sound(OCICAS_FSCK_DEEP) && fsck_is_sound(engine));

    CASE("a layer whose DiffID is wrong is found by OCICAS_FSCK_DEEP only");
    const char *wrong = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    tag_image_with_diff_id("liar", "layer bytes", wrong);
    CHECK(sound(0));
    CHECK(!sound(OCICAS_FSCK_DEEP));
    ocicas_fsck_report *report = NULL;
    CHECK_OK(ocicas_fsck_ext(engine, OCICAS_FSCK_DEEP, &report));
    const ocicas_string_list *problems = ocicas_fsck_report_problems(report);
    CHECK(list_mentions(problems, "\"liar\"") && list_mentions(problems, wrong));
    ocicas_fsck_report_free(report);
    CHECK_OK(ocicas_ref_delete(engine, "liar"));

    CASE("OCICAS_FSCK_NO_HASH hashes no blob: a layer changed in place passes it, not a full fsck");
    const char *content = "layer to change";
    char *digest = NULL;
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)content, strlen(content), &digest));
    tag_image_with_diff_id("changed", content, wrong);
    CHECK(sound(0) && sound(OCICAS_FSCK_NO_HASH));
    replace_blob(layout, digest, "LAYER TO CHANGE");
    CHECK(sound(OCICAS_FSCK_NO_HASH) && !sound(0));
    replace_blob(layout, digest, content);
    CHECK_OK(ocicas_ref_delete(engine, "changed"));

    CASE("blobs no ref reaches are counted, and named in a sample");
    report = NULL;
    CHECK_OK(ocicas_fsck_ext(engine, OCICAS_FSCK_NO_HASH, &report));
    const ocicas_string_list *sample = ocicas_fsck_report_unreachable_sample(report);
    CHECK(ocicas_fsck_report_unreachable(report) >= 1 && ocicas_string_list_count(sample) >= 1);
    CHECK(ocicas_string_list_count(sample) <= 10 && list_mentions(sample, digest));
    ocicas_fsck_report_free(report);
    ocicas_string_free(digest);

    CASE("unknown flags and NULL arguments are INVALID_ARGUMENT, and nothing is written");
    report = NULL;
    CHECK_STATUS(ocicas_fsck_ext(engine, 4, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE("flags");
    CHECK(report == NULL);
    CHECK_STATUS(ocicas_fsck_ext(NULL, 0, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_fsck_ext(engine, 0, NULL), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ocicas_fsck(NULL, &report), OCICAS_ERR_INVALID_ARGUMENT);
    CHECK(report == NULL);

    CASE("report accessors and free take NULL");
    ocicas_fsck_report_free(NULL);
    CHECK(!ocicas_fsck_report_sound(NULL) && ocicas_fsck_report_problems(NULL) == NULL);
    CHECK(ocicas_fsck_report_notes(NULL) == NULL && ocicas_fsck_report_blobs_checked(NULL) == 0);
    CHECK(ocicas_fsck_report_reachable(NULL) == 0 && ocicas_fsck_report_unreachable(NULL) == 0);
    CHECK(ocicas_fsck_report_unreachable_sample(NULL) == NULL);

    CASE("a tag naming a blob as a manifest it is not is INVALID_IMAGE; as a layer it is not read");
    char not_a_manifest[256];
    put(MANIFEST_TYPE, "{\"schemaVersion\":2,\"manifests\":[]}", not_a_manifest, sizeof not_a_manifest);
    CHECK_STATUS(ocicas_ref_put_json(engine, "bad", not_a_manifest, true), OCICAS_ERR_INVALID_IMAGE);
    CHECK_MESSAGE("bad");
    ocicas_descriptor *bad = NULL;
    CHECK_STATUS(ocicas_ref_get(engine, "bad", &bad), OCICAS_ERR_NOT_FOUND);
    char as_layer[256];
    put(LAYER_TYPE, "{\"schemaVersion\":2,\"manifests\":[]}", as_layer, sizeof as_layer);
    CHECK_OK(ocicas_ref_put_json(engine, "blob", as_layer, false));
    CHECK(sound(0));

    ocicas_engine_close(engine);
    remove_tree(root);
    printf("ok\n");
    return 0;
}
