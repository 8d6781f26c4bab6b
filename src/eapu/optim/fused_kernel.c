/* One pass per analog tensor: the base optimizer's update (Adam, AdamW or SGD), ΔW, the
 * EaPU decision (formula 4 of Liu et al. 2025) and the weight-level write noise.
 *
 * Built and loaded by eapu/fused.py (plain C, no torch headers: it builds in a second).
 * Randomness is counter-based: the uniform of cell i in a step is a hash of (key, i), with
 * the key drawn once per step from the optimizer's generator; the write noise is keyed by
 * the position of a written cell among the written cells of its chunk (CHUNK cells, chunks
 * counted from cell 0) under a second key. So a result does not depend on how the work is
 * split over threads (work items are cut on chunk boundaries, whatever the thread count),
 * and a run resumes exactly.
 *
 * Per cell, after the base's update of its state gives ΔW:
 *   |ΔW| >= th: ΔWn = ΔW;  else ΔWn = sign(ΔW)·th if u·th < |ΔW| (u uniform on [0, 1)), else 0
 *   a cell with ΔWn != 0 becomes w + ΔWn + sd·N(0, 1); the others keep their value.
 * A cell whose gradient or ΔW is not finite is skipped (its gradient counts as 0 in the
 * optimizer's state, as on the unfused path) and counted.
 *
 * The weights are read only where ΔW depends on them (weight decay; AdamW's decoupled decay
 * is part of ΔW, as on the unfused path, so it too reaches only the written cells) and where
 * a cell is written; where few cells are written they are stored only there (DEFINE_RANGE).
 * Without weight decay a weight that is not finite therefore no longer makes its cell's
 * state NaN (as in torch's Adam); finite weights get the values they got before.
 */
#include <math.h>
#include <tgmath.h> /* sqrt, fabs, copysign in the element type */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#endif

enum { KIND_ADAM = 0, KIND_ADAMW = 1, KIND_SGD = 2 };

typedef struct {
    void *param, *grad, *exp_avg, *exp_avg_sq; /* SGD: exp_avg = momentum buffer or NULL */
    int64_t numel;
    int32_t dtype; /* 0: float32, 1: float64 */
    int32_t kind;
    double lr, beta1, beta2, eps, weight_decay;
    double bias_correction1, bias_correction2_sqrt; /* computed here when step is given */
    void *step;         /* Adam: the state's step count (0-dim tensor), incremented here */
    int32_t step_dtype; /* 0: float32, 1: float64 */
    double momentum, dampening;
    int32_t nesterov, first; /* SGD: first = the momentum buffer starts as the gradient */
    double threshold, noise_sd;
    uint64_t rule_key, noise_key; /* noise_key unused if index >= 0 */
    int64_t index; /* >= 0: both keys are derived here from rule_key (the step's key) */
    int64_t written, skipped; /* out */
} eapu_job;

#define GOLDEN 0x9E3779B97F4A7C15ULL
#define NOISE_STREAM 0x6A09E667F3BCC909ULL

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A 32-bit bijective hash (Wellons' lowbias32): two multiplies, native on AVX2 and AVX-512. */
static inline uint32_t hash32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}

/* log(x) for x in (0, 1], and cos(2πu) for u in [0, 1): polynomials (relative error below
 * 1e-8) that vectorise, unlike the library's. Only the write noise uses them. */
