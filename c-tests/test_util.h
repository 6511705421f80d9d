/* Helpers shared by the C test programs: temp layouts, checks that report file:line, the
 * expected and actual status and the library's message. */
#ifndef OCICAS_TEST_UTIL_H
#define OCICAS_TEST_UTIL_H

#include <ocicas.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, ocicas_last_error_message());                                      \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

#define CHECK_STATUS(expr, expected)                                                          \
    do {                                                                                      \
        ocicas_status status_ = (expr);                                                       \
        if (status_ != (expected)) {                                                          \
            fprintf(stderr, "%s:%d: %s returned %u, expected %s (%u); last error: %s\n",      \
                    __FILE__, __LINE__, #expr, (unsigned)status_, #expected,                   \
                    (unsigned)(expected), ocicas_last_error_message());                        \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, OCICAS_OK)

/* The last error message mentions `needle`. */
#define CHECK_MESSAGE(needle) CHECK(strstr(ocicas_last_error_message(), (needle)) != NULL)

#define CASE(name) printf("case %s\n", name)

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

/* The number after "name": in a JSON report (the first such key). */
static inline long json_number(const char *report, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *at = strstr(report, key);
    CHECK(at != NULL);
    return strtol(at + strlen(key), NULL, 10);
}

/* `descriptor`'s media type, digest and size as descriptor JSON, as a manifest lists it. */
static inline void descriptor_json(const ocicas_descriptor *descriptor, char *out, size_t size) {
    snprintf(out, size, "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%llu}",
             ocicas_descriptor_media_type(descriptor), ocicas_descriptor_digest(descriptor),
             (unsigned long long)ocicas_descriptor_size(descriptor));
}

/* The value of `key` in `list`, or NULL. */
static inline const char *key_value(const ocicas_key_value_list *list, const char *key) {
    for (size_t i = 0; i < ocicas_key_value_list_count(list); i++) {
        if (strcmp(ocicas_key_value_list_key(list, i), key) == 0) return ocicas_key_value_list_value(list, i);
    }
    return NULL;
}

/* The items of `list` joined with ',' into `out`. */
static inline const char *join_list(const ocicas_string_list *list, char *out, size_t size) {
    out[0] = '\0';
    for (size_t i = 0; i < ocicas_string_list_count(list); i++) {
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%s", i == 0 ? "" : ",", ocicas_string_list_get(list, i));
    }
    return out;
}

/* Whether an import stored exactly one image, tagged with the refs `refs` (joined by ','). */
static inline int imported_one_with_refs(const ocicas_imported_images *images, const char *refs) {
    char joined[512];
    const ocicas_imported_image *image = ocicas_imported_images_get(images, 0);
    return ocicas_imported_images_count(images) == 1 &&
           strcmp(join_list(ocicas_imported_image_refs(image), joined, sizeof joined), refs) == 0 &&
           strncmp(ocicas_descriptor_digest(ocicas_imported_image_manifest(image)), "sha256:", 7) == 0;
}

/* Whether an item of `list` contains `needle`. */
static inline int list_mentions(const ocicas_string_list *list, const char *needle) {
    for (size_t i = 0; i < ocicas_string_list_count(list); i++) {
        if (strstr(ocicas_string_list_get(list, i), needle) != NULL) return 1;
    }
    return 0;
}

/* Whether fsck finds the layout sound. */
static inline int fsck_is_sound(ocicas_engine *engine) {
    ocicas_fsck_report *report = NULL;
    CHECK_OK(ocicas_fsck(engine, &report));
    int sound = ocicas_fsck_report_sound(report);
    CHECK(sound == (ocicas_string_list_count(ocicas_fsck_report_problems(report)) == 0));
    ocicas_fsck_report_free(report);
    return sound;
}

/* A fresh temp directory; `path` must hold PATH_MAX bytes. */
static inline void make_temp_dir(char *path, size_t size) {
    const char *tmp = getenv("TMPDIR");
    snprintf(path, size, "%s/ocicas-ctest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(path) != NULL);
}

static inline void remove_tree(const char *path) {
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes `text` to `dir/name`. */
static inline void write_file(const char *dir, const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

/* A new layout in a new temp dir: `root` receives the temp dir, the layout is root/layout. */
static inline ocicas_engine *new_layout(char *root, size_t size, char *layout, size_t layout_size) {
    make_temp_dir(root, size);
    snprintf(layout, layout_size, "%s/layout", root);
    ocicas_engine *engine = NULL;
    CHECK_OK(ocicas_engine_open(layout, OCICAS_OPEN_CREATE, &engine));
    return engine;
}

/* Streams `len` bytes at `data` into a gzip layer, appends it to image `ref` (created when
 * missing) and so tags it. */
static inline void tag_image(ocicas_engine *engine, const char *ref, const uint8_t *data, size_t len) {
    ocicas_layer_stream *stream = NULL;
    CHECK_OK(ocicas_layer_stream_new(engine, NULL, &stream));
    CHECK_OK(ocicas_layer_stream_write(stream, data, len));
    ocicas_descriptor *layer = NULL, *manifest = NULL;
    char *diff_id = NULL;
    CHECK_OK(ocicas_layer_stream_finish(stream, &layer, &diff_id));
    ocicas_layer_stream_free(stream);
    CHECK_OK(ocicas_image_append(engine, ref, layer, diff_id, &manifest));
    ocicas_descriptor_free(layer);
    ocicas_string_free(diff_id);
    ocicas_descriptor_free(manifest);
}

/* Tags `ref` as an image of one layer: a 2048-byte tar holding hello.txt. */
static inline void tag_hello_image(ocicas_engine *engine, const char *ref) {
    /* A 512-byte header, 512 bytes of data, two zero blocks. */
    uint8_t tar[2048] = {0};
    memcpy(tar, "hello.txt", 9);
    memcpy(tar + 100, "0000644", 7);
    memcpy(tar + 108, "0000000", 7);
    memcpy(tar + 116, "0000000", 7);
    memcpy(tar + 124, "00000000005", 11);
    memcpy(tar + 136, "00000000000", 11);
    tar[156] = '0';
    memcpy(tar + 257, "ustar\0" "00", 8);
    memset(tar + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += tar[i];
    snprintf((char *)tar + 148, 8, "%06o", sum);
    memcpy(tar + 512, "hello", 5);
    tag_image(engine, ref, tar, sizeof tar);
}

static inline int age_one_blob(const char *digest, void *layout) {
    char path[4600];
    snprintf(path, sizeof path, "%s/blobs/sha256/%s", (const char *)layout, digest + strlen("sha256:"));
    struct utimbuf old = {time(NULL) - 3600, time(NULL) - 3600};
    CHECK(utime(path, &old) == 0);
    return 0;
}

/* Moves the mtime of every blob of the engine on `layout` an hour back, past GC's grace for
 * blobs committed while it runs. */
static inline void age_blobs(ocicas_engine *engine, const char *layout) {
    CHECK_OK(ocicas_blob_list(engine, age_one_blob, (void *)layout));
}

#endif
