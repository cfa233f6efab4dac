/*
 * exo_runtime.native._fused: one pass over a block's bytes that checksums it and decodes it.
 *
 * Checksum. CRC-32C (Castagnoli): polynomial 0x1EDC6F41 (0x82F63B78 bit-reflected), initial value and
 * final xor 0xFFFFFFFF, bits reflected -- the CRC of iSCSI (RFC 3720), ext4 and SSE4.2's crc32
 * instruction; CRC-32C("123456789") = 0xE3069283. Every function here returns exactly that standard
 * CRC of the bytes it was given, and chains like zlib's crc32: crc(b, crc(a)) == crc(a || b).
 *
 * Lanes. One crc32 instruction handles 8 bytes but waits for the previous one (a 3-cycle chain), so
 * the bytes are taken STEP = 4 x PIECE at a time and each step is cut into 4 adjacent lanes of PIECE
 * bytes whose chains run side by side. The lanes' CRCs are joined exactly: with r the CRC register
 * (no final xor), running it over B after A gives
 *     r(A || B) = r(A) * x^(8|B|)  xor  r0(B)        (mod the polynomial; r0: the run started from 0)
 * so lane 0 starts from the running register, lanes 1-3 from 0, and the step ends with the register
 * ((r0 * X ^ r1) * X ^ r2) * X ^ r3, X = x^(8 PIECE). Multiplying by the fixed X is linear in the
 * register's 4 bytes: 4 table lookups (shift[][]). Bytes after the last whole step run in one chain.
 *
 * Fused pass. A block is read front to back, once. With AVX2, each 32 bytes of a lane are checksummed
 * and decoded in the same loop iteration (step_body), the next steps prefetched; the steps that hold
 * anything else than whole elements (the int8 scales, a RAG chunk's raw bytes, a short tail) are
 * checksummed and then decoded from L1 (the staged path, also the portable one). Decoders: fp32 (a
 * copy), fp16 (half -> float), bf16 (the high half of a float), int8 (q * the scale of its group; the
 * scales, fp16 or fp32 after the data and a small part of the block, are read first). Decoded values
 * equal the torch codecs' bit for bit. A call whose output is large (set_stream_bytes) writes it with
 * non-temporal stores: it would not stay in cache for its reader anyway, and they spare the cache and
 * the read-for-ownership of every output line.
 *
 * Dispatch. x86-64 CPUs with SSE4.2 (crc32) and AVX2 + F16C get the fast kernels, compiled with
 * __attribute__((target)) so that the module itself needs no -march; any other CPU (or set_simd(False),
 * for tests) runs portable C: table-driven CRC (slicing by 8) and bit-level half -> float. Both give
 * the same results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define EXO_X86 1
#else
#define EXO_X86 0
#endif

#define POLY 0x82F63B78u     /* CRC-32C, bit-reflected */
#define PIECE 1024           /* bytes of one lane in a step (a power of 2, a multiple of 32) */
#define STEP (4 * PIECE)     /* bytes checksummed and decoded together */
#define PREFETCH (4 * STEP)  /* how far ahead of the loop the next bytes are asked for */

enum { DEC_NONE = 0, DEC_F32 = 1, DEC_F16 = 2, DEC_BF16 = 3, DEC_I8 = 4 };
static const size_t WIDTH[] = {1, 4, 2, 2, 1}; /* encoded bytes per element, by decoder */

static uint32_t table[8][256]; /* table[t][b]: the register after byte b then t zero bytes */
static uint32_t shift[4][256]; /* shift[k][b]: (byte b at byte k of a register) * x^(8 PIECE) mod P */
static int have_crc_hw, have_avx2;
static int use_simd = 1;
static size_t stream_bytes = (size_t)16 << 20; /* a call's output this large goes out non-temporally;
                                                  exo_runtime.native sets half the L3 cache where known */

/* ------------------------------------------------------------------ GF(2) arithmetic for joins */

