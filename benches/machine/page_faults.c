// Cost of faulting in fresh anonymous memory, for BENCHMARKS.md ("Scoring core", third round of
// 2026-11-24): why the de-duplication tables are populated when they are allocated.
//
//   gcc -O2 -o /tmp/page_faults benches/machine/page_faults.c && /tmp/page_faults
//
// Maps 256 MiB three times per way and touches one byte per 4 KiB page:
//   write           - a write to each page (one fault per page);
//   read-then-write - a read, then a write (a hash table's probe: the read maps the shared zero
//                     page, the write takes a second, copy-on-write fault);
//   populate        - madvise(MADV_POPULATE_WRITE) on the range first, then the writes;
//   huge            - madvise(MADV_HUGEPAGE) first, then the writes (2 MiB faults).
// The first repetition of a way may land on memory the host has not backed yet (slower); the
// later ones reuse what the previous munmap freed.
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    const size_t size = (size_t)256 << 20, page = 4096;
    const char *names[] = {"write", "read-then-write", "populate", "huge"};
    for (int way = 0; way < 4; way++) {
        for (int rep = 0; rep < 3; rep++) {
            volatile char *p = mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) {
                perror("mmap");
                return 1;
            }
            double t = now();
            if (way == 2 && madvise((void *)p, size, MADV_POPULATE_WRITE) != 0) perror("MADV_POPULATE_WRITE");
            if (way == 3) madvise((void *)p, size, MADV_HUGEPAGE);
            char sink = 0;
            if (way == 1)
                for (size_t i = 0; i < size; i += page) sink += p[i];
            for (size_t i = 0; i < size; i += page) p[i] = 1 + sink;
            double d = now() - t;
            printf("%-16s rep %d: %6.1f ms, %.2f us per 4 KiB page\n", names[way], rep, d * 1e3, d * 1e6 / (size / page));
            munmap((void *)p, size);
        }
    }
    return 0;
}
