/* Opens a new layout in a temp dir, stores a blob, reads it back: the smallest real use of the
 * package, built by find_package and pkg-config consumers alike. */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */
#include <ocicas.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static int round_trip(const char *layout) {
    ocicas_engine *engine = NULL;
    if (ocicas_engine_open(layout, OCICAS_OPEN_CREATE, &engine) != OCICAS_OK) {
        fprintf(stderr, "open %s: %s\n", layout, ocicas_last_error_message());
        return 1;
    }
    const char *text = "consumed through the installed package";
    char *digest = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    int ok = ocicas_blob_put(engine, (const uint8_t *)text, strlen(text), &digest) == OCICAS_OK &&
             ocicas_blob_read(engine, digest, 1024, &data, &len) == OCICAS_OK &&
             len == strlen(text) && memcmp(data, text, len) == 0;
    if (ok) {
        printf("ocicas %s: stored and read back %s\n", ocicas_version(), digest);
    } else {
        fprintf(stderr, "blob round trip failed: %s\n", ocicas_last_error_message());
    }
    ocicas_bytes_free(data, len);
    ocicas_string_free(digest);
    ocicas_engine_close(engine);
    return ok ? 0 : 1;
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    char dir[4096], layout[4200];
    snprintf(dir, sizeof dir, "%s/ocicas-consumer-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror(dir);
        return 1;
    }
    snprintf(layout, sizeof layout, "%s/layout", dir);
    int status = round_trip(layout);
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return status;
}