/* a * b mod P, both reflected (bit 31 is x^0): walk a's terms from x^0 up, multiplying b by x each time. */
static uint32_t mulmod(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    for (uint32_t m = 0x80000000u; m; m >>= 1) {
        if (a & m)
            r ^= b;
        b = (b & 1) ? (b >> 1) ^ POLY : b >> 1;
    }
    return r;
}

/* The register r times x^(8 PIECE): as if PIECE zero bytes had run through it. */
static inline uint32_t shift_piece(uint32_t r)
{
    return shift[0][r & 0xff] ^ shift[1][(r >> 8) & 0xff] ^ shift[2][(r >> 16) & 0xff] ^ shift[3][r >> 24];
}

static inline uint32_t join4(uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3)
{
    return shift_piece(shift_piece(shift_piece(r0) ^ r1) ^ r2) ^ r3;
}

static void make_tables(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][b] = c;
    }
    for (int t = 1; t < 8; t++)
        for (uint32_t b = 0; b < 256; b++)
            table[t][b] = (table[t - 1][b] >> 8) ^ table[0][table[t - 1][b] & 0xff];
    uint32_t x = 0x80000000u >> 8; /* x^8, squared up to x^(8 PIECE) */
    for (size_t n = 1; n < PIECE; n *= 2)
        x = mulmod(x, x);
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++)
            shift[k][b] = mulmod(b << (8 * k), x);
}

/* ------------------------------------------------------------------ CRC kernels (registers, no final xor) */

static uint32_t crc_portable(uint32_t r, const uint8_t *p, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= r; /* the register meets the first 4 bytes */
        r = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
            table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
            table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
    }
#endif
    for (; n; n--)
        r = (r >> 8) ^ table[0][(r ^ *p++) & 0xff];
    return r;
}

/* One step: 4 lanes, each continuing from r[i]. */
static void crc4_portable(uint32_t r[4], const uint8_t *p)
{
    for (int i = 0; i < 4; i++)
        r[i] = crc_portable(r[i], p + i * PIECE, PIECE);
}

#if EXO_X86
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t r, const uint8_t *p, size_t n)
{
    uint64_t c = r;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
    }
    r = (uint32_t)c;
    for (; n; n--)
        r = _mm_crc32_u8(r, *p++);
    return r;
}

__attribute__((target("sse4.2"))) static void crc4_hw(uint32_t r[4], const uint8_t *p)
{
    uint64_t c0 = r[0], c1 = r[1], c2 = r[2], c3 = r[3];
    for (size_t i = 0; i < PIECE; i += 8) {
        uint64_t w[4];
        for (int j = 0; j < 4; j++)
            memcpy(&w[j], p + j * PIECE + i, 8);
        if ((i & 63) == 0)
            for (int j = 0; j < 4; j++)
                __builtin_prefetch(p + j * PIECE + i + PREFETCH);
        c0 = _mm_crc32_u64(c0, w[0]);
        c1 = _mm_crc32_u64(c1, w[1]);
        c2 = _mm_crc32_u64(c2, w[2]);
        c3 = _mm_crc32_u64(c3, w[3]);
    }
    r[0] = (uint32_t)c0, r[1] = (uint32_t)c1, r[2] = (uint32_t)c2, r[3] = (uint32_t)c3;
}
#endif

/* ------------------------------------------------------------------ decoders */

/* IEEE half -> float, exactly (subnormals, infinities and NaN payloads kept). */
static inline float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp) {
        bits = sign | ((exp + 112) << 23) | (man << 13); /* rebias 15 -> 127 */
    } else if (man) {                                    /* subnormal: normalise */
        int e = 113;
        while (!(man & 0x400)) {
            man <<= 1;
            e--;
        }
        bits = sign | ((uint32_t)e << 23) | ((man & 0x3ff) << 13);
    } else {
        bits = sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* What a decoder needs of a codec. */
typedef struct {
    int kind;
    size_t width;       /* encoded bytes per element */
    size_t elements;
    size_t group;       /* int8: elements per scale */
    size_t scale_off;   /* int8: byte offset of the scales in the block */
    int scale_bytes;    /* int8: 2 (fp16) or 4 (fp32) */
    float *scales;      /* int8: this block's scales, as float (filled per block) */
    int nt;             /* this call writes its output with non-temporal stores */
} decoder;

/* Bodies written once, compiled into the portable decoder and the AVX2 one (GCC vectorises them there). */
static inline __attribute__((always_inline)) void dec_bf16_body(const uint8_t *src, float *out, size_t n)
{
    uint32_t *o = (uint32_t *)out;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        o[i] = (uint32_t)h << 16;
    }
}

