/* The layout is untrusted (from C): ocicas_gc_run and the writer functions on layouts with
 * links planted in them return OCICAS_ERR_INVALID_IMAGE naming the link, and never delete,
 * write, chmod or create anything in the directory beside the layout the links point at. */
#include "test_util.h"

#include <sys/stat.h>

/* What a sentinel file looked like: size, mode and first bytes. */
typedef struct {
    off_t size;
    mode_t mode;
    char bytes[64];
} file_state;

static file_state state_of(const char *path) {
    file_state state;
    memset(&state, 0, sizeof state);
    struct stat st;
    CHECK(lstat(path, &st) == 0);
    state.size = st.st_size;
    state.mode = st.st_mode;
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    CHECK(fread(state.bytes, 1, sizeof state.bytes - 1, f) == (size_t)st.st_size);
    fclose(f);
    return state;
}

static int same_state(file_state a, file_state b) {
    return a.size == b.size && a.mode == b.mode && strcmp(a.bytes, b.bytes) == 0;
}

static int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* `root/layout/rel` replaced by a symlink to `target`. */
static void plant_link(const char *layout, const char *rel, const char *target) {
    char path[4400], command[9000];
    snprintf(path, sizeof path, "%s/%s", layout, rel);
    snprintf(command, sizeof command, "rm -rf '%s'", path);
    CHECK(system(command) == 0);
    CHECK(symlink(target, path) == 0);
}

