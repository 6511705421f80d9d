/* The C side of the ingest benchmark (bench/ingest.rs builds and runs it): commits DATA_FILE
 * into a new layout through ocicas_writer_open / ocicas_writer_write in 64 KiB calls /
 * ocicas_writer_commit, with the size and digest known up front as in a pull. The data is read
 * from the file (in the page cache) in 64 KiB reads as it is written; the bench measures that
 * read on its own.
 * Prints "DIGEST SECONDS" for the timed section: writer open, reads and writes, commit.
 * Usage: ingest_c DATA_FILE LAYOUT DIGEST */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ocicas.h"

#define CHUNK (64 << 10)

static void check(ocicas_status status, const char *what) {
    if (status != OCICAS_OK) {
        fprintf(stderr, "ingest_c: %s: status %d: %s\n", what, (int)status, ocicas_last_error_message());
        exit(1);
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: ingest_c DATA_FILE LAYOUT DIGEST\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[1]);
        return 1;
    }
    static uint8_t buffer[CHUNK];
    ocicas_engine *engine = NULL;
    check(ocicas_engine_open(argv[2], OCICAS_OPEN_CREATE, &engine), "engine_open");

    double start = now_seconds();
    ocicas_writer *writer = NULL;
    check(ocicas_writer_open(engine, "bench", (int64_t)st.st_size, argv[3], &writer), "writer_open");
    ssize_t n;
    while ((n = read(fd, buffer, CHUNK)) > 0) {
        check(ocicas_writer_write(writer, buffer, (size_t)n), "writer_write");
    }
    if (n < 0) {
        perror(argv[1]);
        return 1;
    }
    char *digest = NULL;
    check(ocicas_writer_commit(writer, (int64_t)st.st_size, argv[3], NULL, &digest), "writer_commit");
    double elapsed = now_seconds() - start;

    printf("%s %.6f\n", digest, elapsed);
    ocicas_string_free(digest);
    check(ocicas_writer_close(writer), "writer_close");
    ocicas_engine_close(engine);
    close(fd);
    return 0;
}
