/* Opens a layout, stores a blob, reads it back: the smallest real use of the package. */
#include <ocicas.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    ocicas_engine *engine = NULL;
    if (ocicas_engine_open("consumer-layout", OCICAS_OPEN_CREATE, &engine) != OCICAS_OK) {
        fprintf(stderr, "open: %s\n", ocicas_last_error_message());
        return 1;
    }
    const char *text = "consumed";
    char *digest = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    int ok = ocicas_blob_put(engine, (const uint8_t *)text, strlen(text), &digest) == OCICAS_OK &&
             ocicas_blob_read(engine, digest, 1024, &data, &len) == OCICAS_OK && len == strlen(text) &&
             memcmp(data, text, len) == 0;
    if (!ok) {
        fprintf(stderr, "blob round trip failed: %s\n", ocicas_last_error_message());
    } else {
        printf("ocicas %s stored %s\n", ocicas_version(), digest);
    }
    ocicas_bytes_free(data, len);
    ocicas_string_free(digest);
    ocicas_engine_close(engine);
    return ok ? 0 : 1;
}