/* Elements [e0, e0 + n) of an int8 block; src points at element e0. */
static inline __attribute__((always_inline)) void dec_i8_body(const decoder *d, const uint8_t *src, float *out,
                                                                size_t e0, size_t n)
{
    const int8_t *q = (const int8_t *)src;
    size_t i = 0;
    while (i < n) {
        size_t g = (e0 + i) / d->group, end = (g + 1) * d->group - e0;
        if (end > n)
            end = n;
        float s = d->scales[g];
        for (; i < end; i++)
            out[i] = (float)q[i] * s;
    }
}

static void dec_f16_portable(const uint8_t *src, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        out[i] = half_to_float(h);
    }
}

/* Decode encoded bytes [a, b) of a block (a on an element boundary) into its row out. */
static void decode_portable(const decoder *d, const uint8_t *blk, size_t a, size_t b, float *out)
{
    size_t e0 = a / d->width, n = (b - a) / d->width;
    switch (d->kind) {
    case DEC_F32: memcpy(out + e0, blk + a, n * 4); break;
    case DEC_F16: dec_f16_portable(blk + a, out + e0, n); break;
    case DEC_BF16: dec_bf16_body(blk + a, out + e0, n); break;
    case DEC_I8: dec_i8_body(d, blk + a, out + e0, e0, n); break;
    }
}

#if EXO_X86
__attribute__((target("avx2,f16c"))) static void dec_f16_avx2(const uint8_t *src, float *out, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * i))));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        out[i] = half_to_float(h);
    }
}

__attribute__((target("avx2,f16c"))) static void decode_avx2(const decoder *d, const uint8_t *blk, size_t a, size_t b,
                                                              float *out)
{
    size_t e0 = a / d->width, n = (b - a) / d->width;
    switch (d->kind) {
    case DEC_F32: memcpy(out + e0, blk + a, n * 4); break;
    case DEC_F16: dec_f16_avx2(blk + a, out + e0, n); break;
    case DEC_BF16: dec_bf16_body(blk + a, out + e0, n); break;
    case DEC_I8: dec_i8_body(d, blk + a, out + e0, e0, n); break;
    }
}

/* ------------------------------------------------------------------ AVX2: checksum and decode in one loop */

static inline __attribute__((always_inline, target("avx2"))) void put8(float *p, __m256 v, int nt)
{
    if (nt)
        _mm256_stream_ps(p, v);
    else
        _mm256_storeu_ps(p, v);
}

/* Decode the 32 encoded bytes at src, element e of the block, to dst = its place in the row. */
static inline __attribute__((always_inline, target("avx2,f16c"))) void emit32(int kind, const decoder *d,
                                                                              const uint8_t *src, float *dst,
                                                                              size_t e, int nt)
{
    switch (kind) {
    case DEC_F32:
        put8(dst, _mm256_loadu_ps((const float *)src), nt);
        break;
    case DEC_F16:
        for (int h = 0; h < 2; h++)
            put8(dst + 8 * h, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 16 * h))), nt);
        break;
    case DEC_BF16:
        for (int h = 0; h < 2; h++) {
            __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + 16 * h)));
            put8(dst + 8 * h, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)), nt);
        }
        break;
    case DEC_I8: { /* the 32 elements share a scale: step_i8 runs only when the group is a multiple of 32 */
        __m256 s = _mm256_set1_ps(d->scales[e / d->group]);
        for (int q = 0; q < 4; q++) {
            __m256i w = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(src + 8 * q)));
            put8(dst + 8 * q, _mm256_mul_ps(_mm256_cvtepi32_ps(w), s), nt);
        }
        break;
    }
    }
}