static inline double log01(double x) {
    union { double d; uint64_t u; } b = {x};
    int64_t e = (int64_t)((b.u >> 52) & 0x7FF) - 1023;
    b.u = (b.u & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL; /* mantissa in [1, 2) */
    double m = b.d;
    int big = m > 1.4142135623730951;
    m = big ? m * 0.5 : m;
    e += big;
    double s = (m - 1.0) / (m + 1.0), s2 = s * s; /* |s| <= 0.172 */
    double p = 1.0 / 13;
    p = p * s2 + 1.0 / 11;
    p = p * s2 + 1.0 / 9;
    p = p * s2 + 1.0 / 7;
    p = p * s2 + 1.0 / 5;
    p = p * s2 + 1.0 / 3;
    p = p * s2 + 1.0;
    return 2.0 * s * p + (double)e * 0.6931471805599453;
}

static inline float log01f(float x) {
    union { float f; uint32_t u; } b = {x};
    int32_t e = (int32_t)((b.u >> 23) & 0xFF) - 127;
    b.u = (b.u & 0x007FFFFFu) | 0x3F800000u; /* mantissa in [1, 2) */
    float m = b.f;
    int big = m > 1.41421356f;
    m = big ? m * 0.5f : m;
    e += big;
    float s = (m - 1.0f) / (m + 1.0f), s2 = s * s; /* |s| <= 0.172 */
    float p = 1.0f / 9;
    p = p * s2 + 1.0f / 7;
    p = p * s2 + 1.0f / 5;
    p = p * s2 + 1.0f / 3;
    p = p * s2 + 1.0f;
    return 2.0f * s * p + (float)e * 0.693147181f;
}

/* cos(2πu) and sin(2πu) for u in [0, 1): the quadrant q = floor(4u), then polynomials in
 * t = (4u - q)·π/2 (cos to t^14, sin to t^15 in double; to t^12 and t^11 in float). */
static inline void sincos2pi(double u, double *cos_out, double *sin_out) {
    double u4 = u * 4.0;
    int q = (int)u4;
    double t = (u4 - (double)q) * 1.5707963267948966, t2 = t * t; /* t in [0, π/2) */
    double c = -1.0 / 87178291200.0, s = 1.0 / 1307674368000.0;
    c = c * t2 + 1.0 / 479001600.0;
    c = c * t2 - 1.0 / 3628800.0;
    c = c * t2 + 1.0 / 40320.0;
    c = c * t2 - 1.0 / 720.0;
    c = c * t2 + 1.0 / 24.0;
    c = c * t2 - 0.5;
    c = c * t2 + 1.0;
    s = s * t2 - 1.0 / 6227020800.0;
    s = s * t2 + 1.0 / 39916800.0;
    s = s * t2 - 1.0 / 362880.0;
    s = s * t2 + 1.0 / 5040.0;
    s = s * t2 - 1.0 / 120.0;
    s = s * t2 + 1.0 / 6.0;
    s = t - t * t2 * s;
    *cos_out = q == 0 ? c : q == 1 ? -s : q == 2 ? -c : s;
    *sin_out = q == 0 ? s : q == 1 ? c : q == 2 ? -s : -c;
}

static inline void sincos2pif(float u, float *cos_out, float *sin_out) {
    float u4 = u * 4.0f;
    int q = (int)u4;
    float t = (u4 - (float)q) * 1.57079633f, t2 = t * t;
    float c = 1.0f / 479001600.0f, s = -1.0f / 39916800.0f;
    c = c * t2 - 1.0f / 3628800.0f;
    c = c * t2 + 1.0f / 40320.0f;
    c = c * t2 - 1.0f / 720.0f;
    c = c * t2 + 1.0f / 24.0f;
    c = c * t2 - 0.5f;
    c = c * t2 + 1.0f;
    s = s * t2 + 1.0f / 362880.0f;
    s = s * t2 - 1.0f / 5040.0f;
    s = s * t2 + 1.0f / 120.0f;
    s = s * t2 - 1.0f / 6.0f;
    s = t + t * t2 * s;
    *cos_out = q == 0 ? c : q == 1 ? -s : q == 2 ? -c : s;
    *sin_out = q == 0 ? s : q == 1 ? c : q == 2 ? -s : -c;
}

/* Cells per chunk: the unit of the thread split and of the write noise's batches. */
#define CHUNK 1024

/* Pairs r < np of standard normals for the chunk that starts at cell c0 (a multiple of
 * CHUNK), keyed by c0 + r: Box-Muller's R·cos θ and R·sin θ, two independent normals from
 * one radius and one angle. float: 24 bits each for the radius and the angle (so
 * |z| < 5.8), from x = hash32((c0 + r)·m + k1) (as the uniforms, under the noise's key) and
 * hash32(x + golden); double: 53 bits each, from two mix64. */
static inline void normal_pairs_float(uint64_t key, int64_t c0, int np, float *restrict z0,
                                      float *restrict z1) {
    const uint32_t k1 = (uint32_t)key + (uint32_t)((uint64_t)c0 >> 32) * 0x9E3779B9u;
    const uint32_t k2 = (uint32_t)(key >> 32), base = (uint32_t)c0;
    /* Whole groups of 16, one 512-bit vector (z0 and z1 have room): a short loop's remainder
     * would run scalar. On Zen 5 (full-width AVX-512) 16 lanes took about 5 % less of an Adam
     * step than groups of 8 (which waste fewer lanes on a chunk's ~20 pairs, and were as fast
     * per lane on Zen 4). The double version's 8 lanes fill the same vector. */
    for (int r0 = 0; r0 < np; r0 += 16)
        for (int r = r0; r < r0 + 16; r++) {
            const uint32_t x = hash32((base + (uint32_t)r) * (k2 | 1u) + k1);
            const uint32_t y = hash32(x + 0x9E3779B9u);
            const float u1 = ((float)(int32_t)(x >> 8) + 1.0f) * 0x1p-24f; /* (0, 1] */
            const float u2 = (float)(int32_t)(y >> 8) * 0x1p-24f;
            const float rad = sqrtf(-2.0f * log01f(u1));
            float c, s;
            sincos2pif(u2, &c, &s);
            z0[r] = rad * c;
            z1[r] = rad * s;
        }
}

static inline void normal_pairs_double(uint64_t key, int64_t c0, int np, double *restrict z0,
                                       double *restrict z1) {
    for (int r0 = 0; r0 < np; r0 += 8)
        for (int r = r0; r < r0 + 8; r++) {
            const uint64_t z = mix64(key + (uint64_t)(c0 + r + 1) * GOLDEN);
            const double u1 = ((double)(int64_t)(z >> 11) + 1.0) * 0x1p-53; /* (0, 1] */
            const double u2 = (double)(int64_t)(mix64(z + GOLDEN) >> 11) * 0x1p-53;
            const double rad = sqrt(-2.0 * log01(u1));
            double c, s;
            sincos2pi(u2, &c, &s);
            z0[r] = rad * c;
            z1[r] = rad * s;
        }
}

/* The uniform on [0, 1) of cell i = ubase + k (ubase = i0 mod 2^32).
 * float: the top 24 bits of hash32(i·m + k1), m = k2 | 1 and k1 the key's 32-bit halves
 * (cells past 2^32 shift k1). One lowbias32 per cell: two, as before, cost about 2.2 ms of
 * a 12 ms ResNet-18 step on one core here; one costs about 1.1 ms. For each key,
 * i -> i·m + k1 is a bijection of the 32-bit cells (m odd), so a step's inputs are distinct
 * and its uniforms are lowbias32's outputs on an arithmetic sequence (what a counter-based
 * generator hashes); two keys give the same sequence only if both halves agree, and a cell
 * of one step meets the input of some cell of another step no more often than under any
 * 32-bit state (about n²/2^32 cell pairs per pair of steps), the two-hash form it replaces
 * included. Tested: uniformity, no correlation between neighbours (several lags) or between
 * keys, P(write) and E[ΔWn] (tests/test_fused.py).
 * double: the top 53 bits of mix64(key + (i + 1)·golden). */
#define UNIFORM_float(k) \
    ((float)(int32_t)(hash32((ubase + (uint32_t)(k)) * (uk2 | 1u) + uk1) >> 8) * 0x1p-24f)
#define UNIFORM_double(k) \
    ((double)(int64_t)(mix64(dbase + (uint64_t)(k) * GOLDEN) >> 11) * 0x1p-53)

/* base + k for the positions k < n with flag[k] != 0, ascending, into idx (which has room
 * for 32 more); returns how many. base + n <= 65536. */
static inline int compact(const unsigned char *restrict flag, int n, int base,
                          uint16_t *restrict idx) {
    int c = 0, k = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512VBMI2__)
    __m512i pos = _mm512_add_epi16(
        _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14,
                         13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi16((short)base));
    const __m512i step = _mm512_set1_epi16(32);
    for (; k + 32 <= n; k += 32) {
        __mmask32 mk = _mm256_test_epi8_mask(_mm256_loadu_si256((const __m256i *)(flag + k)),
                                             _mm256_set1_epi8(1));
        _mm512_storeu_si512((void *)(idx + c), _mm512_maskz_compress_epi16(mk, pos));
        c += __builtin_popcount(mk);
        pos = _mm512_add_epi16(pos, step);
    }
#elif defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    __m512i pos = _mm512_add_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(base));
    const __m512i step = _mm512_set1_epi32(16);
    for (; k + 16 <= n; k += 16) {
        __mmask16 mk = _mm_test_epi8_mask(_mm_loadu_si128((const __m128i *)(flag + k)),
                                          _mm_set1_epi8(1));
        _mm256_storeu_si256((__m256i *)(idx + c),
                            _mm512_cvtepi32_epi16(_mm512_maskz_compress_epi32(mk, pos)));
        c += __builtin_popcount(mk);
        pos = _mm512_add_epi32(pos, step);
    }
#endif
    for (; k < n; k++) {
        idx[c] = (uint16_t)(base + k);
        c += flag[k];
    }
    return c;
}

