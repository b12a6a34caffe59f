/* Reference for small ingest: one thread creating, writing and closing 4 KiB files, as
 * fast as the file system allows. Ferry's small-upload rate is compared with this.
 *
 * Usage: reference_files DIR SECONDS [--sync]
 * Prints "files_per_second=N p99_ms=P max_ms=M" (P and M: the time one file took, from
 * open to close). With --sync each file is fsync'ed before close (what a durable server
 * without group commit pays per upload). The files are removed after.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int ascending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR SECONDS [--sync]\n", argv[0]);
        return 2;
    }
    const char *directory = argv[1];
    double seconds = atof(argv[2]);
    int sync = argc > 3 && strcmp(argv[3], "--sync") == 0;
    mkdir(directory, 0700);
    char payload[4096];
    memset(payload, 'x', sizeof payload);
    char path[4096];
    long count = 0, capacity = 1 << 16;
    double *took = malloc(capacity * sizeof *took);
    double started = now(), deadline = started + seconds;
    while (now() < deadline) {
        double began = now();
        snprintf(path, sizeof path, "%s/%ld.bin", directory, count);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || write(fd, payload, sizeof payload) != sizeof payload) {
            perror(path);
            return 1;
        }
        if (sync && fsync(fd) != 0) {
            perror("fsync");
            return 1;
        }
        close(fd);
        if (count == capacity) {
            capacity *= 2;
            took = realloc(took, capacity * sizeof *took);
        }
        took[count++] = now() - began;
    }
    double elapsed = now() - started;
    for (long i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/%ld.bin", directory, i);
        unlink(path);
    }
    qsort(took, count, sizeof *took, ascending);
    printf("files_per_second=%.1f p99_ms=%.3f max_ms=%.3f\n", count / elapsed,
           count ? took[count * 99 / 100] * 1e3 : 0, count ? took[count - 1] * 1e3 : 0);
    free(took);
    return 0;
}