/* One step at byte a of a block, all of it whole elements: each iteration takes 32 bytes of every lane
 * through the crc32 instruction and the decoder while they are in registers or L1. */
static inline __attribute__((always_inline, target("avx2,f16c,sse4.2"))) uint32_t
step_body(int kind, const decoder *d, uint32_t r, const uint8_t *blk, size_t a, float *out, int check)
{
    const size_t width = WIDTH[kind];
    uint64_t c[4] = {r, 0, 0, 0};
    for (size_t i = 0; i < PIECE; i += 32) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const uint8_t *p = blk + a + (size_t)j * PIECE + i;
            if ((i & 63) == 0)
                __builtin_prefetch(p + PREFETCH);
            if (check)
                for (int q = 0; q < 32; q += 8) {
                    uint64_t w;
                    memcpy(&w, p + q, 8);
                    c[j] = _mm_crc32_u64(c[j], w);
                }
            size_t e = (a + (size_t)j * PIECE + i) / width;
            emit32(kind, d, p, out + e, e, d->nt);
        }
    }
    return join4((uint32_t)c[0], (uint32_t)c[1], (uint32_t)c[2], (uint32_t)c[3]);
}

typedef uint32_t (*step_fn)(const decoder *, uint32_t, const uint8_t *, size_t, float *, int);

#define STEP_FOR(name, kind)                                                                                         \
    __attribute__((target("avx2,f16c,sse4.2"))) static uint32_t name(const decoder *d, uint32_t r,                  \
                                                                      const uint8_t *blk, size_t a, float *out,     \
                                                                      int check)                                    \
    {                                                                                                                \
        return step_body(kind, d, r, blk, a, out, check);                                                            \
    }
STEP_FOR(step_f32, DEC_F32)
STEP_FOR(step_f16, DEC_F16)
STEP_FOR(step_bf16, DEC_BF16)
STEP_FOR(step_i8, DEC_I8)
static const step_fn STEPS[] = {NULL, step_f32, step_f16, step_bf16, step_i8};
#endif

/* ------------------------------------------------------------------ one block, one pass */

typedef struct {
    uint32_t (*crc1)(uint32_t, const uint8_t *, size_t);
    void (*crc4)(uint32_t[4], const uint8_t *);
    void (*decode)(const decoder *, const uint8_t *, size_t, size_t, float *);
    void (*f16)(const uint8_t *, float *, size_t);
    uint32_t (*step)(const decoder *, uint32_t, const uint8_t *, size_t, float *, int); /* NULL: staged */
} kernels;

static kernels pick(const decoder *d)
{
    kernels k = {crc_portable, crc4_portable, decode_portable, dec_f16_portable, NULL};
#if EXO_X86
    if (use_simd && have_crc_hw) {
        k.crc1 = crc_hw;
        k.crc4 = crc4_hw;
    }
    if (use_simd && have_avx2) {
        k.decode = decode_avx2;
        k.f16 = dec_f16_avx2;
        if (have_crc_hw && (d->kind != DEC_I8 || d->group % 32 == 0))
            k.step = STEPS[d->kind];
    }
#else
    (void)d;
#endif
    return k;
}

static void decode_range(const kernels *k, const decoder *d, const uint8_t *blk, size_t a, size_t b, float *out)
{
    size_t limit = d->elements * d->width;
    if (d->kind != DEC_NONE && a < limit)
        k->decode(d, blk, a, b < limit ? b : limit, out);
}

