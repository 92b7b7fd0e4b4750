// Random-access capacity of the machine, for BENCHMARKS.md ("Scoring core", round of
// 2026-11-24): apply_batch's memory access pattern with nothing else to do.
//
//   gcc -O2 -o /tmp/random_lines benches/machine/random_lines.c && /tmp/random_lines
//
// Per event: 1 line of a 16 MB table (huge pages, the interner), 7 lines of a 448 MB array of
// 448-byte records (huge pages, the account states), 1 line of a 32 MB table (4 KiB pages, a
// day's de-duplication table), each prefetched 16 events ahead; then a single stream of random
// lines over 512 MB in 4 KiB and in huge pages.
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <xmmintrin.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static char *alloc(size_t size, int huge) {
    size_t al = 2 << 20;
    char *b = mmap(0, size + al, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    b = (char *)(((uintptr_t)b + al - 1) & ~(al - 1));
    if (huge) madvise(b, size, MADV_HUGEPAGE);
    memset(b, 1, size);
    return b;
}

static uint64_t x = 88172645463325252ULL;
static uint64_t next(void) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

int main(void) {
    const size_t s1 = 16 << 20, s2 = 448 << 20, s3 = 32 << 20, N = 4 << 20, D = 16;
    char *a = alloc(s1, 1), *b = alloc(s2, 1), *c = alloc(s3, 0);
    uint64_t *r = malloc(N * 3 * 8);
    for (size_t i = 0; i < 3 * N; i++) r[i] = next();
#define A(j) (a + (r[3 * (j)] % (s1 / 64)) * 64)
#define B(j) (b + (r[3 * (j) + 1] % (s2 / 448)) * 448)
#define C(j) (c + (r[3 * (j) + 2] % (s3 / 64)) * 64)
    uint64_t sum = 0;
    double t0 = now();
    for (size_t i = 0; i < N; i++) {
        if (i + D < N) {
            _mm_prefetch(A(i + D), _MM_HINT_T0);
            for (int l = 0; l < 7; l++) _mm_prefetch(B(i + D) + 64 * l, _MM_HINT_T0);
            _mm_prefetch(C(i + D), _MM_HINT_T0);
        }
        sum += *A(i) + *C(i);
        for (int l = 0; l < 7; l++) sum += B(i)[64 * l];
    }
    double dt = now() - t0;
    printf("apply_batch's pattern: %.1f M events/s (%.0f ns/event)\n", N / dt / 1e6, dt / N * 1e9);
    for (int huge = 0; huge <= 1; huge++) {
        size_t size = (size_t)512 << 20, nl = size / 64;
        char *m = alloc(size, huge);
        size_t M = 8 << 20;
        t0 = now();
        for (size_t i = 0; i < M; i++) {
            if (i + D < M) _mm_prefetch(m + (r[(i + D) % (3 * N)] % nl) * 64, _MM_HINT_T0);
            sum += m[(r[i % (3 * N)] % nl) * 64];
        }
        dt = now() - t0;
        printf("random lines over 512 MB, %s pages: %.1f M lines/s\n", huge ? "huge" : "4 KiB", M / dt / 1e6);
    }
    return (int)(sum & 1);
}
