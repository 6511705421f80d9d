/* What a container runtime does with an image, against the installed package and with typed
 * results only (no JSON parsed): resolve an image built by umoci for a platform, read its
 * config's Env and Cmd, read each layer as its uncompressed tar while hashing it with the
 * digester, check each tar against the tree `umoci unpack` made, and commit the tar through a
 * writer with the digest the digester computed; walk the image's graph and read its config
 * again, by the descriptor the walk gave, as the resolved image has it.
 * usage: image_consumer LAYOUT REF OS ARCHITECTURE ROOTFS SCRATCH_LAYOUT */
#define _XOPEN_SOURCE 700 /* nftw, readlink */
#include <ocicas.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

#define CHECK_OK(expr)                                                                        \
    do {                                                                                      \
        ocicas_status status_ = (expr);                                                       \
        if (status_ != OCICAS_OK) {                                                           \
            fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #expr,                 \
                    ocicas_status_name(status_), ocicas_last_error_message());                \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

struct buffer {
    uint8_t *data;
    size_t len, capacity;
};

static void buffer_append(struct buffer *buffer, const uint8_t *data, size_t len) {
    if (buffer->len + len > buffer->capacity) {
        buffer->capacity = 2 * (buffer->len + len);
        buffer->data = realloc(buffer->data, buffer->capacity);
        CHECK(buffer->data != NULL);
    }
    memcpy(buffer->data + buffer->len, data, len);
    buffer->len += len;
}

/* A set of paths, relative to the image's root, without "./", "/" or a trailing "/". */
struct paths {
    char *items[256];
    size_t count;
};

static void paths_add(struct paths *paths, const char *path) {
    while (path[0] == '.' && path[1] == '/') path += 2;
    while (path[0] == '/') path++;
    char *copy = strdup(path);
    CHECK(copy != NULL);
    size_t len = strlen(copy);
    while (len > 0 && copy[len - 1] == '/') copy[--len] = '\0';
    for (size_t i = 0; i < paths->count; i++) {
        if (strcmp(paths->items[i], copy) == 0) {
            free(copy);
            return;
        }
    }
    CHECK(paths->count < sizeof paths->items / sizeof paths->items[0]);
    paths->items[paths->count++] = copy;
}

static int compare_paths(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct paths rootfs_paths;
static size_t rootfs_prefix;

static int add_rootfs_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    paths_add(&rootfs_paths, path + rootfs_prefix);
    return 0;
}

static unsigned long long octal(const uint8_t *field, size_t len) {
    unsigned long long value = 0;
    for (size_t i = 0; i < len && field[i] >= '0' && field[i] <= '7'; i++) value = value * 8 + (field[i] - '0');
    return value;
}

/* The "path" record of a PAX extended header, when it has one, into `path`. */
static void pax_path(const uint8_t *records, size_t len, char *path, size_t size) {
    size_t at = 0;
    while (at < len) {
        char *end = NULL;
        unsigned long record = strtoul((const char *)records + at, &end, 10);
        CHECK(record > 0 && at + record <= len && *end == ' ');
        const char *key = end + 1;
        if (strncmp(key, "path=", 5) == 0) {
            size_t value_len = (const char *)records + at + record - 1 - (key + 5);
            CHECK(value_len < size);
            memcpy(path, key + 5, value_len);
            path[value_len] = '\0';
        }
        at += record;
    }
}

/* Checks every entry of `tar` against the same path under `rootfs` (contents of regular files,
 * targets of symlinks, directories) and adds its path to `seen`. */
static void check_tar(const struct buffer *tar, const char *rootfs, struct paths *seen) {
    char pax_name[1024] = "";
    size_t at = 0;
    while (at + 512 <= tar->len) {
        const uint8_t *header = tar->data + at;
        if (header[0] == '\0') break; /* the end-of-archive blocks */
        unsigned long long size = octal(header + 124, 12);
        char type = (char)header[156];
        const uint8_t *data = header + 512;
        CHECK(at + 512 + size <= tar->len);
        at += 512 + (size + 511) / 512 * 512;
        if (type == 'x') {
            pax_path(data, size, pax_name, sizeof pax_name);
            continue;
        }
        CHECK(type != 'L' && type != 'K'); /* GNU long names: umoci writes PAX */
        if (type == 'g') continue;
        char name[1024];
        if (pax_name[0] != '\0') {
            snprintf(name, sizeof name, "%s", pax_name);
            pax_name[0] = '\0';
        } else if (header[345] != '\0') {
            snprintf(name, sizeof name, "%.155s/%.100s", (const char *)header + 345, (const char *)header);
        } else {
            snprintf(name, sizeof name, "%.100s", (const char *)header);
        }
        CHECK(strstr(name, ".wh.") == NULL); /* the image only adds files */
        paths_add(seen, name);
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", rootfs, name);
        struct stat st;
        CHECK(lstat(path, &st) == 0);
        if (type == '0' || type == '\0') {
            CHECK(S_ISREG(st.st_mode) && (unsigned long long)st.st_size == size);
            FILE *file = fopen(path, "rb");
            CHECK(file != NULL);
            uint8_t *contents = malloc(size + 1);
            CHECK(contents != NULL && fread(contents, 1, size + 1, file) == size);
            CHECK(memcmp(contents, data, size) == 0);
            free(contents);
            fclose(file);
        } else if (type == '2') {
            char target[256] = "", expected[101];
            snprintf(expected, sizeof expected, "%.100s", (const char *)header + 157);
            CHECK(S_ISLNK(st.st_mode) && readlink(path, target, sizeof target - 1) > 0);
            CHECK(strcmp(target, expected) == 0);
        } else if (type == '5') {
            CHECK(S_ISDIR(st.st_mode));
        }
    }
}

/* Reads layer `index` uncompressed, hashing the tar with the digester; checks that it hashes
 * to its DiffID and returns the tar. */
static struct buffer read_layer(ocicas_engine *engine, const ocicas_image *image, size_t index) {
    const ocicas_descriptor *layer = ocicas_image_layer(image, index);
    const char *diff_id = ocicas_string_list_get(ocicas_config_diff_ids(ocicas_image_parsed_config(image)), index);
    ocicas_layer_reader *reader = NULL;
    CHECK_OK(ocicas_layer_reader_open(engine, ocicas_descriptor_media_type(layer), ocicas_descriptor_digest(layer),
                                      ocicas_descriptor_size(layer), diff_id, &reader));
    ocicas_digester *digester = NULL;
    CHECK_OK(ocicas_digester_new("sha256", &digester));
    struct buffer tar = {NULL, 0, 0};
    uint8_t chunk[65536];
    size_t n = 0;
    do {
        CHECK_OK(ocicas_layer_reader_read(reader, chunk, sizeof chunk, &n));
        CHECK_OK(ocicas_digester_update(digester, chunk, n));
        buffer_append(&tar, chunk, n);
    } while (n > 0);
    char *digest = NULL;
    CHECK_OK(ocicas_digester_finish(digester, &digest));
    CHECK(strcmp(digest, diff_id) == 0);
    printf("layer %zu: %s %s, tar %s (%zu bytes)\n", index, ocicas_descriptor_media_type(layer),
           ocicas_descriptor_digest(layer), digest, tar.len);
    ocicas_string_free(digest);
    ocicas_digester_free(digester);
    ocicas_layer_reader_free(reader);
    return tar;
}

/* Commits `tar` through a writer of `scratch` with the digest the digester gives for it. */
static void commit_with_digester(ocicas_engine *scratch, const struct buffer *tar) {
    ocicas_digester *digester = NULL;
    CHECK_OK(ocicas_digester_new("sha256", &digester));
    CHECK_OK(ocicas_digester_update(digester, tar->data, tar->len));
    char *expected = NULL;
    CHECK_OK(ocicas_digester_finish(digester, &expected));
    ocicas_digester_free(digester);
    ocicas_writer *writer = NULL;
    CHECK_OK(ocicas_writer_open(scratch, expected, (int64_t)tar->len, expected, &writer));
    CHECK_OK(ocicas_writer_write(writer, tar->data, tar->len));
    char *committed = NULL;
    CHECK_OK(ocicas_writer_commit(writer, (int64_t)tar->len, expected, NULL, &committed));
    CHECK(strcmp(committed, expected) == 0);
    CHECK_OK(ocicas_writer_close(writer));
    uint64_t stored = 0;
    CHECK_OK(ocicas_blob_size(scratch, committed, &stored));
    CHECK(stored == tar->len);
    ocicas_string_free(committed);
    ocicas_string_free(expected);
}

/* What the walk of the image gave: its steps, and the config read by the descriptor given. */
struct walked {
    ocicas_engine *engine;
    size_t steps;
    size_t configs;
    const char *manifest_digest;
    const ocicas_config *resolved;
};

static int check_step(const ocicas_descriptor *descriptor, uint64_t depth, const char *parent_digest,
                      ocicas_status blob_status, void *user_data) {
    struct walked *walked = user_data;
    CHECK(blob_status == OCICAS_OK);
    walked->steps++;
    if (depth == 0) {
        CHECK(parent_digest == NULL && strcmp(ocicas_descriptor_digest(descriptor), walked->manifest_digest) == 0);
        return 0;
    }
    CHECK(depth == 1 && strcmp(parent_digest, walked->manifest_digest) == 0);
    if (strcmp(ocicas_descriptor_media_type(descriptor), "application/vnd.oci.image.config.v1+json") != 0) return 0;
    walked->configs++;
    ocicas_document *document = NULL;
    CHECK_OK(ocicas_document_read(walked->engine, descriptor, &document));
    CHECK(ocicas_document_get_kind(document) == OCICAS_DOCUMENT_CONFIG);
    const ocicas_string_list *env = ocicas_config_env(ocicas_document_config(document));
    const ocicas_string_list *resolved_env = ocicas_config_env(walked->resolved);
    CHECK(ocicas_string_list_count(env) == ocicas_string_list_count(resolved_env));
    for (size_t i = 0; i < ocicas_string_list_count(env); i++) {
        CHECK(strcmp(ocicas_string_list_get(env, i), ocicas_string_list_get(resolved_env, i)) == 0);
    }
    ocicas_document_free(document);
    return 0;
}

/* The walk of a ref tagging a manifest: the manifest, then its config and each layer. */
static void check_walk(ocicas_engine *engine, const char *ref, const ocicas_image *image) {
    struct walked walked = {engine, 0, 0, ocicas_descriptor_digest(ocicas_image_manifest(image)),
                            ocicas_image_parsed_config(image)};
    CHECK_OK(ocicas_image_walk(engine, ref, check_step, &walked));
    CHECK(walked.steps == ocicas_image_layer_count(image) + 2 && walked.configs == 1);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s LAYOUT REF OS ARCHITECTURE ROOTFS SCRATCH_LAYOUT\n", argv[0]);
        return 2;
    }
    const char *rootfs = argv[5];
    ocicas_engine *engine = NULL, *scratch = NULL;
    CHECK_OK(ocicas_engine_open(argv[1], 0, &engine));
    CHECK_OK(ocicas_engine_open(argv[6], OCICAS_OPEN_CREATE, &scratch));
    ocicas_platform platform = {argv[3], argv[4], NULL};
    ocicas_image *image = NULL;
    CHECK_OK(ocicas_image_resolve(engine, argv[2], &platform, &image));
    const ocicas_config *config = ocicas_image_parsed_config(image);
    CHECK(strcmp(ocicas_config_os(config), argv[3]) == 0 && strcmp(ocicas_config_architecture(config), argv[4]) == 0);

    const ocicas_string_list *env = ocicas_config_env(config);
    int has_foo = 0;
    for (size_t i = 0; i < ocicas_string_list_count(env); i++) has_foo |= strcmp(ocicas_string_list_get(env, i), "FOO=bar") == 0;
    CHECK(has_foo);
    const ocicas_string_list *cmd = ocicas_config_cmd(config);
    CHECK(ocicas_string_list_count(cmd) == 1 && strcmp(ocicas_string_list_get(cmd, 0), "/bin/sh") == 0);

    size_t layers = ocicas_image_layer_count(image);
    CHECK(layers > 0);
    check_walk(engine, argv[2], image);
    struct paths seen = {{NULL}, 0};
    for (size_t i = 0; i < layers; i++) {
        struct buffer tar = read_layer(engine, image, i);
        check_tar(&tar, rootfs, &seen);
        commit_with_digester(scratch, &tar);
        free(tar.data);
    }
    /* The layers together hold exactly the unpacked tree. */
    rootfs_prefix = strlen(rootfs);
    CHECK(nftw(rootfs, add_rootfs_entry, 16, FTW_PHYS) == 0);
    qsort(seen.items, seen.count, sizeof seen.items[0], compare_paths);
    qsort(rootfs_paths.items, rootfs_paths.count, sizeof rootfs_paths.items[0], compare_paths);
    CHECK(seen.count == rootfs_paths.count);
    for (size_t i = 0; i < seen.count; i++) {
        CHECK(strcmp(seen.items[i], rootfs_paths.items[i]) == 0);
        free(seen.items[i]);
        free(rootfs_paths.items[i]);
    }
    printf("image %s for %s/%s: %zu layers, %zu paths match the unpacked tree\n", argv[2], argv[3], argv[4], layers,
           seen.count);
    ocicas_image_free(image);
    ocicas_engine_close(scratch);
    ocicas_engine_close(engine);
    return 0;
}
