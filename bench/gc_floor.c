// The floor of what any GC that is safe against concurrent writers does before its sweep, in
// bare C: list a blob directory, and fstatat the half that will be removed (a re-commit only
// refreshes a blob's mtime, so the young-blob check needs a stat of every unmarked blob); then
// unlink that half on 32 threads, as `cargo bench --bench gc`'s floor does. Prints the ratio
// (list + stat) / unlink: when it is above 0.25, a GC within 1.25x of the bare unlinks cannot be
// had on that file system without dropping the young-blob check (issue 23).
//
// Usage (a copy: it removes half the entries):
//   cc -O2 -pthread bench/gc_floor.c -o /tmp/gc_floor
//   cp -a LAYOUT/blobs/sha256 /dev/shm/floor && sync && /tmp/gc_floor /dev/shm/floor 32
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define UNLINK_THREADS 32
#define MAX_THREADS 64

static char **names;
static long count;
static int dir_fd;
static long stat_threads;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

// Thread `i` of `threads` visits every second entry (the removed half) from its own start.
static void *stat_half(void *arg) {
    long i = (long)arg;
    struct stat st;
    for (long k = i * 2; k < count; k += 2 * stat_threads) {
        fstatat(dir_fd, names[k], &st, AT_SYMLINK_NOFOLLOW);
    }
    return NULL;
}

static void *unlink_half(void *arg) {
    long i = (long)arg;
    for (long k = i * 2; k < count; k += 2 * UNLINK_THREADS) {
        unlinkat(dir_fd, names[k], 0);
    }
    return NULL;
}

static void run(void *(*work)(void *), long threads) {
    pthread_t started[MAX_THREADS];
    for (long i = 0; i < threads; i++) {
        pthread_create(&started[i], NULL, work, (void *)i);
    }
    for (long i = 0; i < threads; i++) {
        pthread_join(started[i], NULL);
    }
}

int main(int argc, char **argv) {
    if (argc != 3 || atol(argv[2]) < 1 || atol(argv[2]) > MAX_THREADS) {
        fprintf(stderr, "usage: %s BLOB_DIR STAT_THREADS(1-%d)\n", argv[0], MAX_THREADS);
        return 2;
    }
    stat_threads = atol(argv[2]);
    double start = now_ms();
    dir_fd = open(argv[1], O_RDONLY | O_DIRECTORY);
    DIR *dir = dir_fd < 0 ? NULL : fdopendir(dup(dir_fd));
    if (dir == NULL) {
        perror(argv[1]);
        return 1;
    }
    long capacity = 1024;
    names = malloc(sizeof(char *) * capacity);
    for (struct dirent *entry; (entry = readdir(dir)) != NULL;) {
        if (entry->d_name[0] == '.') {
            continue;
        }
        if (count == capacity) {
            capacity *= 2;
            names = realloc(names, sizeof(char *) * capacity);
        }
        names[count++] = strdup(entry->d_name);
    }
    double listed = now_ms();
    run(stat_half, stat_threads);
    double stated = now_ms();
    run(unlink_half, UNLINK_THREADS);
    double unlinked = now_ms();
    printf("%ld entries: list %.1f ms, stat half on %ld threads %.1f ms, unlink half on %d threads %.1f ms; "
           "(list+stat)/unlink %.2f\n",
           count, listed - start, stat_threads, stated - listed, UNLINK_THREADS, unlinked - stated,
           (stated - start) / (unlinked - stated));
    return 0;
}