#define MAX_float 3.4028234663852886e38f
#define MAX_double 1.7976931348623157e308
#define NAN_float ((float)NAN)
#define NAN_double ((double)NAN)

#define BLOCK 256
/* Written cells per chunk (of CHUNK) above which a chunk is written in place by the
 * decision loop, below which cell by cell: a moving mean over the last chunks decides, with
 * hysteresis (in place from DENSE_MIN + 1, cell by cell again under DENSE_MIN - 1). See
 * DEFINE_RANGE. */
#define DENSE_MIN 4

/* The base's update of cell k of a block, leaving ΔW in dd[k] (NaN where the gradient is not
 * finite: the cell is skipped, its gradient counting as 0 in the state) and its uniform in
 * u[k]. L2 and WD are the terms that read the old weight (`+ wd * pp[k]`, AdamW's decoupled
 * `- lrwd * pp[k]`, part of ΔW as on the unfused path), empty where the weight decay is 0:
 * the loop then does not read the weights. */
#define ADAM_LOOP(T, L2, WD)                                                                     \
    for (int k = 0; k < n; k++) {                                                                \
        const int bad = !(fabs(gg[k]) <= MAX_##T);                                               \
        const T gk = (bad ? (T)0 : gg[k]) L2;                                                    \
        const T mk = mm[k] + w1 * (gk - mm[k]);                                                  \
        const T vk = b2 * vv[k] + w2 * gk * gk;                                                  \
        mm[k] = mk;                                                                              \
        vv[k] = vk;                                                                              \
        const T dw = -step_size * (mk / (sqrt(vk) * inv_bc2s + eps)) WD;                         \
        dd[k] = bad ? NAN_##T : dw;                                                              \
        u[k] = UNIFORM_##T(k);                                                                   \
    }
#define MOMENTUM_LOOP(T, L2)                                                                     \
    for (int k = 0; k < n; k++) {                                                                \
        const int bad = !(fabs(gg[k]) <= MAX_##T);                                               \
        const T gk = (bad ? (T)0 : gg[k]) L2;                                                    \
        const T b = mom * mm[k] + damp * gk;                                                     \
        mm[k] = b;                                                                               \
        const T dw = -lr * (cg * gk + cb * b);                                                   \
        dd[k] = bad ? NAN_##T : dw;                                                              \
        u[k] = UNIFORM_##T(k);                                                                   \
    }
#define SGD_LOOP(T, L2)                                                                          \
    for (int k = 0; k < n; k++) {                                                                \
        const int bad = !(fabs(gg[k]) <= MAX_##T);                                               \
        const T dw = -lr * ((bad ? (T)0 : gg[k]) L2);                                            \
        dd[k] = bad ? NAN_##T : dw;                                                              \
        u[k] = UNIFORM_##T(k);                                                                   \
    }
/* The decision of cell k: w (written), ok (ΔW finite); STORE is what a block written in
 * place does with ΔWn (`pp[k] = w ? pp[k] + dwn : pp[k];`), empty for the others. */
#define DECIDE_LOOP(T, STORE)                                                                    \
    for (int k = 0; k < n; k++) {                                                                \
        const T a = fabs(dd[k]);                                                                 \
        const int ok = a <= MAX_##T;                                                             \
        const int w = ok & (a > u[k] * th);                                                      \
        const T dwn = a >= th ? dd[k] : copysign(th, dd[k]);                                     \
        (void)dwn;                                                                               \
        STORE                                                                                    \
        fl[k] = (unsigned char)w;                                                                \
        c += w;                                                                                  \
        bad_cells += !ok;                                                                        \
    }

/* Cells lo..hi-1 of a tensor (lo a multiple of CHUNK), chunk by chunk, and in a chunk block
 * by block: one loop does the base's update (it streams the gradient and the state, and the
 * weights only where the weight decay puts them in ΔW) and leaves ΔW in d[] and the uniforms
 * in u[], a second the decision (flags in flag[]); the written cells get w + ΔWn and then,
 * listed in order (their rank in the chunk keys the write noise), + sd·N(0, 1).
 *
 * A chunk is written one of two ways, chosen from the counts of the chunks before it (a
 * moving mean over about 8, with hysteresis: the density of a tensor's writes changes
 * slowly, and a way that flips from chunk to chunk was slower than either, each switch to
 * the weights' stream restarting the hardware prefetcher); a cell gets the same value
 * either way.
 * Sparse (under about DENSE_MIN written cells per chunk): a weight is read and stored only
 * where it is written. Each block's written cells are listed as soon as it is decided and
 * their cache lines fetched for writing (the chunk's page touched at the start of the chunk
 * before, so that its TLB miss is not taken by those fetches: without it the sparse chunks
 * of an SGD step at 0.3 % ran 10 % slower); at the chunk's end each gets
 * w + ΔWn + sd·N(0, 1), ΔWn and the noise rounded one after the other.
 * Dense: the decision loop stores w + ΔWn over the whole block (the unwritten cells
 * unchanged: every weight read and stored), the noise is added at the chunk's end.
 * Measured on Zen 5 here, kernel alone, 1 thread, ResNet-18's weights: with nothing written
 * the sparse way takes 0.6-0.8 of the dense way (the weights are not touched); at about
 * 3 cells written per chunk (0.3 %) the two are level; at 0.65 % dense is 5 % faster and at
 * the 4 % of an Adam step of the benchmark (half of the 64-byte lines hold a written cell)
 * 20-30 % faster: a line fetched for a scattered cell costs more than its share of a stream.
 * Measured slower: the decision in the update loop, a conditional (masked) store of the
 * weight, the lines found by a separate per-line pass, or written one chunk later (the
 * weights' accesses then run backwards and the hardware prefetcher loses them), the choice
 * made per block, blocks of 32-128 cells, software prefetch of the streams (Zen 5); on Zen 4
 * before: one loop for everything, masked stores, software prefetch, int32 flags, a bit-scan
 * compaction, chunks of 2048 or more cells (the noise's writes then miss L1). */
#define DEFINE_RANGE(T)                                                                          \
    static void range_##T(eapu_job *j, int64_t lo, int64_t hi, int64_t *written,                 \
                          int64_t *skipped) {                                                    \
        T *restrict p = (T *)j->param, *restrict m = (T *)j->exp_avg;                            \
        T *restrict v = (T *)j->exp_avg_sq;                                                      \
        const T *restrict g = (const T *)j->grad;                                                \
        const T th = (T)j->threshold, b2 = (T)j->beta2, eps = (T)j->eps;                         \
        const T w1 = (T)(1.0 - j->beta1), w2 = (T)(1.0 - j->beta2);                              \
        const T wd = (T)j->weight_decay;                                                         \
        const T wd_l2 = j->kind == KIND_ADAMW ? (T)0 : wd;                                       \
        const T lrwd = j->kind == KIND_ADAMW ? (T)(j->lr * j->weight_decay) : (T)0;              \
        const int read_p = wd != 0; /* ΔW depends on the old weight */                           \
        const T step_size = (T)(j->lr / j->bias_correction1);                                    \
        const T inv_bc2s = (T)(1.0 / j->bias_correction2_sqrt);                                  \
        const T lr = (T)j->lr, mom = j->first ? (T)0 : (T)j->momentum;                          \
        const T damp = j->first ? (T)1 : (T)(1.0 - j->dampening);                               \
        const T cg = j->nesterov ? (T)1 : (T)0, cb = j->nesterov ? (T)j->momentum : (T)1;        \
        const T sd = (T)j->noise_sd;                                                             \
        const uint64_t key = j->rule_key;                                                        \
        T d[CHUNK], u[BLOCK];                                                                    \
        unsigned char flag[CHUNK];                                                               \
        uint16_t idx[CHUNK + 32];                                                                \
        T z0[CHUNK / 2 + 16], z1[CHUNK / 2 + 16];                                                \
        int64_t nw = 0, ns = 0;                                                                  \
        int dense = 0, avg8 = 0; /* avg8: 8 x the written cells per chunk, a moving mean */      \
        for (int64_t c0 = lo; c0 < hi; c0 += CHUNK) {                                            \
            const int nc = (int)(hi - c0 < CHUNK ? hi - c0 : CHUNK);                             \
            const uint32_t uk1 = (uint32_t)key + (uint32_t)((uint64_t)c0 >> 32) * 0x9E3779B9u;   \
            const uint32_t uk2 = (uint32_t)(key >> 32);                                          \
            T *restrict pc = p + c0;                                                             \
            int cw = 0;                                                                          \
            if (c0 + CHUNK < hi) /* the next chunk's weights' page: its TLB entry, early */     \
                __builtin_prefetch(pc + CHUNK, 1, 3);                                            \
            for (int b0 = 0; b0 < nc; b0 += BLOCK) {                                             \
                const int n = nc - b0 < BLOCK ? nc - b0 : BLOCK;                                 \
                const int64_t i0 = c0 + b0;                                                      \
                T *restrict pp = pc + b0; /* (based on pc, which writes the same cells) */      \
                const T *restrict gg = g + i0;                                                   \
                T *restrict dd = d + b0;                                                         \
                unsigned char *restrict fl = flag + b0;                                          \
                const uint32_t ubase = (uint32_t)i0;                                             \
                const uint64_t dbase = key + (uint64_t)(i0 + 1) * GOLDEN;                        \
                (void)uk1, (void)uk2, (void)ubase, (void)dbase;                                  \
                if (j->kind != KIND_SGD) {                                                       \
                    T *restrict mm = m + i0, *restrict vv = v + i0;                              \
                    if (read_p)                                                                  \
                        ADAM_LOOP(T, + wd_l2 * pp[k], - lrwd * pp[k])                            \
                    else                                                                         \
                        ADAM_LOOP(T, , )                                                         \
                } else if (m) {                                                                  \
                    T *restrict mm = m + i0;                                                     \
                    if (read_p)                                                                  \
                        MOMENTUM_LOOP(T, + wd * pp[k])                                           \
                    else                                                                         \
                        MOMENTUM_LOOP(T, )                                                       \
                } else if (read_p) {                                                             \
                    SGD_LOOP(T, + wd * pp[k])                                                    \
                } else {                                                                         \
                    SGD_LOOP(T, )                                                                \
                }                                                                                \
                int c = 0, bad_cells = 0;                                                        \
                if (dense) {                                                                     \
                    DECIDE_LOOP(T, pp[k] = w ? pp[k] + dwn : pp[k];)                             \
                } else {                                                                         \
                    DECIDE_LOOP(T, )                                                             \
                    if (c) { /* listed now, their lines fetched for the chunk's end */           \
                        compact(fl, n, b0, idx + cw);                                            \
                        for (int r = cw; r < cw + c; r++) __builtin_prefetch(pc + idx[r], 1, 3); \
                    }                                                                            \
                }                                                                                \
                cw += c;                                                                         \
                ns += bad_cells;                                                                 \
            }                                                                                    \
            nw += cw;                                                                            \
            if (cw && dense) {                                                                   \
                if (sd > 0) {                                                                    \
                    const int c = compact(flag, nc, 0, idx);                                     \
                    normal_pairs_##T(j->noise_key, c0, (c + 1) / 2, z0, z1);                     \
                    for (int r = 0; r + 1 < c; r += 2) {                                         \
                        pc[idx[r]] += sd * z0[r / 2];                                            \
                        pc[idx[r + 1]] += sd * z1[r / 2];                                        \
                    }                                                                            \
                    if (c & 1) pc[idx[c - 1]] += sd * z0[c / 2];                                 \
                }                                                                                \
            } else if (cw) {                                                                     \
                if (sd > 0) {                                                                    \
                    normal_pairs_##T(j->noise_key, c0, (cw + 1) / 2, z0, z1);                    \
                    for (int r = 0; r + 1 < cw; r += 2) {                                        \
                        const int k = idx[r], l = idx[r + 1];                                    \
                        const T x = pc[k] + DWN(d[k]), y = pc[l] + DWN(d[l]);                    \
                        pc[k] = x + sd * z0[r / 2];                                              \
                        pc[l] = y + sd * z1[r / 2];                                              \
                    }                                                                            \
                    if (cw & 1) {                                                                \
                        const int k = idx[cw - 1];                                               \
                        const T x = pc[k] + DWN(d[k]);                                           \
                        pc[k] = x + sd * z0[cw / 2];                                             \
                    }                                                                            \
                } else {                                                                         \
                    for (int r = 0; r < cw; r++) pc[idx[r]] += DWN(d[idx[r]]);                   \
                }                                                                                \
            }                                                                                    \
            avg8 += cw - avg8 / 8;                                                               \
            dense = avg8 >= 8 * (dense ? DENSE_MIN - 1 : DENSE_MIN + 1); /* (with hysteresis) */    \
        }                                                                                        \
        *written += nw;                                                                          \
        *skipped += ns;                                                                          \
    }
/* ΔWn of a written cell from its ΔW (formula 4). */
#define DWN(x) (fabs(x) >= th ? (x) : copysign(th, (x)))

DEFINE_RANGE(float)
DEFINE_RANGE(double)

/* Cells per work item: a tensor of more cells is cut into items of SPAN cells (a multiple
 * of CHUNK, so the draws do not depend on the cut). */
#define SPAN (64 * CHUNK)
/* Below this many cells in all a step runs on one thread. */
#define MULTI_MIN 65536

/* The work of one step: items handed out in order, one at a time, to whichever thread asks
 * (a thread on a busy core takes fewer, unlike a fixed split). */
typedef struct {
    eapu_job *jobs;
    int njobs;
    const int64_t *first; /* the first item of each job; first[njobs] = the number of items */
    atomic_llong next;    /* the next item to hand out */
} work_list;

/* Takes items until none is left, adding each job's counts into counts[2k] (written) and
 * counts[2k + 1] (skipped). */
static void work(work_list *w, int64_t *counts) {
    int k = 0;
    for (;;) {
        const int64_t it = atomic_fetch_add(&w->next, 1);
        if (it >= w->first[w->njobs]) break;
        while (w->first[k + 1] <= it) k++; /* a thread's items come in increasing order */
        eapu_job *j = &w->jobs[k];
        const int64_t lo = (it - w->first[k]) * SPAN;
        const int64_t hi = j->numel - lo < SPAN ? j->numel : lo + SPAN;
        if (j->dtype == 0)
            range_float(j, lo, hi, &counts[2 * k], &counts[2 * k + 1]);
        else
            range_double(j, lo, hi, &counts[2 * k], &counts[2 * k + 1]);
    }
}

/* Steps every job on up to nthreads threads; returns 0, or -1 (nothing done) if memory
 * could not be had. The threads are OpenMP's: built with -fopenmp (GCC), the kernel links
 * libgomp.so.1, which is the copy torch has loaded, so the step runs on the threads of
 * torch's own intra-op pool. Threads of a pool of their own (pthreads, as before) measured
 * no faster on 2 threads than on 1 here: after any parallel torch operation, torch's
 * OpenMP thread spins on the other core for a while, waiting for its next region, and took
 * that core from them. Built without OpenMP, the step runs on the calling thread. */
int eapu_fused_step(eapu_job *jobs, int njobs, int nthreads) {
    int64_t total = 0;
    for (int k = 0; k < njobs; k++) {
        eapu_job *j = &jobs[k];
        total += j->numel;
        if (j->index >= 0) { /* this tensor's keys: the rule's, and the noise's hashed apart */
            j->rule_key = mix64(j->rule_key + (uint64_t)(j->index + 1) * GOLDEN);
            j->noise_key = mix64(j->rule_key ^ NOISE_STREAM);
        }
        if (j->step) { /* as torch.optim.Adam: step += 1, then the corrections in double */
            double t;
            if (j->step_dtype == 0)
                t = (double)(*(float *)j->step += 1.0f);
            else
                t = (*(double *)j->step += 1.0);
            j->bias_correction1 = 1.0 - pow(j->beta1, t);
            j->bias_correction2_sqrt = sqrt(1.0 - pow(j->beta2, t));
        }
    }
    int64_t *first = malloc(sizeof(int64_t) * (size_t)(njobs + 1));
    if (!first) return -1;
    first[0] = 0;
    for (int k = 0; k < njobs; k++) first[k + 1] = first[k] + (jobs[k].numel + SPAN - 1) / SPAN;
    /* One thread where there is little work (waking one costs more) or few items. */
    if (nthreads < 1 || total < MULTI_MIN) nthreads = 1;
    if (nthreads > first[njobs]) nthreads = first[njobs] > 0 ? (int)first[njobs] : 1;
    int64_t *counts = calloc((size_t)nthreads * 2 * (njobs ? njobs : 1), sizeof(int64_t));
    if (!counts) {
        free(first);
        return -1;
    }
    work_list list = {jobs, njobs, first, 0};
#ifdef _OPENMP
    if (nthreads > 1) {
#pragma omp parallel num_threads(nthreads)
        work(&list, counts + (size_t)omp_get_thread_num() * 2 * njobs);
    } else
#endif
        work(&list, counts);
    for (int k = 0; k < njobs; k++) {
        jobs[k].written = jobs[k].skipped = 0;
        for (int t = 0; t < nthreads; t++) {
            jobs[k].written += counts[(size_t)t * 2 * njobs + 2 * k];
            jobs[k].skipped += counts[(size_t)t * 2 * njobs + 2 * k + 1];
        }
    }
    free(first);
    free(counts);
    return 0;
}

/* 1 if the kernel was built with OpenMP (the step then runs on several threads), else 0. */
int eapu_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* 1 if every element of every tensor is finite, else 0 (dtypes: 0 float32, 1 float64). */
int eapu_all_finite(void *const *ptrs, const int64_t *numels, const int32_t *dtypes, int n) {
    for (int k = 0; k < n; k++) {
        int bad = 0;
        if (dtypes[k] == 0) {
            const float *x = (const float *)ptrs[k];
            for (int64_t i = 0; i < numels[k]; i++) bad |= !(fabs(x[i]) <= MAX_float);
        } else {
            const double *x = (const double *)ptrs[k];
            for (int64_t i = 0; i < numels[k]; i++) bad |= !(fabs(x[i]) <= MAX_double);
        }
        if (bad) return 0;
    }
    return 1;
}