/* The register after blk[0, n), starting from r (check = 0: none), and the block decoded into out. */
static uint32_t block(const kernels *k, const decoder *d, const uint8_t *blk, size_t n, uint32_t r, float *out,
                      int check)
{
    if (d->kind == DEC_I8) { /* the scales first: they sit after the data */
        size_t groups = (d->elements + d->group - 1) / d->group;
        if (d->scale_bytes == 2)
            k->f16(blk + d->scale_off, d->scales, groups);
        else
            memcpy(d->scales, blk + d->scale_off, groups * 4);
    }
    size_t a = 0, whole = d->elements * d->width; /* steps below `whole` hold elements only */
    if (k->step)
        for (; a + STEP <= whole && a + STEP <= n; a += STEP)
            r = k->step(d, r, blk, a, out, check);
    for (; a + STEP <= n; a += STEP) {
        if (check) {
            uint32_t lanes[4] = {r, 0, 0, 0};
            k->crc4(lanes, blk + a);
            r = join4(lanes[0], lanes[1], lanes[2], lanes[3]);
        }
        decode_range(k, d, blk, a, a + STEP, out);
    }
    for (; a < n; a += PIECE) {
        size_t b = a + PIECE < n ? a + PIECE : n;
        if (check)
            r = k->crc1(r, blk + a, b - a);
        decode_range(k, d, blk, a, b, out);
    }
    return r;
}

/* ------------------------------------------------------------------ Python interface */

static int addresses(PyObject *seq, const uint8_t ***out, Py_ssize_t *count)
{
    PyObject *fast = PySequence_Fast(seq, "srcs must be a sequence of addresses");
    if (!fast)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    const uint8_t **a = malloc(sizeof(*a) * (size_t)(n ? n : 1));
    if (!a) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        a[i] = PyLong_AsVoidPtr(PySequence_Fast_GET_ITEM(fast, i));
        if (!a[i] && PyErr_Occurred()) {
            free(a);
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    *out = a;
    *count = n;
    return 0;
}

PyDoc_STRVAR(crc32c_doc, "crc32c(address, nbytes, crc=0) -> int\n\n"
                         "CRC-32C of nbytes at address, continuing from crc (zlib-style chaining).");

static PyObject *py_crc32c(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *addr;
    Py_ssize_t n;
    unsigned long crc = 0;
    if (!PyArg_ParseTuple(args, "On|k", &addr, &n, &crc))
        return NULL;
    const uint8_t *p = PyLong_AsVoidPtr(addr);
    if (PyErr_Occurred())
        return NULL;
    if (n < 0 || (n && !p)) {
        PyErr_SetString(PyExc_ValueError, "crc32c: a negative length or a null address");
        return NULL;
    }
    decoder none = {DEC_NONE, 1, 0, 1, 0, 0, NULL, 0};
    kernels k = pick(&none);
    uint32_t r;
    Py_BEGIN_ALLOW_THREADS
    r = ~block(&k, &none, p, (size_t)n, ~(uint32_t)crc, NULL, 1);
    Py_END_ALLOW_THREADS
    return PyLong_FromUnsignedLong(r);
}

PyDoc_STRVAR(rows_doc,
             "rows(srcs, nbytes, kind, elements, out, out_stride, check, group=1, scale_off=0, scale_bytes=0)"
             " -> list[int] | None\n\n"
             "For each address in srcs: CRC-32C of its first nbytes (when check) and, unless kind is 0,\n"
             "its decoded elements as float32 at out + i * out_stride (bytes). kind: 0 none, 1 fp32,\n"
             "2 fp16, 3 bf16, 4 int8 (group, scale_off, scale_bytes describe the int8 layout).\n"
             "Addresses are trusted: the caller checks every size.");

static PyObject *py_rows(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *srcs, *out_addr;
    Py_ssize_t nbytes, elements, out_stride, group = 1, scale_off = 0;
    int kind, check, scale_bytes = 0;
    if (!PyArg_ParseTuple(args, "OninOnp|nni", &srcs, &nbytes, &kind, &elements, &out_addr, &out_stride, &check,
                          &group, &scale_off, &scale_bytes))
        return NULL;
    if (kind < DEC_NONE || kind > DEC_I8 || nbytes < 0 || elements < 0 || group < 1 ||
        (kind == DEC_I8 && scale_bytes != 2 && scale_bytes != 4)) {
        PyErr_SetString(PyExc_ValueError, "rows: an unknown decoder or a negative size");
        return NULL;
    }
    uint8_t *out = PyLong_AsVoidPtr(out_addr);
    if (PyErr_Occurred())
        return NULL;
    const uint8_t **src;
    Py_ssize_t count;
    if (addresses(srcs, &src, &count) < 0)
        return NULL;
    uint32_t *crcs = malloc(sizeof(uint32_t) * (size_t)(count ? count : 1));
    size_t groups = kind == DEC_I8 ? ((size_t)elements + (size_t)group - 1) / (size_t)group : 0;
    float *scales = malloc(sizeof(float) * (groups ? groups : 1));
    if (!crcs || !scales) {
        free(src), free(crcs), free(scales);
        return PyErr_NoMemory();
    }
    /* Non-temporal stores need 32-byte aligned rows; they are worth it for an output that would not
     * stay in cache for its reader anyway. */
    int nt = EXO_X86 && kind != DEC_NONE && (size_t)count * (size_t)elements * 4 >= stream_bytes &&
             ((uintptr_t)out & 31) == 0 && (out_stride & 31) == 0;
    decoder d = {kind, WIDTH[kind], (size_t)elements, (size_t)group, (size_t)scale_off, scale_bytes, scales, nt};
    kernels k = pick(&d);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++)
        crcs[i] = ~block(&k, &d, src[i], (size_t)nbytes, 0xFFFFFFFFu, (float *)(out + i * out_stride), check);
#if EXO_X86
    if (nt)
        _mm_sfence(); /* the non-temporal stores are visible before the caller reads the output */
#endif
    Py_END_ALLOW_THREADS
    PyObject *res = Py_None;
    if (check) {
        res = PyList_New(count);
        for (Py_ssize_t i = 0; res && i < count; i++) {
            PyObject *v = PyLong_FromUnsignedLong(crcs[i]);
            if (!v) {
                Py_CLEAR(res);
                break;
            }
            PyList_SET_ITEM(res, i, v);
        }
    } else {
        Py_INCREF(res);
    }
    free(src), free(crcs), free(scales);
    return res;
}