int main(void) {
    char root[4096], layout[4200], sentinel[4200], sentinel_file[4300], sentinel_old[4300];
    ocicas_engine *engine = new_layout(root, sizeof root, layout, sizeof layout);
    snprintf(sentinel, sizeof sentinel, "%s/sentinel", root);
    CHECK(mkdir(sentinel, 0755) == 0);
    write_file(sentinel, "file", "outside bytes");
    write_file(sentinel, "1-2-3", "named like a temp file");
    snprintf(sentinel_file, sizeof sentinel_file, "%s/file", sentinel);
    snprintf(sentinel_old, sizeof sentinel_old, "%s/1-2-3", sentinel);
    file_state file_before = state_of(sentinel_file);
    file_state old_before = state_of(sentinel_old);
    char *digest = NULL;
    CHECK_OK(ocicas_blob_put(engine, (const uint8_t *)"garbage", 7, &digest));
    ocicas_string_free(digest);

    CASE("gc with .ocicas/tmp a symlink to another directory: INVALID_IMAGE, nothing there touched");
    plant_link(layout, ".ocicas/tmp", sentinel);
    ocicas_gc_options options;
    CHECK_OK(ocicas_gc_options_init(&options, OCICAS_GC_OPTIONS_VERSION));
    options.ingest_expiry_seconds = -1;
    ocicas_gc_report *report = NULL;
    CHECK_STATUS(ocicas_gc_run(engine, &options, &report), OCICAS_ERR_INVALID_IMAGE);
    CHECK_MESSAGE(".ocicas/tmp is a symlink");
    CHECK(report == NULL);
    CHECK(same_state(state_of(sentinel_file), file_before));
    CHECK(same_state(state_of(sentinel_old), old_before));
    CASE("writes that need a temp file fail the same way");
    CHECK_STATUS(ocicas_blob_put(engine, (const uint8_t *)"new", 3, &digest), OCICAS_ERR_INVALID_IMAGE);
    CHECK_MESSAGE("symlink");
    char tmp_link[4400];
    snprintf(tmp_link, sizeof tmp_link, "%s/.ocicas/tmp", layout);
    CHECK(unlink(tmp_link) == 0);

    CASE("gc with .ocicas a symlink: INVALID_IMAGE, no lock created there");
    char private_dir[4400];
    snprintf(private_dir, sizeof private_dir, "%s/.ocicas", layout);
    plant_link(layout, ".ocicas", sentinel);
    CHECK_STATUS(ocicas_gc_run(engine, &options, &report), OCICAS_ERR_INVALID_IMAGE);
    char sentinel_lock[4300];
    snprintf(sentinel_lock, sizeof sentinel_lock, "%s/lock", sentinel);
    CHECK(!exists(sentinel_lock));
    CHECK(same_state(state_of(sentinel_file), file_before));
    CHECK(unlink(private_dir) == 0);

    CASE("a writer whose ingest data is a symlink starts it afresh, removing the link itself, never what it points at");
    ocicas_writer *writer = NULL;
    CHECK_OK(ocicas_writer_open(engine, "myref", OCICAS_SIZE_UNKNOWN, NULL, &writer));
    CHECK_OK(ocicas_writer_write(writer, (const uint8_t *)"hel", 3));
    CHECK_OK(ocicas_writer_close(writer));
    /* The layout's one ingest directory (named by sha256 of the ref). */
    char data_path[4600], command[9000];
    snprintf(command, sizeof command, "ls -d '%s'/.ocicas/ingest/*/data", layout);
    FILE *listing = popen(command, "r");
    CHECK(listing != NULL);
    CHECK(fgets(data_path, sizeof data_path, listing) != NULL);
    pclose(listing);
    data_path[strcspn(data_path, "\n")] = '\0';
    CHECK(unlink(data_path) == 0);
    CHECK(symlink(sentinel_file, data_path) == 0);
    CASE("gc removes the idle ingest with the link itself, never the file it points at");
    report = NULL;
    CHECK_OK(ocicas_gc_run(engine, &options, &report));
    CHECK(list_mentions(ocicas_gc_report_ingests_removed(report), "myref"));
    ocicas_gc_report_free(report);
    CHECK(!exists(data_path));
    CHECK(same_state(state_of(sentinel_file), file_before));
    CHECK_OK(ocicas_writer_open(engine, "myref", OCICAS_SIZE_UNKNOWN, NULL, &writer));
    CHECK_OK(ocicas_writer_write(writer, (const uint8_t *)"hel", 3));
    CHECK_OK(ocicas_writer_close(writer));
    CHECK(unlink(data_path) == 0);
    CHECK(symlink(sentinel_file, data_path) == 0);
    writer = NULL;
    CHECK_OK(ocicas_writer_open(engine, "myref", OCICAS_SIZE_UNKNOWN, NULL, &writer));
    CHECK_OK(ocicas_writer_write(writer, (const uint8_t *)"lo", 2));
    char *committed = NULL;
    CHECK_OK(ocicas_writer_commit(writer, OCICAS_SIZE_UNKNOWN, NULL, NULL, &committed));
    /* sha256("lo"): the ingest started afresh, without the three bytes before the link. */
    CHECK(strcmp(committed, "sha256:9294ab38039f60d2ec53822fb46b52c663af7ea478f4d17bf43da44ede5e166c") == 0);
    ocicas_string_free(committed);
    CHECK_OK(ocicas_writer_close(writer));
    CHECK(same_state(state_of(sentinel_file), file_before));
    CHECK(fsck_is_sound(engine));

    CASE("a dangling .ocicas/lock symlink: writes are INVALID_IMAGE and its target is never created");
    char lock_path[4400], target[4300];
    snprintf(lock_path, sizeof lock_path, "%s/.ocicas/lock", layout);
    snprintf(target, sizeof target, "%s/created", sentinel);
    unlink(lock_path);
    CHECK(symlink(target, lock_path) == 0);
    CHECK_STATUS(ocicas_writer_open(engine, "other", OCICAS_SIZE_UNKNOWN,
                                    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                                    &writer),
                 OCICAS_ERR_INVALID_IMAGE);
    CHECK_STATUS(ocicas_gc_run(engine, &options, &report), OCICAS_ERR_INVALID_IMAGE);
    CHECK(!exists(target));

    ocicas_engine_close(engine);
    remove_tree(root);
    printf("ok\n");
    return 0;
}
