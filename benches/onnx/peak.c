/*
 * Measures the core clock and the AVX-512 FMA throughput of this machine, for the
 * peak FLOP/s that compare.py reports against. Under a hypervisor, `cpu MHz` in
 * /proc/cpuinfo is the nominal clock, and the cores may run faster (boost).
 *
 * - clock: one thread per core runs a chain of dependent 64-bit integer adds, which
 *   take one cycle each on x86-64 cores, so adds per second is the clock.
 * - FMA: one thread per core runs 12 independent chains of 512-bit f32 FMAs, enough
 *   to hide the FMA latency, and counts 2 flops per lane.
 *
 * Prints one JSON object: threads, clock_ghz (slowest thread), fma_gflops (sum of
 * the threads).
 * Build: cc -O2 -mavx512f -pthread peak.c -o peak. x86-64 with AVX-512F only.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ADDS 400000000L
#define FMA_ITERATIONS 40000000L
/* Each thread keeps its fastest of this many runs, so a run slowed by another
 * process sharing the core does not lower the result. */
#define RUNS 5
#define FMA_CHAINS 12

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double clock_run(void) {
    long x = 0;
    double start = now_seconds();
    for (long i = 0; i < ADDS; i += 10) {
        /* Ten dependent adds per iteration, so the loop counter's own add and branch
         * run in parallel with the chain and do not lengthen it. */
        __asm__ volatile(
            "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
            "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
            : "+r"(x));
    }
    return x / (now_seconds() - start) / 1e9;
}

static double fma_run(void) {
    /* Separate variables (not an array, which -O2 keeps in memory) with distinct start
     * values, so the compiler neither spills the chains nor merges them into one. */
    __m512 a0 = _mm512_set1_ps(1), a1 = _mm512_set1_ps(2), a2 = _mm512_set1_ps(3);
    __m512 a3 = _mm512_set1_ps(4), a4 = _mm512_set1_ps(5), a5 = _mm512_set1_ps(6);
    __m512 a6 = _mm512_set1_ps(7), a7 = _mm512_set1_ps(8), a8 = _mm512_set1_ps(9);
    __m512 a9 = _mm512_set1_ps(10), a10 = _mm512_set1_ps(11), a11 = _mm512_set1_ps(12);
    const __m512 scale = _mm512_set1_ps(0.9999999f);
    const __m512 offset = _mm512_set1_ps(1e-7f);

    double start = now_seconds();
    for (long k = 0; k < FMA_ITERATIONS; k++) {
        a0 = _mm512_fmadd_ps(a0, scale, offset);
        a1 = _mm512_fmadd_ps(a1, scale, offset);
        a2 = _mm512_fmadd_ps(a2, scale, offset);
        a3 = _mm512_fmadd_ps(a3, scale, offset);
        a4 = _mm512_fmadd_ps(a4, scale, offset);
        a5 = _mm512_fmadd_ps(a5, scale, offset);
        a6 = _mm512_fmadd_ps(a6, scale, offset);
        a7 = _mm512_fmadd_ps(a7, scale, offset);
        a8 = _mm512_fmadd_ps(a8, scale, offset);
        a9 = _mm512_fmadd_ps(a9, scale, offset);
        a10 = _mm512_fmadd_ps(a10, scale, offset);
        a11 = _mm512_fmadd_ps(a11, scale, offset);
    }
    double elapsed = now_seconds() - start;

    __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                               _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    sum = _mm512_add_ps(sum, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    /* The checksum goes to stderr so that the chains' results are used. */
    fprintf(stderr, "fma checksum %g\n", _mm512_reduce_add_ps(sum));
    return FMA_ITERATIONS * (double)FMA_CHAINS * 16 * 2 / elapsed / 1e9;
}

static void *measure_clock(void *result) {
    double best = 0;
    for (int i = 0; i < RUNS; i++) {
        double ghz = clock_run();
        best = ghz > best ? ghz : best;
    }
    *(double *)result = best;
    return NULL;
}

static void *measure_fma(void *result) {
    double best = 0;
    for (int i = 0; i < RUNS; i++) {
        double gflops = fma_run();
        best = gflops > best ? gflops : best;
    }
    *(double *)result = best;
    return NULL;
}

static void run_on_all(void *(*body)(void *), int threads, double *results) {
    pthread_t handles[threads];
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&handles[i], NULL, body, &results[i]) != 0) {
            fprintf(stderr, "pthread_create failed for thread %d of %d\n", i, threads);
            exit(1);
        }
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(handles[i], NULL);
    }
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1 || threads > 256) {
        fprintf(stderr, "invalid thread count %s; expected 1 to 256\n", argv[1]);
        return 2;
    }
    double clock[256], fma[256];
    run_on_all(measure_clock, threads, clock);
    run_on_all(measure_fma, threads, fma);
    double clock_min = clock[0], fma_sum = 0;
    for (int i = 0; i < threads; i++) {
        if (clock[i] < clock_min) {
            clock_min = clock[i];
        }
        fma_sum += fma[i];
    }
    printf("{\"threads\": %d, \"clock_ghz\": %.4f, \"fma_gflops\": %.2f}\n", threads, clock_min,
           fma_sum);
    return 0;
}