PyDoc_STRVAR(set_simd_doc, "set_simd(on) -> bool\n\nUse the SSE4.2/AVX2 kernels where the CPU has them (the default)"
                           " or the portable C ones; returns the previous setting.");

static PyObject *py_set_simd(PyObject *self, PyObject *arg)
{
    (void)self;
    int on = PyObject_IsTrue(arg);
    if (on < 0)
        return NULL;
    int before = use_simd;
    use_simd = on;
    return PyBool_FromLong(before);
}

PyDoc_STRVAR(set_stream_bytes_doc, "set_stream_bytes(n) -> int\n\nA rows() call whose float32 output is at least n"
                                   " bytes writes it with non-temporal stores; returns the previous n.");

static PyObject *py_set_stream_bytes(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    size_t before = stream_bytes;
    stream_bytes = n < 0 ? 0 : (size_t)n;
    return PyLong_FromSize_t(before);
}

PyDoc_STRVAR(features_doc, "features() -> dict\n\nWhich fast kernels this CPU can run and whether they are on.");

static PyObject *py_features(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return Py_BuildValue("{s:O,s:O,s:O}", "crc32_instruction", have_crc_hw ? Py_True : Py_False, "avx2_f16c",
                         have_avx2 ? Py_True : Py_False, "simd", use_simd ? Py_True : Py_False);
}

static PyMethodDef methods[] = {
    {"crc32c", py_crc32c, METH_VARARGS, crc32c_doc},
    {"rows", py_rows, METH_VARARGS, rows_doc},
    {"set_simd", py_set_simd, METH_O, set_simd_doc},
    {"set_stream_bytes", py_set_stream_bytes, METH_O, set_stream_bytes_doc},
    {"features", py_features, METH_NOARGS, features_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fused",
                                    "Fused CRC-32C checksum and decode of block rows (see fused.c).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fused(void)
{
    make_tables();
#if EXO_X86
    __builtin_cpu_init();
    have_crc_hw = __builtin_cpu_supports("sse4.2");
    have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#endif
    return PyModule_Create(&module);
}
