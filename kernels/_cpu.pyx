# cython: language_level=3
"""CPU image kernels of vetrina (private: call them through ``vetrina.kernels``).

Every public wrapper validates its arguments before calling in here; the checks below only
guard memory safety (shapes, boxes, channel counts) and are not meant as user-facing errors.

Layout of this module:

* a C core (the verbatim block below): per-row resampling engines that run without the GIL.
  - ``vt_pre_*``: uint8 HxWxC image -> 3 float32/float16 planes (preprocess);
  - ``vt_f*``: float32/float16 planes -> float rows, then ``vt_post_row`` (uint8 HWC image)
    or ``vt_adapt_row`` (float32/float16 planes).
  Resampling is separable: a horizontal pass per source row (kept in a per-thread two-row
  cache, so upscales compute each source row once), then a vertical pass over the tap rows.
  Exact integer shortcuts are used where they are bit-identical to the general formula (see
  docs/kernels.md) or where the contract defines them (area with integer factors; the
  OpenCV-compatible uint8 mode).
* Cython code: tap tables (computed once per image and axis), descriptors, and ONE OpenMP
  region per call running over every output row of the batch (dynamic schedule).
* ``_alpha.pxi`` (included at the end): the alpha (matting) kernels, which reuse the tap
  tables and the float row engine above; ``_cutout.pxi``: the empty-matte edge statistics
  and the RGBA cut-out; ``_tiles.pxi``: the feathered blend of overlapping tiles.

Numerics: all float arithmetic is float32 in a fixed order and the build uses
-ffp-contract=off, so the results equal the numpy references in tests/kernels/reference.py
bit for bit. The GCC/Clang vector-extension paths compute exactly the same operations per
lane as the scalar paths (``set_simd(False)`` switches them off; the tests compare both).
"""

cimport openmp
from cython.parallel cimport prange
from libc.math cimport ceil, floor, lrintf
from libc.stdint cimport int32_t, uint16_t, uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

import numpy as np

cdef extern from *:
    """
    #include <math.h>
    #include <stdint.h>
    #include <string.h>

    #if defined(__SSE2__) && !defined(VT_SCALAR_ONLY)
    #define VT_SSE 1
    #include <emmintrin.h>
    #else
    #define VT_SSE 0
    #endif
    /* AVX2 paths: compiled with a target attribute, used only where the CPU has AVX2 */
    #if VT_SSE && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    #define VT_AVX2 1
    #include <immintrin.h>
    #define VT_TARGET_AVX2 __attribute__((target("avx2")))
    #else
    #define VT_AVX2 0
    #endif
    /* 0: scalar paths only; 1: SSE2; 2: SSE2 + AVX2 (tests compare all, bit for bit) */
    static int vt_simd = 1;       /* SSE2 on/off */
    static int vt_avx2 = 1;       /* AVX2 on/off (when the CPU has it) */
    static int vt_avx2_ok = -1;
    static int vt_level(void) {
    #if VT_AVX2
        if (vt_avx2_ok < 0) vt_avx2_ok = __builtin_cpu_supports("avx2") ? 1 : 0;
    #else
        vt_avx2_ok = 0;
    #endif
        return vt_simd ? 1 + (vt_avx2 && vt_avx2_ok) : 0;
    }
    #if defined(__GNUC__)
    #define VT_INLINE static inline __attribute__((always_inline))
    #else
    #define VT_INLINE static inline
    #endif

    /* ---------------- float16 <-> float32 (bit exact, round to nearest even) ---------------- */

    static inline uint16_t vt_f2h(float f) {
        uint32_t x, a, sign, norm, subn, nan, r, sb;
        float fa, sub;
        memcpy(&x, &f, 4);
        sign = (x >> 16) & 0x8000u;
        a = x & 0x7fffffffu;
        /* normal half: rebias the exponent, round the 13 dropped bits to nearest even */
        norm = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;
        /* subnormal half: let the float adder round (the magic 0.5 aligns the mantissa) */
        memcpy(&fa, &a, 4);
        sub = fa + 0.5f;
        memcpy(&sb, &sub, 4);
        subn = sb - 0x3f000000u;
        /* inf stays inf; NaN keeps its top payload bits (as numpy does), never becomes inf */
        nan = 0x7c00u | ((a & 0x7fffffu) >> 13);
        nan = (a > 0x7f800000u) ? (nan | ((nan & 0x3ffu) ? 0u : 1u)) : 0x7c00u;
        r = (a < 0x38800000u) ? subn : norm;
        r = (a >= 0x47800000u) ? nan : r;
        return (uint16_t)(r | sign);
    }

    static inline float vt_h2f(uint16_t h) {
        uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7fffu, bits = em << 13, fb;
        float f;
        memcpy(&f, &bits, 4);
        f *= 5.192296858534828e+33f;          /* 2^112: exact for normal and subnormal halves */
        memcpy(&fb, &f, 4);
        fb = (em >= 0x7c00u) ? (bits | 0x7f800000u) : fb;
        fb |= sign;
        memcpy(&f, &fb, 4);
        return f;
    }

    #if VT_SSE
    /* 4 bytes at p -> 4 floats */
    static inline __m128 vt_px(const unsigned char *p) {
        int32_t u;
        __m128i z = _mm_setzero_si128(), b;
        memcpy(&u, p, 4);
        b = _mm_cvtsi32_si128(u);
        b = _mm_unpacklo_epi16(_mm_unpacklo_epi8(b, z), z);
        return _mm_cvtepi32_ps(b);
    }
    /* 4 pixel vectors (c0, c1, c2, x) -> 4 values of each of the planes o0, o1, o2 */
    static inline void vt_st3(float *o0, float *o1, float *o2, __m128 p0, __m128 p1, __m128 p2,
                              __m128 p3) {
        __m128 t0 = _mm_unpacklo_ps(p0, p1), t1 = _mm_unpacklo_ps(p2, p3);
        __m128 t2 = _mm_unpackhi_ps(p0, p1), t3 = _mm_unpackhi_ps(p2, p3);
        __m128 a = _mm_movelh_ps(t0, t1), b = _mm_movehl_ps(t1, t0), c = _mm_movelh_ps(t2, t3);
        _mm_storeu_ps(o0, a); _mm_storeu_ps(o1, b); _mm_storeu_ps(o2, c);
    }
    static inline void vt_st1(float *o0, float *o1, float *o2, __m128 p) {
        float t[4];
        _mm_storeu_ps(t, p);
        *o0 = t[0]; *o1 = t[1]; *o2 = t[2];
    }
    #endif

    /* ---------------- per-thread scratch ---------------- */

    #define VT_SLOTS 2
    #define VT_MAXC 64
    typedef struct {
        float *slot[VT_SLOTS];      /* cached horizontal rows: planes of `cap` values */
        const void *kimg[VT_SLOTS]; /* cache key: image descriptor ... */
        Py_ssize_t krow[VT_SLOTS];  /* ... and source row offset */
        int last;                   /* slot used last */
        float *acc;                 /* value rows: planes of `cap` floats */
        uint16_t *vs;               /* column sums of the integer box path (+ 8 spare) */
        Py_ssize_t cap;
        /* lanczos: horizontal rows cached in nring slots (source row k in slot k % nring, so
           a window of up to nring rows stays cached), each 3 planes of `cap` floats; fb: one
           source row as float pixels (4 floats each, output channel order) */
        float *ring;
        const void **rimg;          /* ring keys: image descriptor ... */
        Py_ssize_t *rrow;           /* ... and source row offset */
        int nring;
        float *fb;
    } vt_scr;

    static inline int vt_slot_find(vt_scr *s, const void *img, Py_ssize_t row) {
        int i;
        for (i = 0; i < VT_SLOTS; i++)
            if (s->kimg[i] == img && s->krow[i] == row) { s->last = i; return i; }
        return -1;
    }
    static inline int vt_slot_take(vt_scr *s, const void *img, Py_ssize_t row) {
        int i = 1 - s->last;        /* never the slot of the other tap of this output row */
        s->kimg[i] = img; s->krow[i] = row; s->last = i;
        return i;
    }

    /* ---------------- output writers (float32 or float16 planes) ---------------- */

    static void vt_fill(char *o, int f16, Py_ssize_t n, float v) {
        Py_ssize_t i;
        if (f16) {
            uint16_t h = vt_f2h(v), *q = (uint16_t *)o;
            for (i = 0; i < n; i++) q[i] = h;
        } else {
            float *q = (float *)o;
            for (i = 0; i < n; i++) q[i] = v;
        }
    }

    #if VT_SSE
    /* vt_f2h on 4 lanes (same integer steps; selects instead of ?:) -> 4 x u32 half bits */
    static inline __m128i vt_f2h4(__m128 f) {
        __m128i x = _mm_castps_si128(f), one = _mm_set1_epi32(1);
        __m128i sign = _mm_and_si128(_mm_srli_epi32(x, 16), _mm_set1_epi32(0x8000));
        __m128i a = _mm_and_si128(x, _mm_set1_epi32(0x7fffffff));
        __m128i norm = _mm_srli_epi32(_mm_add_epi32(_mm_add_epi32(a, _mm_set1_epi32((int)0xc8000fffu)),
                                                    _mm_and_si128(_mm_srli_epi32(a, 13), one)), 13);
        __m128i subn = _mm_sub_epi32(_mm_castps_si128(_mm_add_ps(_mm_castsi128_ps(a),
                                                                 _mm_set1_ps(0.5f))),
                                     _mm_set1_epi32(0x3f000000));
        __m128i nan = _mm_or_si128(_mm_set1_epi32(0x7c00),
                                   _mm_srli_epi32(_mm_and_si128(a, _mm_set1_epi32(0x7fffff)), 13));
        __m128i nolow = _mm_cmpeq_epi32(_mm_and_si128(nan, _mm_set1_epi32(0x3ff)), _mm_setzero_si128());
        __m128i isnan = _mm_cmpgt_epi32(a, _mm_set1_epi32(0x7f800000));
        __m128i big = _mm_cmpgt_epi32(a, _mm_set1_epi32(0x477fffff));
        __m128i small = _mm_cmpgt_epi32(_mm_set1_epi32(0x38800000), a);
        __m128i r, infnan;
        nan = _mm_or_si128(nan, _mm_and_si128(nolow, one));
        infnan = _mm_or_si128(_mm_and_si128(isnan, nan), _mm_andnot_si128(isnan, _mm_set1_epi32(0x7c00)));
        r = _mm_or_si128(_mm_and_si128(small, subn), _mm_andnot_si128(small, norm));
        r = _mm_or_si128(_mm_and_si128(big, infnan), _mm_andnot_si128(big, r));
        return _mm_or_si128(r, sign);
    }
    /* 8 values -> 8 float16 at q */
    static inline void vt_st8h(uint16_t *q, __m128 v0, __m128 v1) {
        __m128i h0 = vt_f2h4(v0), h1 = vt_f2h4(v1);
        h0 = _mm_srai_epi32(_mm_slli_epi32(h0, 16), 16);   /* so the signed pack keeps the bits */
        h1 = _mm_srai_epi32(_mm_slli_epi32(h1, 16), 16);
        _mm_storeu_si128((__m128i *)q, _mm_packs_epi32(h0, h1));
    }
    #endif

    /* o[i] = ((a[i] * wa [+ b[i] * wb]) * sc + of), float32 or float16; nb: b is used;
       wa == 1 and !nb: a[i] * sc + of (a * 1 == a) */
    static void vt_emit(char *o, int f16, const float *restrict a, float wa, const float *restrict b,
                        float wb, int nb, Py_ssize_t n, float sc, float of) {
        Py_ssize_t i = 0;
        int one = !nb && wa == 1.0f;
    #if VT_SSE
        if (vt_simd) {
            __m128 s4 = _mm_set1_ps(sc), o4 = _mm_set1_ps(of), wa4 = _mm_set1_ps(wa),
                   wb4 = _mm_set1_ps(wb);
    #define VT_E4(J)                                                                           \\
            _mm_add_ps(_mm_mul_ps(                                                             \\
                nb ? _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(a + (J)), wa4),                        \\
                                _mm_mul_ps(_mm_loadu_ps(b + (J)), wb4))                        \\
                   : (one ? _mm_loadu_ps(a + (J)) : _mm_mul_ps(_mm_loadu_ps(a + (J)), wa4)),   \\
                s4), o4)
            if (f16) {
                uint16_t *restrict q = (uint16_t *)o;
                for (; i + 8 <= n; i += 8) vt_st8h(q + i, VT_E4(i), VT_E4(i + 4));
            } else {
                float *restrict q = (float *)o;
                for (; i + 4 <= n; i += 4) _mm_storeu_ps(q + i, VT_E4(i));
            }
    #undef VT_E4
        }
    #endif
        if (f16) {
            uint16_t *restrict q = (uint16_t *)o;
            if (nb) for (; i < n; i++) q[i] = vt_f2h((a[i] * wa + b[i] * wb) * sc + of);
            else if (!one) for (; i < n; i++) q[i] = vt_f2h((a[i] * wa) * sc + of);
            else for (; i < n; i++) q[i] = vt_f2h(a[i] * sc + of);
        } else {
            float *restrict q = (float *)o;
            if (nb) for (; i < n; i++) q[i] = (a[i] * wa + b[i] * wb) * sc + of;
            else if (!one) for (; i < n; i++) q[i] = (a[i] * wa) * sc + of;
            else for (; i < n; i++) q[i] = a[i] * sc + of;
        }
    }

    /* ================= Lanczos (a = 3) taps: PIL's ImagingResample ================= */

    /* sin(pi x) with only double +, *, floor (no libm, no FMA: -ffp-contract=off), so that
       the CUDA kernels (preprocess.cu vt_sinpi) and the numpy reference get the same bits:
       n = floor(x + 1/2), r = x - n (|r| <= 1/2), the Taylor series of sin(pi r) to r^23 in
       Horner form, times (-1)^n; exactly 0 at the integers. Within a few ulps of sin(pi x). */
    static const double vt_sinpi_c[12] = {
        3.141592653589793, -5.16771278004997, 2.5501640398773455, -0.5992645293207921,
        0.08214588661112823, -0.0073704309457143504, 0.00046630280576761255,
        -2.1915353447830217e-05, 7.952054001475513e-07, -2.2948428997269873e-08,
        5.392664662608129e-10, -1.0518471716932065e-11};
    static double vt_sinpi(double x) {
        double n = floor(x + 0.5), r = x - n, z, s;
        int k;
        if (r == 0.0) return 0.0;
        z = r * r;
        s = vt_sinpi_c[11];
        for (k = 10; k >= 0; k--) s = s * z + vt_sinpi_c[k];
        s = s * r;
        return ((long long)n & 1) ? -s : s;
    }
    static double vt_sinc(double x) {
        return x == 0.0 ? 1.0 : vt_sinpi(x) / (x * 3.141592653589793);
    }
    /* lanczos(t) = sinc(t) * sinc(t / 3) for |t| < 3, else 0 */
    static double vt_lanczos(double t) {
        return (t > -3.0 && t < 3.0) ? vt_sinc(t) * vt_sinc(t / 3.0) : 0.0;
    }

    /* one axis, source length S -> D: scale = S / D, filterscale = max(scale, 1),
       support = 3 * filterscale; output d: center = (d + 0.5) * scale, source window
       [max((int)(center - support + 0.5), 0), min((int)(center + support + 0.5), S)),
       raw weight of k: lanczos((k - center + 0.5) * (1 / filterscale)) (PIL's ss) */
    typedef struct { double scale, support, ss; Py_ssize_t S; } vt_lz_axis;
    static vt_lz_axis vt_lz_init(Py_ssize_t S, Py_ssize_t D) {
        vt_lz_axis a;
        double fs;
        a.scale = (double)S / (double)D;
        fs = a.scale < 1.0 ? 1.0 : a.scale;
        a.support = 3.0 * fs;
        a.ss = 1.0 / fs;
        a.S = S;
        return a;
    }
    static double vt_lz_window(const vt_lz_axis *a, Py_ssize_t d, Py_ssize_t *lo, Py_ssize_t *hi) {
        double center = ((double)d + 0.5) * a->scale;
        Py_ssize_t x0 = (Py_ssize_t)(center - a->support + 0.5);  /* truncation, as PIL's (int) */
        Py_ssize_t x1 = (Py_ssize_t)(center + a->support + 0.5);
        *lo = x0 < 0 ? 0 : x0;
        *hi = x1 > a->S ? a->S : x1;
        return center;
    }
    static inline double vt_lz_raw(const vt_lz_axis *a, double center, Py_ssize_t k) {
        return vt_lanczos(((double)k - center + 0.5) * a->ss);
    }
    /* the most taps of one output index (the table's T) */
    static int vt_lanczos_ntaps(Py_ssize_t S, Py_ssize_t D) {
        vt_lz_axis a = vt_lz_init(S, D);
        Py_ssize_t d, lo, hi, m = 1;
        for (d = 0; d < D; d++) {
            vt_lz_window(&a, d, &lo, &hi);
            if (hi - lo > m) m = hi - lo;
        }
        return (int)m;
    }
    /* T taps per index (byte offsets k * stride, float32 weights raw / sum(raw) computed in
       double; the sum in tap order, left alone when 0); unused taps repeat the last offset
       with weight 0. raw: scratch for T doubles. Returns -1 if an index needs more than T
       taps. */
    static int vt_lanczos_taps(Py_ssize_t S, Py_ssize_t D, Py_ssize_t stride, int T,
                               Py_ssize_t *off, float *w, int *n, double *raw) {
        vt_lz_axis a = vt_lz_init(S, D);
        Py_ssize_t d, lo, hi, k, base, j;
        for (d = 0; d < D; d++) {
            double center = vt_lz_window(&a, d, &lo, &hi), ww = 0.0;
            base = d * T;
            if (hi - lo > T || hi <= lo) return -1;
            for (k = lo; k < hi; k++) {
                raw[k - lo] = vt_lz_raw(&a, center, k);
                ww += raw[k - lo];
            }
            for (k = lo; k < hi; k++) {
                double v = raw[k - lo];
                if (ww != 0.0) v = v / ww;
                off[base + k - lo] = k * stride;
                w[base + k - lo] = (float)v;
            }
            n[d] = (int)(hi - lo);
            for (j = hi - lo; j < T; j++) {
                off[base + j] = off[base + j - 1];
                w[base + j] = 0.0f;
            }
        }
        return 0;
    }

    /* ================= preprocess: uint8 image -> 3 float planes ================= */

    enum { VT_SEP = 0, VT_BOX = 1, VT_U8 = 2 };

    typedef struct {
        const unsigned char *base;  /* source box origin */
        Py_ssize_t s0, s1;          /* row and pixel strides (bytes) */
        Py_ssize_t coff[3];         /* byte offset of the source channel of output channel c */
        int nch;                    /* channels of the source view: 1, 3, 4 */
        int top, left, ch, cw;      /* content box in the output */
        int mode;
        int vec;                    /* 4-byte pixel loads allowed (3/4 channels, stride 1) */
        Py_ssize_t xmax;            /* largest x tap offset */
        Py_ssize_t safe_end;        /* a load of b bytes at offset o is in bounds iff o+b <= this */
        /* VT_SEP: T taps per index (zero weights pad), byte offsets; VT_U8: 2 taps, ints */
        const Py_ssize_t *xo; const float *xw; int xt;
        const Py_ssize_t *yo; const float *yw; const int *yn; int yt;
        const int32_t *xi; const int32_t *yi;
        /* VT_BOX: output (x, y) sums the bw x bh block at (kx*x + ox, ky*y + oy) */
        int kx, ky, ox, oy, bw, bh, boxfast, round2;
        int wide;                   /* bw * bh > VT_BOX_U32_PIXELS: 64-bit sums */
        float q;
        /* VT_SEP lanczos: x taps are pixel indices; rows go through vt_pre_hlz (float pixels,
           clamped to [0, 255]) into the thread's ring when it is deep enough */
        int lz;
        int sw;                     /* lanczos: source box width */
    } vt_pre;

    /* per-row output context of preprocess */
    typedef struct {
        char *o[3];                 /* output plane rows, at the content's left edge */
        int f16;
        const float *sc, *of;
    } vt_prow;

    /* horizontal pass of one source row (byte offset yoff) -> 3 float planes */
    static void vt_pre_h(const vt_pre *p, Py_ssize_t yoff, float *restrict h, Py_ssize_t cap) {
        const unsigned char *r = p->base + yoff;
        const Py_ssize_t *restrict xo = p->xo;
        const float *restrict xw = p->xw;
        float *restrict h0 = h, *restrict h1 = h + cap, *restrict h2 = h + 2 * cap;
        int cw = p->cw, T = p->xt, x = 0, k;
    #if VT_SSE
        if (p->vec && vt_simd && yoff + p->xmax + 4 <= p->safe_end) {
            /* lanes = source channels; d* = planes of source lanes 0, 1, 2 */
            float *d0 = p->coff[0] ? h2 : h0, *d2 = p->coff[0] ? h0 : h2;
    #define VT_TAPS(X, V)                                                                  \\
            if (T == 2) {                                                                  \\
                V = _mm_add_ps(_mm_mul_ps(vt_px(r + xo[2 * (X)]), _mm_set1_ps(xw[2 * (X)])), \\
                               _mm_mul_ps(vt_px(r + xo[2 * (X) + 1]),                      \\
                                          _mm_set1_ps(xw[2 * (X) + 1])));                  \\
            } else {                                                                       \\
                const Py_ssize_t *o_ = xo + (Py_ssize_t)(X) * T;                           \\
                const float *w_ = xw + (Py_ssize_t)(X) * T;                                \\
                V = _mm_mul_ps(vt_px(r + o_[0]), _mm_set1_ps(w_[0]));                      \\
                for (k = 1; k < T; k++)                                                    \\
                    V = _mm_add_ps(V, _mm_mul_ps(vt_px(r + o_[k]), _mm_set1_ps(w_[k])));  \\
            }
            for (; x + 4 <= cw; x += 4) {
                __m128 v0, v1, v2, v3;
                VT_TAPS(x, v0) VT_TAPS(x + 1, v1) VT_TAPS(x + 2, v2) VT_TAPS(x + 3, v3)
                vt_st3(d0 + x, h1 + x, d2 + x, v0, v1, v2, v3);
            }
            for (; x < cw; x++) {
                __m128 v;
                VT_TAPS(x, v)
                vt_st1(d0 + x, h1 + x, d2 + x, v);
            }
    #undef VT_TAPS
            return;
        }
    #endif
        {
            const unsigned char *r0 = r + p->coff[0], *r1 = r + p->coff[1], *r2 = r + p->coff[2];
            if (T == 2) {
                for (x = 0; x < cw; x++) {
                    Py_ssize_t a = xo[2 * x], b = xo[2 * x + 1];
                    float w0 = xw[2 * x], w1 = xw[2 * x + 1];
                    h0[x] = (float)r0[a] * w0 + (float)r0[b] * w1;
                    h1[x] = (float)r1[a] * w0 + (float)r1[b] * w1;
                    h2[x] = (float)r2[a] * w0 + (float)r2[b] * w1;
                }
            } else {
                for (x = 0; x < cw; x++) {
                    const Py_ssize_t *o = xo + (Py_ssize_t)x * T;
                    const float *w = xw + (Py_ssize_t)x * T;
                    float a0 = (float)r0[o[0]] * w[0], a1 = (float)r1[o[0]] * w[0],
                          a2 = (float)r2[o[0]] * w[0];
                    for (k = 1; k < T; k++) {
                        a0 = a0 + (float)r0[o[k]] * w[k];
                        a1 = a1 + (float)r1[o[k]] * w[k];
                        a2 = a2 + (float)r2[o[k]] * w[k];
                    }
                    h0[x] = a0; h1[x] = a1; h2[x] = a2;
                }
            }
        }
    }

    /* lanczos, one source row: its sw pixels as floats, 4 per pixel, lanes = output
       channels (the 4th lane is unused) */
    static void vt_lz_pixels(const vt_pre *p, Py_ssize_t yoff, float *restrict fb) {
        const unsigned char *r = p->base + yoff;
        Py_ssize_t i = 0, sw = p->sw, s1 = p->s1;
    #if VT_SSE
        if (p->vec && vt_simd) {
            int swap = p->coff[0] != 0;
            for (; i < sw && yoff + i * s1 + 4 <= p->safe_end; i++) {
                __m128 v = vt_px(r + i * s1);
                if (swap) v = _mm_shuffle_ps(v, v, _MM_SHUFFLE(3, 0, 1, 2));
                _mm_store_ps(fb + 4 * i, v);
            }
        }
    #endif
        for (; i < sw; i++) {
            const unsigned char *q = r + i * s1;
            fb[4 * i] = (float)q[p->coff[0]];
            fb[4 * i + 1] = (float)q[p->coff[1]];
            fb[4 * i + 2] = (float)q[p->coff[2]];
            fb[4 * i + 3] = 0.0f;
        }
    }

    /* lanczos horizontal pass from the float pixels: all T taps in order (zero-weight padding
       included, as vt_pre_h), then clamped to [0, 255] (PIL's uint8 intermediate image, without
       its rounding): v < 0 ? 0 : v, then v > 255 ? 255 : v (maxps/minps with the constant
       first are exactly these). SSE2: 4 outputs at a time, independent sums. */
    static void vt_pre_hlz(const vt_pre *p, const float *restrict fb, float *restrict h,
                           Py_ssize_t cap) {
        const Py_ssize_t *restrict xo = p->xo;
        const float *restrict xw = p->xw;
        float *restrict h0 = h, *restrict h1 = h + cap, *restrict h2 = h + 2 * cap;
        int cw = p->cw, T = p->xt, x = 0, k, c;
    #if VT_SSE
        if (vt_simd) {
            __m128 lo = _mm_setzero_ps(), hi = _mm_set1_ps(255.0f);
    #define VT_LZ1(O, W) _mm_mul_ps(_mm_load_ps(fb + 4 * (O)), _mm_set1_ps(W))
            for (; x + 4 <= cw; x += 4) {
                const Py_ssize_t *o = xo + (Py_ssize_t)x * T;
                const float *w = xw + (Py_ssize_t)x * T;
                __m128 v0 = VT_LZ1(o[0], w[0]), v1 = VT_LZ1(o[T], w[T]);
                __m128 v2 = VT_LZ1(o[2 * T], w[2 * T]), v3 = VT_LZ1(o[3 * T], w[3 * T]);
                for (k = 1; k < T; k++) {
                    v0 = _mm_add_ps(v0, VT_LZ1(o[k], w[k]));
                    v1 = _mm_add_ps(v1, VT_LZ1(o[T + k], w[T + k]));
                    v2 = _mm_add_ps(v2, VT_LZ1(o[2 * T + k], w[2 * T + k]));
                    v3 = _mm_add_ps(v3, VT_LZ1(o[3 * T + k], w[3 * T + k]));
                }
                v0 = _mm_min_ps(hi, _mm_max_ps(lo, v0));
                v1 = _mm_min_ps(hi, _mm_max_ps(lo, v1));
                v2 = _mm_min_ps(hi, _mm_max_ps(lo, v2));
                v3 = _mm_min_ps(hi, _mm_max_ps(lo, v3));
                vt_st3(h0 + x, h1 + x, h2 + x, v0, v1, v2, v3);
            }
            for (; x < cw; x++) {
                const Py_ssize_t *o = xo + (Py_ssize_t)x * T;
                const float *w = xw + (Py_ssize_t)x * T;
                __m128 v = VT_LZ1(o[0], w[0]);
                for (k = 1; k < T; k++) v = _mm_add_ps(v, VT_LZ1(o[k], w[k]));
                vt_st1(h0 + x, h1 + x, h2 + x, _mm_min_ps(hi, _mm_max_ps(lo, v)));
            }
    #undef VT_LZ1
            return;
        }
    #endif
        for (; x < cw; x++) {
            const Py_ssize_t *o = xo + (Py_ssize_t)x * T;
            const float *w = xw + (Py_ssize_t)x * T;
            for (c = 0; c < 3; c++) {
                float a = fb[4 * o[0] + c] * w[0];
                for (k = 1; k < T; k++) a = a + fb[4 * o[k] + c] * w[k];
                a = a < 0.0f ? 0.0f : a;
                a = a > 255.0f ? 255.0f : a;
                h[c * cap + x] = a;
            }
        }
    }

    static const float *vt_pre_hget(const vt_pre *p, vt_scr *s, Py_ssize_t yoff) {
        int i;
        if (p->lz) {
            float *h;
            if (s->nring >= p->yt) {
                /* a window's rows are consecutive source rows: distinct slots */
                Py_ssize_t k = p->s0 ? yoff / p->s0 : 0;
                i = (int)(k % s->nring);
                h = s->ring + (Py_ssize_t)i * 3 * s->cap;
                if (s->rimg[i] == (const void *)p && s->rrow[i] == yoff) return h;
                s->rimg[i] = p;
                s->rrow[i] = yoff;
            } else {
                i = vt_slot_find(s, p, yoff);
                if (i >= 0) return s->slot[i];
                i = vt_slot_take(s, p, yoff);
                h = s->slot[i];
            }
            vt_lz_pixels(p, yoff, s->fb);
            vt_pre_hlz(p, s->fb, h, s->cap);
            return h;
        }
        i = vt_slot_find(s, p, yoff);
        if (i < 0) {
            i = vt_slot_take(s, p, yoff);
            vt_pre_h(p, yoff, s->slot[i], s->cap);
        }
        return s->slot[i];
    }

    /* separable taps: vertical pass fused with the output mapping when there are <= 2 rows */
    static void vt_pre_sep(const vt_pre *p, int dy, vt_scr *s, const vt_prow *w) {
        const Py_ssize_t *yo = p->yo + (Py_ssize_t)dy * p->yt;
        const float *yw = p->yw + (Py_ssize_t)dy * p->yt;
        int n = p->yn[dy], j, x, cw = p->cw, c;
        Py_ssize_t cap = s->cap;
        float *restrict acc = s->acc;
        const float *h0 = vt_pre_hget(p, s, yo[0]), *h1;
        if (n <= 2) {
            h1 = n == 2 ? vt_pre_hget(p, s, yo[1]) : h0;
            for (c = 0; c < 3; c++)
                vt_emit(w->o[c], w->f16, h0 + c * cap, yw[0], h1 + c * cap, yw[1], n == 2, cw,
                        w->sc[c], w->of[c]);
            return;
        }
        for (c = 0; c < 3; c++)
            for (x = 0; x < cw; x++) acc[c * cap + x] = h0[c * cap + x] * yw[0];
        for (j = 1; j < n; j++) {
            const float *restrict h = vt_pre_hget(p, s, yo[j]);
            float wj = yw[j];
            for (c = 0; c < 3; c++)
                for (x = 0; x < cw; x++) acc[c * cap + x] = acc[c * cap + x] + h[c * cap + x] * wj;
        }
        for (c = 0; c < 3; c++)
            vt_emit(w->o[c], w->f16, acc + c * cap, 1.0f, acc, 0.0f, 0, cw, w->sc[c], w->of[c]);
    }

    #if VT_SSE
    /* 2x2 box, pixel stride 3 or 4, fused (no column-sum pass): lanes = source channels */
    static inline __m128i vt_box22_px(const unsigned char *a, const unsigned char *b, int s1) {
        __m128i z = _mm_setzero_si128();
        __m128i t = _mm_add_epi16(_mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)a), z),
                                  _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)b), z));
        t = _mm_add_epi16(t, s1 == 3 ? _mm_srli_si128(t, 6) : _mm_srli_si128(t, 8));
        return _mm_unpacklo_epi16(t, z);
    }
    /* any box with u16 column sums: lanes = source channels */
    static inline __m128i vt_boxv_px(const uint16_t *v, int bw, Py_ssize_t s1) {
        __m128i a = _mm_loadl_epi64((const __m128i *)v);
        int j;
        for (j = 1; j < bw; j++)
            a = _mm_add_epi16(a, _mm_loadl_epi64((const __m128i *)(v + j * s1)));
        return _mm_unpacklo_epi16(a, _mm_setzero_si128());
    }
    typedef struct {
        float *d[3];                /* destination plane of source lane 0, 1, 2 */
        __m128 m1, m2, a4;          /* value = float(sum) * m1 [* m2] + a4, per lane */
    } vt_boxmap;
    VT_INLINE __m128 vt_boxmap_px(__m128i s, const vt_boxmap *m, const int R2, const int TM) {
        __m128 v = _mm_cvtepi32_ps(R2 ? _mm_srli_epi32(_mm_add_epi32(s, _mm_set1_epi32(2)), 2) : s);
        v = _mm_mul_ps(v, m->m1);
        if (TM) v = _mm_mul_ps(v, m->m2);
        return _mm_add_ps(v, m->a4);
    }
    /* columns [x, end) of a 2x2 box row; the compile-time flags select one specialised loop */
    VT_INLINE int vt_box22_run(const unsigned char *ra, const unsigned char *rb, Py_ssize_t step,
                               int x, int end, const vt_boxmap *m, Py_ssize_t pf, const int S1,
                               const int R2, const int TM) {
        float *d0 = m->d[0], *d1 = m->d[1], *d2 = m->d[2];
        for (; x + 4 <= end; x += 4) {
            const unsigned char *pa = ra + x * step, *pb = rb + x * step;
            if (pf) {   /* the rows of the next output row: short streams the prefetcher misses */
                _mm_prefetch((const char *)(pa + pf), _MM_HINT_T0);
                _mm_prefetch((const char *)(pb + pf), _MM_HINT_T0);
            }
            __m128 p0 = vt_boxmap_px(vt_box22_px(pa, pb, S1), m, R2, TM);
            __m128 p1 = vt_boxmap_px(vt_box22_px(pa + step, pb + step, S1), m, R2, TM);
            __m128 p2 = vt_boxmap_px(vt_box22_px(pa + 2 * step, pb + 2 * step, S1), m, R2, TM);
            __m128 p3 = vt_boxmap_px(vt_box22_px(pa + 3 * step, pb + 3 * step, S1), m, R2, TM);
            vt_st3(d0 + x, d1 + x, d2 + x, p0, p1, p2, p3);
        }
        for (; x < end; x++)
            vt_st1(d0 + x, d1 + x, d2 + x,
                   vt_boxmap_px(vt_box22_px(ra + x * step, rb + x * step, S1), m, R2, TM));
        return x;
    }
    VT_INLINE int vt_boxv_run(const uint16_t *vs, Py_ssize_t s1, int kx, int bw, int x, int end,
                              const vt_boxmap *m, const int R2, const int TM) {
        float *d0 = m->d[0], *d1 = m->d[1], *d2 = m->d[2];
        Py_ssize_t st = (Py_ssize_t)kx * s1;
        for (; x + 4 <= end; x += 4) {
            const uint16_t *v = vs + x * st;
            __m128 p0 = vt_boxmap_px(vt_boxv_px(v, bw, s1), m, R2, TM);
            __m128 p1 = vt_boxmap_px(vt_boxv_px(v + st, bw, s1), m, R2, TM);
            __m128 p2 = vt_boxmap_px(vt_boxv_px(v + 2 * st, bw, s1), m, R2, TM);
            __m128 p3 = vt_boxmap_px(vt_boxv_px(v + 3 * st, bw, s1), m, R2, TM);
            vt_st3(d0 + x, d1 + x, d2 + x, p0, p1, p2, p3);
        }
        for (; x < end; x++)
            vt_st1(d0 + x, d1 + x, d2 + x, vt_boxmap_px(vt_boxv_px(vs + x * st, bw, s1), m, R2, TM));
        return x;
    }
    #define VT_DISPATCH2(CALL, R2, TM)                                                      \\
        ((R2) ? ((TM) ? CALL(1, 1) : CALL(1, 0)) : ((TM) ? CALL(0, 1) : CALL(0, 0)))
    #endif

    /* integer box sums: exact, so the summation order is free. value = float(sum) * q (or
       (sum + 2) >> 2 for the OpenCV uint8 2x mode), then mapped. */
    /* the most pixels of a block whose uint8 sum fits 32 bits: 255 * 16843009 < 2^32 */
    #define VT_BOX_U32_PIXELS 16843009LL
    /* vt_pre_box's scalar values of columns x.. of blocks past VT_BOX_U32_PIXELS pixels, in
       64-bit sums (an 8192 x 8192 block -> 1 pixel holds 2^26 pixels: a 32-bit sum of 255s
       wrapped to 63 per pixel). Out of line: it leaves the common path's code as it was.
       (round2 blocks are 2 x 2, never here.) */
    #if defined(__GNUC__)
    __attribute__((noinline, cold))
    #endif
    static void vt_pre_box_wide(const vt_pre *p, const unsigned char *r, int x, float *acc,
                                Py_ssize_t cap) {
        Py_ssize_t s0 = p->s0, s1 = p->s1, i, j;
        int c, xx;
        for (c = 0; c < 3; c++) {
            float *a = acc + c * cap;
            for (xx = x; xx < p->cw; xx++) {
                const unsigned char *px = r + (Py_ssize_t)p->kx * xx * s1 + p->coff[c];
                uint64_t t = 0;
                for (i = 0; i < p->bh; i++)
                    for (j = 0; j < p->bw; j++) t += px[i * s0 + j * s1];
                a[xx] = (float)t * p->q;
            }
        }
    }
    static void vt_pre_box(const vt_pre *p, int dy, vt_scr *s, const vt_prow *w) {
        int cw = p->cw, kx = p->kx, bw = p->bw, bh = p->bh, ox = p->ox, x = 0, i, j, c;
        Py_ssize_t cap = s->cap, s1 = p->s1, s0 = p->s0;
        float *acc = s->acc, q = p->q;
        const unsigned char *r = p->base + (Py_ssize_t)(p->ky * dy + p->oy) * s0
                                 + (Py_ssize_t)ox * s1;
    #if VT_SSE
        /* u16 sums: 255 * bw * bh <= 65535 (the product in 64 bits: blocks reach 2^40) */
        if (p->boxfast && vt_simd && (long long)bw * bh <= 257 && (s1 == 3 || s1 == 4)) {
            /* lanes = source channels; destination planes and per-lane constants */
            int l, f16 = w->f16, cl[3], twomul = 0;
            float m1[4] = {1, 1, 1, 1}, m2[4] = {1, 1, 1, 1}, a4[4] = {0, 0, 0, 0};
            vt_boxmap m;
            for (c = 0; c < 3; c++) cl[p->coff[c]] = c;        /* lane -> output channel */
            for (l = 0; l < 3; l++) {
                c = cl[l];
                m.d[l] = f16 ? acc + c * cap : (float *)w->o[c];
                m1[l] = q;
                if (!f16) { m2[l] = w->sc[c]; a4[l] = w->of[c]; }
            }
            /* q a power of two (bilinear; area 2x, 4x, ...): q * sc is exact (unless it is
               subnormal), so value * (q * sc) == (value * q) * sc: one multiply */
            for (l = 0; l < 3; l++) {
                float k = m1[l] * m2[l];
                uint32_t b;
                memcpy(&b, &m1[l], 4);
                if ((b & 0x7fffffu) || (k != 0.0f && k < 1.17549435e-38f && k > -1.17549435e-38f))
                    twomul = 1;
            }
            if (!twomul) for (l = 0; l < 3; l++) { m1[l] = m1[l] * m2[l]; m2[l] = 1.0f; }
            m.m1 = _mm_loadu_ps(m1); m.m2 = _mm_loadu_ps(m2); m.a4 = _mm_loadu_ps(a4);
            if (bw == 2 && bh == 2) {
                const unsigned char *ra = r, *rb = r + s0;
                Py_ssize_t step = (Py_ssize_t)kx * s1;
                /* 8-byte loads: the last pixels of a row may not have 8 readable bytes */
                int safe = cw;
                /* prefetch distance: the next output row, while it is inside the image */
                Py_ssize_t pf = (Py_ssize_t)p->ky * s0;
                if (dy + 1 >= p->ch || step * 4 > 64) pf = 0;
                while (safe > 0 && (rb - p->base) + (safe - 1) * step + 8 > p->safe_end) safe--;
                while (safe > 0 && (ra - p->base) + (safe - 1) * step + 8 > p->safe_end) safe--;
    #define VT_C22(R2, TM) (s1 == 3 ? vt_box22_run(ra, rb, step, 0, safe, &m, pf, 3, R2, TM) \\
                                    : vt_box22_run(ra, rb, step, 0, safe, &m, pf, 4, R2, TM))
                x = VT_DISPATCH2(VT_C22, p->round2, twomul);
    #undef VT_C22
            } else {
                /* column sums over the bytes of the needed pixels, then along the row */
                Py_ssize_t n = ((Py_ssize_t)kx * (cw - 1) + bw - 1) * s1 + p->nch, k;
                uint16_t *restrict vs = s->vs;
                const unsigned char *restrict ri = r, *restrict rj;
                if (bh >= 2) {
                    rj = r + s0;
                    for (k = 0; k < n; k++) vs[k] = (uint16_t)(ri[k] + rj[k]);
                    i = 2;
                } else {
                    for (k = 0; k < n; k++) vs[k] = ri[k];
                    i = 1;
                }
                for (; i < bh; i++) {
                    ri = r + i * s0;
                    for (k = 0; k < n; k++) vs[k] = (uint16_t)(vs[k] + ri[k]);
                }
                for (k = n; k < n + 4; k++) vs[k] = 0;
    #define VT_CV(R2, TM) vt_boxv_run(vs, s1, kx, bw, 0, cw, &m, R2, TM)
                x = VT_DISPATCH2(VT_CV, p->round2, twomul);
    #undef VT_CV
            }
            if (x == cw) {
                if (f16)   /* acc holds the values: map and convert */
                    for (c = 0; c < 3; c++)
                        vt_emit(w->o[c], 1, acc + c * cap, 1.0f, acc, 0.0f, 0, cw, w->sc[c],
                                w->of[c]);
                return;
            }
        }
    #endif
        /* scalar: values of columns x.. into acc (float32 output: columns < x are written).
           32-bit sums while 255 * bw * bh fits them (bw * bh <= VT_BOX_U32_PIXELS), 64-bit
           sums beyond (vt_pre_box_wide). */
        if (p->wide) {
            vt_pre_box_wide(p, r, x, acc, cap);
        } else {
            for (c = 0; c < 3; c++) {
                float *a = acc + c * cap;
                int xx;
                for (xx = x; xx < cw; xx++) {
                    const unsigned char *px = r + (Py_ssize_t)kx * xx * s1 + p->coff[c];
                    uint32_t t = 0;
                    for (i = 0; i < bh; i++)
                        for (j = 0; j < bw; j++) t += px[i * s0 + j * s1];
                    a[xx] = p->round2 ? (float)((t + 2u) >> 2) : (float)t * q;
                }
            }
        }
        {
            int from = w->f16 ? 0 : x, es = w->f16 ? 2 : 4;
            for (c = 0; c < 3; c++)
                vt_emit(w->o[c] + (Py_ssize_t)from * es, w->f16, acc + c * cap + from, 1.0f, acc,
                        0.0f, 0, cw - from, w->sc[c], w->of[c]);
        }
    }

    /* OpenCV INTER_LINEAR for 8U: 11-bit fixed-point weights, rows as ints */
    static const int32_t *vt_pre_u8h(const vt_pre *p, vt_scr *s, Py_ssize_t yoff) {
        int i = vt_slot_find(s, p, yoff), x, c;
        int32_t *h;
        if (i >= 0) return (const int32_t *)s->slot[i];
        i = vt_slot_take(s, p, yoff);
        h = (int32_t *)s->slot[i];
        for (c = 0; c < 3; c++) {
            const unsigned char *restrict r = p->base + yoff + p->coff[c];
            int32_t *restrict hc = h + c * s->cap;
            for (x = 0; x < p->cw; x++)
                hc[x] = (int32_t)r[p->xo[2 * x]] * p->xi[2 * x]
                        + (int32_t)r[p->xo[2 * x + 1]] * p->xi[2 * x + 1];
        }
        return h;
    }

    static void vt_pre_u8(const vt_pre *p, int dy, vt_scr *s, const vt_prow *w) {
        const int32_t *h0 = vt_pre_u8h(p, s, p->yo[2 * dy]);
        const int32_t *h1 = vt_pre_u8h(p, s, p->yo[2 * dy + 1]);
        int32_t b0 = p->yi[2 * dy], b1 = p->yi[2 * dy + 1], v;
        Py_ssize_t cap = s->cap, c;
        int x;
        for (c = 0; c < 3; c++) {
            for (x = 0; x < p->cw; x++) {
                v = (((b0 * (h0[c * cap + x] >> 4)) >> 16) + ((b1 * (h1[c * cap + x] >> 4)) >> 16)
                     + 2) >> 2;
                s->acc[c * cap + x] = (float)(v > 255 ? 255 : v);
            }
            vt_emit(w->o[c], w->f16, s->acc + c * cap, 1.0f, s->acc, 0.0f, 0, p->cw, w->sc[c],
                    w->of[c]);
        }
    }

    /* one output row y of one image: pad, or pad + content */
    static void vt_pre_row(const vt_pre *p, int y, char *o, Py_ssize_t plane, int W, int f16,
                           const float *sc, const float *of, const float *pad, vt_scr *s) {
        int es = f16 ? 2 : 4, c, right = W - p->left - p->cw;
        vt_prow w;
        if (y < p->top || y >= p->top + p->ch) {
            for (c = 0; c < 3; c++) vt_fill(o + c * plane, f16, W, pad[c]);
            return;
        }
        for (c = 0; c < 3; c++) {
            char *oc = o + c * plane;
            if (p->left) vt_fill(oc, f16, p->left, pad[c]);
            if (right) vt_fill(oc + (Py_ssize_t)(p->left + p->cw) * es, f16, right, pad[c]);
            w.o[c] = oc + (Py_ssize_t)p->left * es;
        }
        w.f16 = f16; w.sc = sc; w.of = of;
        if (p->mode == VT_BOX) vt_pre_box(p, y - p->top, s, &w);
        else if (p->mode == VT_U8) vt_pre_u8(p, y - p->top, s, &w);
        else vt_pre_sep(p, y - p->top, s, &w);
    }

    /* ================= float planes (float32/float16) -> float rows ================= */

    typedef struct {
        const char *base;           /* source box origin (channel 0) */
        Py_ssize_t s0, s1;          /* row and column strides (bytes) */
        Py_ssize_t coff[VT_MAXC];   /* byte offset of the source plane of value plane c */
        int nc;                     /* value planes */
        int f16;                    /* source is float16 */
        int cw, ch;                 /* value rows: ch rows of cw values */
        int xid;                    /* identity x taps on contiguous float32: rows used in place */
        int xup2;                   /* exact 2x bilinear upscale on contiguous float32 rows */
        const Py_ssize_t *xo; const float *xw; const int *xn; int xt;
        const Py_ssize_t *yo; const float *yw; const int *yn; int yt;
    } vt_fsrc;

    #define VT_FH_LOOP(LD)                                                                   \\
        if (T == 2) {                                                                         \\
            for (x = 0; x < cw; x++) {                                                        \\
                float a = LD(r + xo[2 * x]) * xw[2 * x];                                      \\
                if (xn[x] > 1) a = a + LD(r + xo[2 * x + 1]) * xw[2 * x + 1];                 \\
                h[x] = a;                                                                     \\
            }                                                                                 \\
        } else {                                                                              \\
            for (x = 0; x < cw; x++) {                                                        \\
                const Py_ssize_t *o = xo + (Py_ssize_t)x * T;                                 \\
                const float *w = xw + (Py_ssize_t)x * T;                                      \\
                float a = LD(r + o[0]) * w[0];                                                \\
                for (k = 1; k < xn[x]; k++) a = a + LD(r + o[k]) * w[k];                      \\
                h[x] = a;                                                                     \\
            }                                                                                 \\
        }
    #define VT_LD32(q) (*(const float *)(q))
    #define VT_LD16(q) vt_h2f(*(const uint16_t *)(q))

    /* horizontal pass of one plane row; taps past the count (weight 0) are never read */
    static void vt_fh(const vt_fsrc *p, const char *r, float *restrict h) {
        const Py_ssize_t *restrict xo = p->xo;
        const float *restrict xw = p->xw;
        const int *restrict xn = p->xn;
        int cw = p->cw, T = p->xt, x = 0, k;
    #if VT_SSE
        if (vt_simd && p->xup2) {
            /* exact 2x: out[2m] = p[m-1]*0.25 + p[m]*0.75, out[2m+1] = p[m]*0.75 + p[m+1]*0.25
               for the interior (the tables say so; checked when they are built) */
            const float *q = (const float *)r;
            __m128 qa = _mm_set1_ps(0.25f), qb = _mm_set1_ps(0.75f);
            int m, S = cw / 2;
            for (m = 1; m + 5 <= S; m += 4) {
                __m128 A = _mm_loadu_ps(q + m - 1), B = _mm_loadu_ps(q + m), C = _mm_loadu_ps(q + m + 1);
                __m128 ev = _mm_add_ps(_mm_mul_ps(A, qa), _mm_mul_ps(B, qb));
                __m128 od = _mm_add_ps(_mm_mul_ps(B, qb), _mm_mul_ps(C, qa));
                _mm_storeu_ps(h + 2 * m, _mm_unpacklo_ps(ev, od));
                _mm_storeu_ps(h + 2 * m + 4, _mm_unpackhi_ps(ev, od));
            }
            /* outputs 0, 1 and [2m, cw) from the tables */
            for (x = 0; x < cw; x++) {
                float a;
                if (x == 2) x = 2 * m;
                a = VT_LD32(r + xo[2 * x]) * xw[2 * x];
                if (xn[x] > 1) a = a + VT_LD32(r + xo[2 * x + 1]) * xw[2 * x + 1];
                h[x] = a;
            }
            return;
        }
        if (vt_simd && T == 2 && !p->f16) {
            /* 4 outputs per step: gathered taps, both sums, a select where one tap is used */
            __m128i one = _mm_set1_epi32(1);
            for (; x + 4 <= cw; x += 4) {
                const Py_ssize_t *o = xo + 2 * x;
                __m128 a = _mm_setr_ps(VT_LD32(r + o[0]), VT_LD32(r + o[2]), VT_LD32(r + o[4]),
                                       VT_LD32(r + o[6]));
                __m128 b = _mm_setr_ps(VT_LD32(r + o[1]), VT_LD32(r + o[3]), VT_LD32(r + o[5]),
                                       VT_LD32(r + o[7]));
                __m128 wa = _mm_loadu_ps(xw + 2 * x), wb = _mm_loadu_ps(xw + 2 * x + 4);
                __m128 s1 = _mm_mul_ps(a, _mm_shuffle_ps(wa, wb, _MM_SHUFFLE(2, 0, 2, 0)));
                __m128 s2 = _mm_add_ps(s1, _mm_mul_ps(b, _mm_shuffle_ps(wa, wb,
                                                                        _MM_SHUFFLE(3, 1, 3, 1))));
                __m128 m = _mm_castsi128_ps(_mm_cmpgt_epi32(
                    _mm_loadu_si128((const __m128i *)(xn + x)), one));
                _mm_storeu_ps(h + x, _mm_or_ps(_mm_and_ps(m, s2), _mm_andnot_ps(m, s1)));
            }
            if (x == cw) return;
            h += x; xo += 2 * x; xw += 2 * x; xn += x; cw -= x; x = 0;
        }
    #endif
        if (p->f16) { VT_FH_LOOP(VT_LD16) } else { VT_FH_LOOP(VT_LD32) }
    }

    static void vt_fget(const vt_fsrc *p, vt_scr *s, Py_ssize_t yoff, const float **hp) {
        int i, c;
        if (p->xid) {
            for (c = 0; c < p->nc; c++) hp[c] = (const float *)(p->base + p->coff[c] + yoff);
            return;
        }
        i = vt_slot_find(s, p, yoff);
        if (i < 0) {
            i = vt_slot_take(s, p, yoff);
            for (c = 0; c < p->nc; c++)
                vt_fh(p, p->base + p->coff[c] + yoff, s->slot[i] + c * s->cap);
        }
        for (c = 0; c < p->nc; c++) hp[c] = s->slot[i] + c * s->cap;
    }

    /* value row dy = a[c] * wa (+ b[c] * wb when nb): the vertical pass is left to the writer
       when it has at most 2 rows (a row of weight 1 is then read in place) */
    typedef struct {
        const float *a[VT_MAXC];
        const float *b[VT_MAXC];
        float wa, wb;
        int nb;
    } vt_vrow;

    static void vt_fvalue(const vt_fsrc *p, int dy, vt_scr *s, vt_vrow *v) {
        const Py_ssize_t *yo = p->yo + (Py_ssize_t)dy * p->yt;
        const float *yw = p->yw + (Py_ssize_t)dy * p->yt;
        int n = p->yn[dy], j, x, c, cw = p->cw;
        vt_fget(p, s, yo[0], v->a);
        v->wa = yw[0];
        v->wb = yw[1];
        v->nb = 0;
        if (n == 1) return;
        if (n == 2) {
            vt_fget(p, s, yo[1], v->b);
            v->nb = 1;
            return;
        }
        for (c = 0; c < p->nc; c++) {
            float *restrict acc = s->acc + c * s->cap;
            const float *restrict h = v->a[c];
            for (x = 0; x < cw; x++) acc[x] = h[x] * yw[0];
        }
        for (j = 1; j < n; j++) {
            float w = yw[j];
            vt_fget(p, s, yo[j], v->b);
            for (c = 0; c < p->nc; c++) {
                float *restrict acc = s->acc + c * s->cap;
                const float *restrict h = v->b[c];
                for (x = 0; x < cw; x++) acc[x] = acc[x] + h[x] * w;
            }
        }
        for (c = 0; c < p->nc; c++) v->a[c] = s->acc + c * s->cap;
        v->wa = 1.0f;
    }

    /* ================= postprocess: 3 float planes -> uint8 (h, w, 3|4) ================= */

    typedef struct {
        vt_fsrc src;                /* 3 value planes, in output channel order */
        unsigned char *obase;       /* output image, C-contiguous (oh, ow, nout) */
        int ow, nout;
        int top, left;              /* content box (top, left, src.ch, src.cw) in the output */
        unsigned char fill[3];
        const unsigned char *abase; /* alpha (oh, ow) or NULL */
        Py_ssize_t as0, as1;
        float sc[3], of[3];         /* per output channel */
    } vt_post;

    static inline unsigned char vt_u8(float v) {
        v = (v >= 0.0f) ? v : 0.0f;    /* NaN and negatives -> 0 */
        v = (v <= 255.0f) ? v : 255.0f;
        return (unsigned char)(v + 0.5f);  /* v + 0.5 >= 0.5: truncation is floor */
    }

    #if VT_SSE
    static inline __m128i vt_u8x4(__m128 v, __m128 sc, __m128 of) {
        v = _mm_add_ps(_mm_mul_ps(v, sc), of);
        v = _mm_max_ps(v, _mm_setzero_ps());      /* maxps returns the 2nd operand on NaN */
        v = _mm_min_ps(v, _mm_set1_ps(255.0f));
        return _mm_cvttps_epi32(_mm_add_ps(v, _mm_set1_ps(0.5f)));
    }
    #endif

    static void vt_post_fill(const vt_post *p, unsigned char *o, const unsigned char *ar,
                             int x0, int x1) {
        int x, n = p->nout;
        for (x = x0; x < x1; x++) {
            o[x * n] = p->fill[0]; o[x * n + 1] = p->fill[1]; o[x * n + 2] = p->fill[2];
            if (ar) o[x * n + 3] = ar[x * p->as1];
        }
    }

    #if VT_AVX2
    /* AVX2 writer: 8 pixels per step, same operations per value as vt_post_emit; returns the
       first column it did not write */
    VT_TARGET_AVX2 static int vt_post_emit_avx2(const vt_post *p, const vt_vrow *v,
                                                unsigned char *q, const unsigned char *a, int cw,
                                                int nb, int one) {
        const float *a0 = v->a[0], *a1 = v->a[1], *a2 = v->a[2];
        const float *b0 = v->b[0], *b1 = v->b[1], *b2 = v->b[2];
        __m256 s0 = _mm256_set1_ps(p->sc[0]), s1 = _mm256_set1_ps(p->sc[1]),
               s2 = _mm256_set1_ps(p->sc[2]), f0 = _mm256_set1_ps(p->of[0]),
               f1 = _mm256_set1_ps(p->of[1]), f2 = _mm256_set1_ps(p->of[2]),
               wa = _mm256_set1_ps(v->wa), wb = _mm256_set1_ps(v->wb),
               zero = _mm256_setzero_ps(), top = _mm256_set1_ps(255.0f), half = _mm256_set1_ps(0.5f);
        __m256i pack = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
                                        0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
        Py_ssize_t as1 = p->as1;
        int x = 0;
    #define VT_V8(A, B)                                                                      \\
        (nb ? _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps((A) + x), wa),                    \\
                            _mm256_mul_ps(_mm256_loadu_ps((B) + x), wb))                    \\
            : (one ? _mm256_loadu_ps((A) + x) : _mm256_mul_ps(_mm256_loadu_ps((A) + x), wa)))
    #define VT_U8X8(V, S, F)                                                                 \\
        _mm256_cvttps_epi32(_mm256_add_ps(_mm256_min_ps(_mm256_max_ps(                       \\
            _mm256_add_ps(_mm256_mul_ps(V, S), F), zero), top), half))
    #define VT_PX8                                                                           \\
        _mm256_or_si256(_mm256_or_si256(VT_U8X8(VT_V8(a0, b0), s0, f0),                      \\
                                        _mm256_slli_epi32(VT_U8X8(VT_V8(a1, b1), s1, f1), 8)), \\
                        _mm256_slli_epi32(VT_U8X8(VT_V8(a2, b2), s2, f2), 16))
        if (a) {
            for (; x + 8 <= cw; x += 8) {
                __m256i px = VT_PX8, al;
                if (as1 == 1) {
                    al = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(a + x)));
                } else {
                    al = _mm256_setr_epi32(a[x * as1], a[(x + 1) * as1], a[(x + 2) * as1],
                                           a[(x + 3) * as1], a[(x + 4) * as1], a[(x + 5) * as1],
                                           a[(x + 6) * as1], a[(x + 7) * as1]);
                }
                _mm256_storeu_si256((__m256i *)(q + 4 * x), _mm256_or_si256(px, _mm256_slli_epi32(al, 24)));
            }
        } else {
            /* 8 pixels = 24 bytes as two 16-byte stores of 12 bytes each: the second ends 4
               bytes past the 8 pixels, so stay 2 pixels clear of the row end */
            for (; x + 10 <= cw; x += 8) {
                __m256i px = _mm256_shuffle_epi8(VT_PX8, pack);
                _mm_storeu_si128((__m128i *)(q + 3 * x), _mm256_castsi256_si128(px));
                _mm_storeu_si128((__m128i *)(q + 3 * x + 12), _mm256_extracti128_si256(px, 1));
            }
        }
    #undef VT_V8
    #undef VT_U8X8
    #undef VT_PX8
        return x;
    }
    #endif

    #define VT_VAL(A, B, X) (nb ? (A)[X] * wa + (B)[X] * wb : (one ? (A)[X] : (A)[X] * wa))
    #if VT_SSE
    #define VT_VAL4(A, B, X)                                                                 \\
        (nb ? _mm_add_ps(_mm_mul_ps(_mm_loadu_ps((A) + (X)), wa4),                          \\
                         _mm_mul_ps(_mm_loadu_ps((B) + (X)), wb4))                          \\
            : (one ? _mm_loadu_ps((A) + (X)) : _mm_mul_ps(_mm_loadu_ps((A) + (X)), wa4)))
    #endif

    VT_INLINE void vt_post_emit(const vt_post *p, const vt_vrow *v, unsigned char *restrict q,
                                const unsigned char *a, int cw, const int nb, const int one) {
        int x = 0;
    #if VT_AVX2
        if (vt_level() >= 2) x = vt_post_emit_avx2(p, v, q, a, cw, nb, one);
    #endif
        const float *restrict a0 = v->a[0], *restrict a1 = v->a[1], *restrict a2 = v->a[2];
        const float *restrict b0 = v->b[0], *restrict b1 = v->b[1], *restrict b2 = v->b[2];
        float wa = v->wa, wb = v->wb;
        Py_ssize_t as1 = p->as1;
    #if VT_SSE
        if (vt_simd) {
            __m128 s0 = _mm_set1_ps(p->sc[0]), s1 = _mm_set1_ps(p->sc[1]), s2 = _mm_set1_ps(p->sc[2]),
                   f0 = _mm_set1_ps(p->of[0]), f1 = _mm_set1_ps(p->of[1]), f2 = _mm_set1_ps(p->of[2]),
                   wa4 = _mm_set1_ps(wa), wb4 = _mm_set1_ps(wb);
            __m128i lo = _mm_set_epi32(0, -1, 0, -1), hi = _mm_set_epi32(-1, 0, -1, 0);
            if (a) {
                for (; x + 4 <= cw; x += 4) {
                    __m128i px = _mm_or_si128(
                        _mm_or_si128(vt_u8x4(VT_VAL4(a0, b0, x), s0, f0),
                                     _mm_slli_epi32(vt_u8x4(VT_VAL4(a1, b1, x), s1, f1), 8)),
                        _mm_slli_epi32(vt_u8x4(VT_VAL4(a2, b2, x), s2, f2), 16));
                    __m128i al = _mm_set_epi32(a[(x + 3) * as1], a[(x + 2) * as1],
                                               a[(x + 1) * as1], a[x * as1]);
                    _mm_storeu_si128((__m128i *)(q + 4 * x),
                                     _mm_or_si128(px, _mm_slli_epi32(al, 24)));
                }
            } else {
                /* 4 pixels = 12 bytes, as two overlapping 8-byte stores; the second one ends 2
                   bytes past the 4 pixels, so stay 2 pixels clear of the row end */
                for (; x + 5 <= cw; x += 4) {
                    __m128i px = _mm_or_si128(
                        _mm_or_si128(vt_u8x4(VT_VAL4(a0, b0, x), s0, f0),
                                     _mm_slli_epi32(vt_u8x4(VT_VAL4(a1, b1, x), s1, f1), 8)),
                        _mm_slli_epi32(vt_u8x4(VT_VAL4(a2, b2, x), s2, f2), 16));
                    px = _mm_or_si128(_mm_and_si128(px, lo), _mm_srli_epi64(_mm_and_si128(px, hi), 8));
                    _mm_storel_epi64((__m128i *)(q + 3 * x), px);
                    _mm_storel_epi64((__m128i *)(q + 3 * x + 6), _mm_srli_si128(px, 8));
                }
            }
        }
    #endif
        if (a) {
            for (; x < cw; x++) {
                q[4 * x] = vt_u8(VT_VAL(a0, b0, x) * p->sc[0] + p->of[0]);
                q[4 * x + 1] = vt_u8(VT_VAL(a1, b1, x) * p->sc[1] + p->of[1]);
                q[4 * x + 2] = vt_u8(VT_VAL(a2, b2, x) * p->sc[2] + p->of[2]);
                q[4 * x + 3] = a[x * as1];
            }
        } else {
            for (; x < cw; x++) {
                q[3 * x] = vt_u8(VT_VAL(a0, b0, x) * p->sc[0] + p->of[0]);
                q[3 * x + 1] = vt_u8(VT_VAL(a1, b1, x) * p->sc[1] + p->of[1]);
                q[3 * x + 2] = vt_u8(VT_VAL(a2, b2, x) * p->sc[2] + p->of[2]);
            }
        }
    }

    static void vt_post_row(const vt_post *p, int y, vt_scr *s) {
        unsigned char *o = p->obase + (Py_ssize_t)y * p->ow * p->nout;
        const unsigned char *ar = p->abase ? p->abase + y * p->as0 : NULL;
        vt_vrow v;
        int cw = p->src.cw;
        unsigned char *q;
        const unsigned char *a;
        if (y < p->top || y >= p->top + p->src.ch) {
            vt_post_fill(p, o, ar, 0, p->ow);
            return;
        }
        vt_post_fill(p, o, ar, 0, p->left);
        vt_post_fill(p, o, ar, p->left + cw, p->ow);
        vt_fvalue(&p->src, y - p->top, s, &v);
        q = o + (Py_ssize_t)p->left * p->nout;
        a = ar ? ar + (Py_ssize_t)p->left * p->as1 : NULL;
        if (v.nb) vt_post_emit(p, &v, q, a, cw, 1, 0);
        else if (v.wa == 1.0f) vt_post_emit(p, &v, q, a, cw, 0, 1);
        else vt_post_emit(p, &v, q, a, cw, 0, 0);
    }

    /* ================= adapt: float planes -> float planes ================= */

    typedef struct {
        vt_fsrc src;                /* value planes in output channel order, full output */
        char *obase;                /* &out[i, 0, 0, 0] */
        Py_ssize_t plane, rowb;     /* bytes per output plane and per output row */
        int f16;
        const float *sc, *of;       /* per output channel */
    } vt_adapt;

    static void vt_adapt_row(const vt_adapt *p, int y, vt_scr *s) {
        vt_vrow v;
        int c;
        vt_fvalue(&p->src, y, s, &v);
        for (c = 0; c < p->src.nc; c++)
            vt_emit(p->obase + c * p->plane + y * p->rowb, p->f16, v.a[c], v.wa,
                    v.nb ? v.b[c] : v.a[c], v.wb, v.nb, p->src.cw, p->sc[c], p->of[c]);
    }
    """
    int VT_SSE
    int VT_AVX2
    int vt_simd
    int vt_avx2
    int vt_level() noexcept nogil
    int VT_MAXC
    int VT_SEP
    int VT_BOX
    int VT_U8
    long long VT_BOX_U32_PIXELS
    uint16_t vt_f2h(float f) noexcept nogil
    float vt_h2f(uint16_t h) noexcept nogil
    int vt_lanczos_ntaps(Py_ssize_t S, Py_ssize_t D) noexcept nogil
    int vt_lanczos_taps(Py_ssize_t S, Py_ssize_t D, Py_ssize_t stride, int T, Py_ssize_t* off,
                        float* w, int* n, double* raw) noexcept nogil

    ctypedef struct vt_scr:
        float* slot[2]
        const void* kimg[2]
        Py_ssize_t krow[2]
        int last
        float* acc
        uint16_t* vs
        Py_ssize_t cap
        float* ring
        const void** rimg
        Py_ssize_t* rrow
        int nring
        float* fb

    ctypedef struct vt_pre:
        const unsigned char* base
        Py_ssize_t s0
        Py_ssize_t s1
        Py_ssize_t coff[3]
        int nch
        int top
        int left
        int ch
        int cw
        int mode
        int vec
        Py_ssize_t xmax
        Py_ssize_t safe_end
        const Py_ssize_t* xo
        const float* xw
        int xt
        const Py_ssize_t* yo
        const float* yw
        const int* yn
        int yt
        const int32_t* xi
        const int32_t* yi
        int kx
        int ky
        int ox
        int oy
        int bw
        int bh
        int boxfast
        int round2
        int wide
        float q
        int lz
        int sw

    ctypedef struct vt_fsrc:
        const char* base
        Py_ssize_t s0
        Py_ssize_t s1
        Py_ssize_t coff[64]
        int nc
        int f16
        int cw
        int ch
        int xid
        int xup2
        const Py_ssize_t* xo
        const float* xw
        const int* xn
        int xt
        const Py_ssize_t* yo
        const float* yw
        const int* yn
        int yt

    ctypedef struct vt_post:
        vt_fsrc src
        unsigned char* obase
        int ow
        int nout
        int top
        int left
        unsigned char fill[3]
        const unsigned char* abase
        Py_ssize_t as0
        Py_ssize_t as1
        float sc[3]
        float of[3]

    ctypedef struct vt_adapt:
        vt_fsrc src
        char* obase
        Py_ssize_t plane
        Py_ssize_t rowb
        int f16
        const float* sc
        const float* of

    void vt_pre_row(const vt_pre* p, int y, char* o, Py_ssize_t plane, int W, int f16,
                    const float* sc, const float* of, const float* pad, vt_scr* s) noexcept nogil
    void vt_post_row(const vt_post* p, int y, vt_scr* s) noexcept nogil
    void vt_adapt_row(const vt_adapt* p, int y, vt_scr* s) noexcept nogil


# Methods (the Python layer maps the strings).
METHOD_BILINEAR = 0
METHOD_AREA = 1
METHOD_BILINEAR_U8 = 2
METHOD_LANCZOS = 3

# Work per dynamic chunk, in output values (rows per chunk = this / row values).
cdef enum:
    CHUNK_VALUES = 16384

cdef double DBL_EPS = 2.220446049250313e-16


def set_simd(int level):
    """Highest instruction set the kernels may use: 0 scalar C, 1 SSE2, 2 SSE2 + AVX2 (the
    default; AVX2 only where the CPU has it). Returns the previous level. Results do not
    depend on it (the tests compare all levels bit for bit)."""
    global vt_simd, vt_avx2
    cdef int old = 0 if not vt_simd else (2 if vt_avx2 else 1)
    if level < 0 or level > 2:
        raise ValueError("set_simd: level must be 0, 1 or 2")
    vt_simd = 1 if level >= 1 else 0
    vt_avx2 = 1 if level >= 2 else 0
    return old


def simd_level():
    """The instruction set in use now: 0 scalar C, 1 SSE2, 2 AVX2."""
    return vt_level()


vt_level()  # probe the CPU once, at import (not racing from inside a parallel region)


cdef inline int _threads(int num_threads) noexcept nogil:
    if num_threads > 0:
        return num_threads
    return openmp.omp_get_max_threads()


cdef inline Py_ssize_t _chunk(Py_ssize_t row_values) noexcept nogil:
    if row_values >= CHUNK_VALUES:
        return 1
    return CHUNK_VALUES // max(row_values, 1)


# --------------------------------------------------------------------------------------------
# tap tables (one axis): for every output index d, T taps (byte offsets, float32 weights) and
# their count. Unused taps repeat the last offset with weight 0.
# --------------------------------------------------------------------------------------------

cdef int _linear_taps(Py_ssize_t S, Py_ssize_t D, Py_ssize_t stride, Py_ssize_t* off,
                      float* w, int* n) noexcept nogil:
    """Bilinear, OpenCV INTER_LINEAR pixel centres (T = 2), see docs/kernels.md:
    f = float32((d + 0.5) * (S / D) - 0.5); s = floor(f); f -= s; clamp to the edges;
    taps s (1 - f) and s + 1 (f); a single tap when f == 0."""
    cdef double scale = <double>S / <double>D
    cdef Py_ssize_t d, s
    cdef float f
    cdef float one = 1
    cdef float zero = 0
    for d in range(D):
        f = <float>((<double>d + 0.5) * scale - 0.5)
        s = <Py_ssize_t>floor(f)
        f = f - <float>s
        if s < 0:
            s = 0
            f = zero
        if s >= S - 1:
            s = S - 1
            f = zero
        off[2 * d] = s * stride
        w[2 * d] = one - f
        if f == zero:
            n[d] = 1
            off[2 * d + 1] = s * stride
            w[2 * d + 1] = zero
        else:
            n[d] = 2
            off[2 * d + 1] = (s + 1) * stride
            w[2 * d + 1] = f
    return 0


cdef int _area_taps(Py_ssize_t S, Py_ssize_t D, Py_ssize_t stride, int T, Py_ssize_t* off,
                    float* w, int* n) noexcept nogil:
    """Pixel-area weights exactly as OpenCV INTER_AREA builds them for one axis: for a
    downscale (S >= D) the overlap of [d*scale, (d+1)*scale) with each source pixel divided by
    the cell width (slivers under 1e-3 dropped); for an upscale OpenCV's 2-tap area formula.
    Returns -1 if a row needs more than T taps (cannot happen for T = ceil(S/D) + 2)."""
    cdef double inv = <double>D / <double>S
    cdef double scale = 1.0 / inv
    cdef double fsx1, fsx2, cell
    cdef Py_ssize_t d, sx1, sx2, sx, k, base
    cdef float fx
    cdef float one = 1
    cdef float zero = 0
    for d in range(D):
        base = d * T
        k = 0
        if S >= D:
            fsx1 = d * scale
            fsx2 = fsx1 + scale
            cell = min(scale, S - fsx1)
            sx1 = <Py_ssize_t>ceil(fsx1)
            sx2 = <Py_ssize_t>floor(fsx2)
            sx2 = min(sx2, S - 1)
            sx1 = min(sx1, sx2)
            if sx1 - fsx1 > 1e-3:
                off[base] = (sx1 - 1) * stride
                w[base] = <float>((sx1 - fsx1) / cell)
                k = 1
            for sx in range(sx1, sx2):
                if k >= T:
                    return -1
                off[base + k] = sx * stride
                w[base + k] = <float>(1.0 / cell)
                k += 1
            if fsx2 - sx2 > 1e-3:
                if k >= T:
                    return -1
                off[base + k] = sx2 * stride
                w[base + k] = <float>(min(min(fsx2 - sx2, 1.0), cell) / cell)
                k += 1
            if k == 0:  # cannot happen (a cell is >= 1 pixel wide); keep the table valid
                off[base] = min(sx1, S - 1) * stride
                w[base] = one
                k = 1
        else:
            sx = <Py_ssize_t>floor(d * scale)
            fx = <float>((d + 1) - (sx + 1) * inv)
            if fx <= zero:
                fx = zero
            else:
                fx = fx - <float>floor(fx)
            if sx >= S - 1:
                sx = S - 1
                fx = zero
            off[base] = sx * stride
            w[base] = one - fx
            k = 1
            if fx != zero:
                off[base + 1] = (sx + 1) * stride
                w[base + 1] = fx
                k = 2
        n[d] = <int>k
        while k < T:
            off[base + k] = off[base + k - 1]
            w[base + k] = zero
            k += 1
    return 0


cdef void _u8_taps(Py_ssize_t S, Py_ssize_t D, Py_ssize_t stride, bint clamp_weights,
                   Py_ssize_t* off, int32_t* iw) noexcept nogil:
    """OpenCV INTER_LINEAR 8U: scale = 1 / (D / S); f as bilinear; weights
    rint((1 - f) * 2048), rint(f * 2048). Along x (clamp_weights) f is 0 at the edges; along
    y the weights are kept and only the row indices are clamped (as OpenCV does)."""
    cdef double scale = 1.0 / (<double>D / <double>S)
    cdef Py_ssize_t d, s, s0, s1
    cdef float f
    cdef float one = 1
    cdef float zero = 0
    cdef float unit = 2048
    for d in range(D):
        f = <float>((<double>d + 0.5) * scale - 0.5)
        s = <Py_ssize_t>floor(f)
        f = f - <float>s
        if clamp_weights:
            if s < 0:
                s = 0
                f = zero
            if s >= S - 1:
                s = S - 1
                f = zero
        s0 = min(max(s, 0), S - 1)
        s1 = min(max(s + 1, 0), S - 1)
        off[2 * d] = s0 * stride
        off[2 * d + 1] = s1 * stride
        iw[2 * d] = <int32_t>lrintf((one - f) * unit)
        iw[2 * d + 1] = <int32_t>lrintf(f * unit)


cdef inline bint _cv_integer_scale(Py_ssize_t S, Py_ssize_t D, int* k) noexcept nogil:
    """OpenCV's test for an integer area scale: 1 / (D / S) within DBL_EPSILON of an int."""
    cdef double scale = 1.0 / (<double>D / <double>S)
    cdef double r = floor(scale + 0.5)
    k[0] = <int>r
    return S >= D and abs(scale - r) < DBL_EPS


cdef class _Taps:
    """Tap table of one axis (owns its arrays)."""
    cdef object off_a, w_a, n_a, i_a  # owners of the tables below
    cdef Py_ssize_t* off
    cdef float* w
    cdef int* n
    cdef int32_t* iw
    cdef int T
    cdef Py_ssize_t maxoff

    def __init__(self, Py_ssize_t S, Py_ssize_t D, Py_ssize_t stride, int method, bint is_x):
        cdef Py_ssize_t[::1] offv
        cdef float[::1] wv
        cdef int[::1] nv
        cdef int32_t[::1] iv
        cdef double[::1] rawv
        cdef Py_ssize_t i
        if S < 1 or D < 1:
            raise ValueError("_Taps: empty axis")
        if method == METHOD_AREA:
            self.T = <int>ceil(<double>S / <double>D) + 2
        elif method == METHOD_LANCZOS:
            self.T = vt_lanczos_ntaps(S, D)
        else:
            self.T = 2
        self.off_a = np.empty(D * self.T, dtype=np.intp)
        self.w_a = np.zeros(D * self.T, dtype=np.float32)
        self.n_a = np.ones(D, dtype=np.intc)
        self.i_a = np.zeros(2 * D, dtype=np.int32)
        offv = self.off_a
        wv = self.w_a
        nv = self.n_a
        iv = self.i_a
        self.off = &offv[0]
        self.w = &wv[0]
        self.n = &nv[0]
        self.iw = &iv[0]
        if method == METHOD_AREA:
            if _area_taps(S, D, stride, self.T, self.off, self.w, self.n) < 0:
                raise RuntimeError("vetrina.kernels: area tap table overflow")
        elif method == METHOD_LANCZOS:
            rawv = np.empty(self.T, dtype=np.float64)
            if vt_lanczos_taps(S, D, stride, self.T, self.off, self.w, self.n, &rawv[0]) < 0:
                raise RuntimeError("vetrina.kernels: lanczos tap table overflow")
        elif method == METHOD_BILINEAR_U8:
            _u8_taps(S, D, stride, is_x, self.off, self.iw)
        else:
            _linear_taps(S, D, stride, self.off, self.w, self.n)
        self.maxoff = 0
        for i in range(D * self.T):
            self.maxoff = max(self.maxoff, self.off[i])


cdef object _scratch(int nthreads, Py_ssize_t cap, int planes, Py_ssize_t vcap,
                     vt_scr** out_scr):
    """Per-thread scratch: 2 cached row slots and a value row of `planes` x cap floats each,
    plus vcap uint16 box sums. Returns the owning numpy array."""
    cdef Py_ssize_t rowf = planes * ((cap + 15) // 16 * 16)
    cdef Py_ssize_t vsz = (vcap + 15) // 16 * 16
    cdef Py_ssize_t per = 3 * rowf + vsz + 16  # in 4-byte units
    cdef object arena = np.empty(nthreads * per + 16, dtype=np.float32)
    cdef float[::1] av = arena
    cdef float* base = &av[0]
    cdef vt_scr* scr = <vt_scr*>malloc(nthreads * sizeof(vt_scr))
    cdef int t
    cdef float* p
    if scr == NULL:
        raise MemoryError("vetrina.kernels: cannot allocate scratch")
    base = base + (16 - ((<Py_ssize_t>base // 4) % 16)) % 16  # 64-byte alignment
    for t in range(nthreads):
        p = base + t * per
        scr[t].slot[0] = p
        scr[t].slot[1] = p + rowf
        scr[t].acc = p + 2 * rowf
        scr[t].vs = <uint16_t*>(p + 3 * rowf)
        scr[t].kimg[0] = NULL
        scr[t].kimg[1] = NULL
        scr[t].krow[0] = -1
        scr[t].krow[1] = -1
        scr[t].last = 1
        scr[t].cap = (cap + 15) // 16 * 16
        scr[t].ring = NULL
        scr[t].rimg = NULL
        scr[t].rrow = NULL
        scr[t].nring = 0
        scr[t].fb = NULL
    out_scr[0] = scr
    return arena


# Largest ring of cached horizontal rows per call (all threads), in bytes.
cdef Py_ssize_t RING_BYTES = 64 << 20


cdef object _lanczos_scratch(int nthreads, int nring, Py_ssize_t sw, vt_scr* scr):
    """Per-thread lanczos scratch: a float pixel row of ``sw`` pixels (4 floats each) and,
    when all threads' rings fit RING_BYTES, a ring of ``nring`` horizontal rows (3 planes of
    scr.cap floats each; else nring stays 0 and the two-row cache is used). Returns the
    owners."""
    cdef Py_ssize_t rowf = 3 * scr[0].cap
    cdef Py_ssize_t fbn = 4 * sw + 16
    cdef Py_ssize_t per = fbn
    cdef object arena, rimg, rrow
    cdef float[::1] av
    cdef Py_ssize_t[::1] kv
    cdef Py_ssize_t[::1] rv
    cdef float* base
    cdef int t, i
    if nring < 3 or <Py_ssize_t>nthreads * nring * rowf * 4 > RING_BYTES:
        nring = 0
    per += nring * rowf
    arena = np.empty(nthreads * per + 16, dtype=np.float32)
    rimg = np.zeros(nthreads * max(nring, 1), dtype=np.intp)
    rrow = np.empty(nthreads * max(nring, 1), dtype=np.intp)
    av = arena
    kv = rimg
    rv = rrow
    base = &av[0] + (16 - ((<Py_ssize_t>&av[0] // 4) % 16)) % 16  # 64-byte alignment
    for t in range(nthreads):
        scr[t].fb = base + t * per
        scr[t].nring = nring
        if nring:
            scr[t].ring = base + t * per + fbn
            scr[t].rimg = <const void**>&kv[t * nring]
            scr[t].rrow = &rv[t * nring]
            for i in range(nring):
                scr[t].rimg[i] = NULL
                scr[t].rrow[i] = -1
    return (arena, rimg, rrow)


# --------------------------------------------------------------------------------------------
# preprocess: uint8 HxWxC views -> (N, 3, H, W) float32 / float16
# --------------------------------------------------------------------------------------------

def preprocess_batch(list images, const Py_ssize_t[:, ::1] boxes, unsigned char[:, :, :, ::1] out,
                     int esize, const float[::1] scale, const float[::1] offset,
                     const float[::1] pad, bint swap, int method, int num_threads):
    """Fill ``out`` (bytes of an (N, 3, H, W) float32 (esize 4) or float16 (esize 2) array).

    ``boxes[i] = (sy, sx, sh, sw, top, left, ch, cw)``: the source rectangle of images[i]
    resized into the content rectangle of the output; the rest of the output is ``pad`` (per
    output channel, already mapped). ``scale``/``offset``: float32[3] per output channel.
    ``swap``: output channel c reads source channel 2 - c. ``method``: METHOD_*.
    """
    cdef Py_ssize_t n = out.shape[0], H = out.shape[2], W, i, nch, cs, cap = 1, vcap = 1
    cdef Py_ssize_t sy, sx, sh, sw, top, left, ch, cw, lo, hi, r, c
    cdef const unsigned char[:, :, :] src
    cdef vt_pre* pres = NULL
    cdef vt_pre* p
    cdef vt_scr* scr = NULL
    cdef int nthreads = _threads(num_threads), f16 = 1 if esize == 2 else 0, kx, ky, tid
    cdef int nring = 0
    cdef Py_ssize_t lzw = 0
    cdef list keep = []
    cdef _Taps tx, ty
    cdef char* obase
    cdef Py_ssize_t plane, rowb, chunk
    cdef float sc[3]
    cdef float of[3]
    cdef float pv[3]
    cdef float onef = 1
    if esize != 2 and esize != 4:
        raise ValueError("preprocess_batch: esize must be 2 or 4")
    W = out.shape[3] // esize
    if (len(images) != n or n < 1 or out.shape[1] != 3 or H < 1 or W < 1
            or out.shape[3] != W * esize):
        raise ValueError("preprocess_batch: out shape does not match the images")
    if boxes.shape[0] != n or boxes.shape[1] != 8:
        raise ValueError("preprocess_batch: boxes must be (N, 8)")
    if scale.shape[0] != 3 or offset.shape[0] != 3 or pad.shape[0] != 3:
        raise ValueError("preprocess_batch: scale, offset and pad need 3 values")
    if method < 0 or method > 3:
        raise ValueError("preprocess_batch: bad method")
    for c in range(3):
        sc[c] = scale[c]
        of[c] = offset[c]
        pv[c] = pad[c]
    pres = <vt_pre*>malloc(n * sizeof(vt_pre))
    if pres == NULL:
        raise MemoryError("vetrina.kernels: cannot allocate image table")
    try:
        memset(pres, 0, n * sizeof(vt_pre))
        for i in range(n):
            src = images[i]
            keep.append(src)
            sy, sx, sh, sw = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
            top, left, ch, cw = boxes[i, 4], boxes[i, 5], boxes[i, 6], boxes[i, 7]
            nch = src.shape[2]
            # sides past 2^30 would overflow the kernels' int row/column math (the wrappers
            # allow MAX_IMAGE_SIZE = 2^20, docs/kernels.md)
            if (src.shape[0] < 1 or src.shape[1] < 1 or src.shape[0] > (1 << 30)
                    or src.shape[1] > (1 << 30) or not (nch == 1 or nch == 3 or nch == 4)):
                raise ValueError(f"preprocess_batch: bad image shape at index {i}")
            if (sh < 1 or sw < 1 or sy < 0 or sx < 0 or sy + sh > src.shape[0]
                    or sx + sw > src.shape[1] or ch < 1 or cw < 1 or top < 0 or left < 0
                    or top + ch > H or left + cw > W):
                raise ValueError(f"preprocess_batch: bad box at index {i}")
            p = &pres[i]
            p.base = &src[sy, sx, 0]
            p.s0 = src.strides[0]
            p.s1 = src.strides[1]
            cs = 0 if nch == 1 else src.strides[2]
            p.coff[0] = 2 * cs if swap else 0
            p.coff[1] = cs
            p.coff[2] = 0 if swap else 2 * cs
            p.nch = <int>nch
            p.top, p.left, p.ch, p.cw = <int>top, <int>left, <int>ch, <int>cw
            cap = max(cap, cw)
            # SSE2 pixel loads: 3/4 channels, unit channel stride, positive steps; they may
            # read up to 8 bytes from a pixel, so keep the end of the view (relative to the
            # box origin) to stay inside it
            p.vec = 1 if (nch >= 3 and cs == 1 and p.s1 > 0 and p.s0 > 0) else 0
            if p.vec:
                p.safe_end = ((src.shape[0] - 1) * p.s0 + (src.shape[1] - 1) * p.s1 + nch
                              - (sy * p.s0 + sx * p.s1))
            p.mode = VT_SEP
            if method == METHOD_BILINEAR_U8 and sh == 2 * ch and sw == 2 * cw:
                # OpenCV turns an exact 2x INTER_LINEAR into its fast area path
                p.mode = VT_BOX
                p.kx = p.ky = 2
                p.bw = p.bh = 2
                p.round2 = 1
                p.q = onef
            elif method == METHOD_BILINEAR_U8:
                p.mode = VT_U8
            elif method == METHOD_AREA and _cv_integer_scale(sw, cw, &kx) and \
                    _cv_integer_scale(sh, ch, &ky):
                p.mode = VT_BOX
                p.kx, p.ky, p.bw, p.bh = kx, ky, kx, ky
                # float division, as OpenCV's 1.f / area; the area in 64 bits (kx * ky
                # exceeds 2^31 for blocks past 46341 x 46341)
                p.q = onef / <float>(<long long>kx * ky)
            elif method == METHOD_BILINEAR and sw % cw == 0 and sh % ch == 0:
                # integer factors: bilinear samples 1 or 2 taps per axis with weights 1 or
                # 1/2; the exact integer sum times 1, 1/2 or 1/4 is the same float32 value
                kx = <int>(sw // cw)
                ky = <int>(sh // ch)
                p.mode = VT_BOX
                p.kx, p.ky = kx, ky
                p.bw = 2 if kx % 2 == 0 else 1
                p.bh = 2 if ky % 2 == 0 else 1
                p.ox = kx // 2 - 1 if kx % 2 == 0 else (kx - 1) // 2
                p.oy = ky // 2 - 1 if ky % 2 == 0 else (ky - 1) // 2
                p.q = onef / <float>(p.bw * p.bh)
            if p.mode == VT_BOX:
                # SIMD box sums are uint16: blocks of at most 257 pixels (255 * 257 = 65535);
                # scalar sums are uint32 up to VT_BOX_U32_PIXELS pixels, else uint64
                p.boxfast = 1 if (p.vec and <long long>p.bw * p.bh <= 257) else 0
                p.wide = 1 if <long long>p.bw * p.bh > VT_BOX_U32_PIXELS else 0
                if p.boxfast:
                    vcap = max(vcap, (p.kx * (cw - 1) + p.bw - 1) * p.s1 + nch + 8)
                continue
            # lanczos: x taps index the thread's float pixel row (vt_lz_pixels)
            tx = _Taps(sw, cw, 1 if method == METHOD_LANCZOS else p.s1, method, True)
            ty = _Taps(sh, ch, p.s0, method, False)
            if method == METHOD_LANCZOS:
                p.lz = 1
                p.sw = <int>sw
                nring = max(nring, ty.T)
                lzw = max(lzw, sw)
            keep.append(tx)
            keep.append(ty)
            p.xo, p.xw, p.xt, p.xi = tx.off, tx.w, tx.T, tx.iw
            p.yo, p.yw, p.yn, p.yt, p.yi = ty.off, ty.w, ty.n, ty.T, ty.iw
            p.xmax = tx.maxoff
        arena = _scratch(nthreads, cap, 3, vcap, &scr)
        lzs = _lanczos_scratch(nthreads, nring, lzw, scr) if lzw else None
        obase = <char*>&out[0, 0, 0, 0]
        plane = H * W * esize
        rowb = W * esize
        chunk = _chunk(3 * W)
        if lzs is not None:
            # lanczos: a chunk's first row computes its whole window of rows, the next ones
            # about H_src / H each; longer chunks (still >= 4 per thread) amortise the first
            chunk = max(chunk, min(64, (n * H) // (4 * nthreads)))
        with nogil:
            for r in prange(n * H, num_threads=nthreads, schedule="dynamic", chunksize=chunk):
                tid = openmp.omp_get_thread_num()
                i = r // H
                vt_pre_row(&pres[i], <int>(r - i * H), obase + (3 * i * H * W) * esize
                           + (r - i * H) * rowb, plane, <int>W, f16, sc, of, pv, &scr[tid])
    finally:
        free(pres)
        free(scr)
    return out


# --------------------------------------------------------------------------------------------
# float planes (float32 or float16, any strides) -> uint8 images / float planes
# --------------------------------------------------------------------------------------------

cdef int _fsrc_init(vt_fsrc* p, const char* base, Py_ssize_t s0, Py_ssize_t s1, bint f16,
                    Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t ch, Py_ssize_t cw, int method,
                    list keep) except -1:
    """Tables of a float source box of SH x SW values resized to ch x cw."""
    cdef _Taps tx = _Taps(SW, cw, s1, method, True)
    cdef _Taps ty = _Taps(SH, ch, s0, method, False)
    keep.append(tx)
    keep.append(ty)
    p.base = base
    p.s0 = s0
    p.s1 = s1
    p.f16 = 1 if f16 else 0
    p.ch = <int>ch
    p.cw = <int>cw
    p.xo, p.xw, p.xn, p.xt = tx.off, tx.w, tx.n, tx.T
    p.yo, p.yw, p.yn, p.yt = ty.off, ty.w, ty.n, ty.T
    # identity x taps (weight 1, offset x * 4) on contiguous float32 rows: read in place
    p.xid = 1 if (SW == cw and not f16 and s1 == 4) else 0
    p.xup2 = 1 if (cw == 2 * SW and SW >= 6 and not f16 and s1 == 4 and method == METHOD_BILINEAR
                   and _is_up2(tx, SW)) else 0
    return 0


cdef bint _is_up2(_Taps t, Py_ssize_t S):
    """Whether the interior taps of a bilinear 2x upscale table (stride 4) are the periodic
    pattern the SSE2 shortcut computes: out[2m] = p[m-1] * 0.25 + p[m] * 0.75 and
    out[2m+1] = p[m] * 0.75 + p[m+1] * 0.25 (they are, but the shortcut trusts only this)."""
    cdef Py_ssize_t m, d
    cdef float qa = 0.25
    cdef float qb = 0.75
    for m in range(1, S - 1):
        d = 2 * m
        if (t.n[d] != 2 or t.off[2 * d] != 4 * (m - 1) or t.off[2 * d + 1] != 4 * m
                or t.w[2 * d] != qa or t.w[2 * d + 1] != qb):
            return False
        d = 2 * m + 1
        if (t.n[d] != 2 or t.off[2 * d] != 4 * m or t.off[2 * d + 1] != 4 * (m + 1)
                or t.w[2 * d] != qb or t.w[2 * d + 1] != qa):
            return False
    return True


cdef inline const char* _fbase(object mv32, object mv16, bint f16, Py_ssize_t i, Py_ssize_t c,
                               Py_ssize_t y, Py_ssize_t x):
    cdef const float[:, :, :, :] b32
    cdef const uint16_t[:, :, :, :] b16
    if f16:
        b16 = mv16
        return <const char*>&b16[i, c, y, x]
    b32 = mv32
    return <const char*>&b32[i, c, y, x]


def postprocess_batch(object batch, bint f16, const Py_ssize_t[:, ::1] boxes, list outs,
                      list alphas, const unsigned char[:, ::1] fills, const float[::1] scale,
                      const float[::1] offset, bint swap, int method, int num_threads):
    """Fill ``outs[i]`` (uint8 (h, w, 3|4), C-contiguous) from ``batch[i]``.

    ``batch``: (N, 3, H, W) float32, or float16 viewed as uint16 (``f16``), any strides.
    ``boxes[i] = (by, bx, bh, bw, top, left, ch, cw)``: the batch rectangle resized into the
    content rectangle of ``outs[i]``; outside it the pixels are ``fills[i]``. ``alphas[i]``:
    None or uint8 (h, w), written as the 4th channel. ``scale``/``offset``: float32[3] per
    BATCH channel; ``swap``: output channel k comes from batch channel 2 - k.
    """
    cdef const float[:, :, :, :] b32
    cdef const uint16_t[:, :, :, :] b16
    cdef Py_ssize_t n, H, W, i, k, bc, h, w, nout, rows = 0, values = 0, r, cs, s0, s1, bs
    cdef Py_ssize_t by, bx, bh, bw, top, left, ch, cw, cap = 1
    cdef unsigned char[:, :, ::1] dst
    cdef const unsigned char[:, :] alpha
    cdef vt_post* posts = NULL
    cdef vt_post* p
    cdef Py_ssize_t* rimg = NULL
    cdef Py_ssize_t* rdy = NULL
    cdef vt_scr* scr = NULL
    cdef int nthreads = _threads(num_threads), tid
    cdef list keep = []
    cdef object mv32 = None, mv16 = None
    if f16:
        b16 = batch
        mv16 = b16
        n, H, W = b16.shape[0], b16.shape[2], b16.shape[3]
        cs, s0, s1 = b16.strides[1], b16.strides[2], b16.strides[3]
        if b16.shape[1] != 3:
            raise ValueError("postprocess_batch: batch must have 3 channels")
    else:
        b32 = batch
        mv32 = b32
        n, H, W = b32.shape[0], b32.shape[2], b32.shape[3]
        cs, s0, s1 = b32.strides[1], b32.strides[2], b32.strides[3]
        if b32.shape[1] != 3:
            raise ValueError("postprocess_batch: batch must have 3 channels")
    if (len(outs) != n or len(alphas) != n or n < 1 or H < 1 or W < 1
            or boxes.shape[0] != n or boxes.shape[1] != 8 or fills.shape[0] != n
            or fills.shape[1] != 3):
        raise ValueError("postprocess_batch: outs/alphas/boxes do not match the batch")
    if scale.shape[0] != 3 or offset.shape[0] != 3:
        raise ValueError("postprocess_batch: scale and offset need 3 values")
    if method != METHOD_BILINEAR and method != METHOD_AREA:
        raise ValueError("postprocess_batch: bad method")
    posts = <vt_post*>malloc(n * sizeof(vt_post))
    if posts == NULL:
        raise MemoryError("vetrina.kernels: cannot allocate image table")
    try:
        memset(posts, 0, n * sizeof(vt_post))
        for i in range(n):
            dst = outs[i]
            keep.append(dst)
            h, w, nout = dst.shape[0], dst.shape[1], dst.shape[2]
            by, bx, bh, bw = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
            top, left, ch, cw = boxes[i, 4], boxes[i, 5], boxes[i, 6], boxes[i, 7]
            if h < 1 or w < 1 or not (nout == 3 or nout == 4):
                raise ValueError(f"postprocess_batch: bad output shape at index {i}")
            if (bh < 1 or bw < 1 or by < 0 or bx < 0 or by + bh > H or bx + bw > W
                    or ch < 1 or cw < 1 or top < 0 or left < 0 or top + ch > h
                    or left + cw > w):
                raise ValueError(f"postprocess_batch: bad box at index {i}")
            p = &posts[i]
            _fsrc_init(&p.src, _fbase(mv32, mv16, f16, i, 0, by, bx), s0, s1, f16, bh, bw,
                       ch, cw, method, keep)
            p.src.nc = 3
            for k in range(3):
                bc = 2 - k if swap else k
                p.src.coff[k] = bc * cs
                p.sc[k] = scale[bc]
                p.of[k] = offset[bc]
                p.fill[k] = fills[i, k]
            p.obase = &dst[0, 0, 0]
            p.ow = <int>w
            p.nout = <int>nout
            p.top = <int>top
            p.left = <int>left
            p.abase = NULL
            if nout == 4:
                if alphas[i] is None:
                    raise ValueError(f"postprocess_batch: output {i} has 4 channels, no alpha")
                alpha = alphas[i]
                keep.append(alpha)
                if alpha.shape[0] != h or alpha.shape[1] != w:
                    raise ValueError(f"postprocess_batch: alpha {i} shape does not match")
                p.abase = &alpha[0, 0]
                p.as0 = alpha.strides[0]
                p.as1 = alpha.strides[1]
            rows += h
            values += h * w * 3
            cap = max(cap, cw)
        rimg = <Py_ssize_t*>malloc(rows * sizeof(Py_ssize_t))
        rdy = <Py_ssize_t*>malloc(rows * sizeof(Py_ssize_t))
        if rimg == NULL or rdy == NULL:
            raise MemoryError("vetrina.kernels: cannot allocate row table")
        r = 0
        for i in range(n):
            for k in range(outs[i].shape[0]):
                rimg[r] = i
                rdy[r] = k
                r += 1
        arena = _scratch(nthreads, cap, 3, 1, &scr)
        with nogil:
            for r in prange(rows, num_threads=nthreads, schedule="dynamic",
                            chunksize=_chunk(values // rows)):
                tid = openmp.omp_get_thread_num()
                vt_post_row(&posts[rimg[r]], <int>rdy[r], &scr[tid])
    finally:
        free(posts)
        free(rimg)
        free(rdy)
        free(scr)
    return outs


def adapt_batch(object batch, bint f16, unsigned char[:, :, :, ::1] out, int esize,
                const Py_ssize_t[::1] chmap, const float[::1] scale, const float[::1] offset,
                int method, int num_threads):
    """Fill ``out`` (bytes of an (N, C', H', W') float32/float16 array) from ``batch``
    ((N, C, H, W) float32, or float16 viewed as uint16, any strides): output channel c is
    batch channel ``chmap[c]`` resized to (H', W'), times ``scale[c]`` plus ``offset[c]``."""
    cdef const float[:, :, :, :] b32
    cdef const uint16_t[:, :, :, :] b16
    cdef Py_ssize_t n, C, H, W, OC, OH, OW, i, c, r, cs, s0, s1
    cdef vt_adapt* ads = NULL
    cdef vt_scr* scr = NULL
    cdef int nthreads = _threads(num_threads), tid
    cdef list keep = []
    cdef object mv32 = None, mv16 = None
    cdef char* obase
    if f16:
        b16 = batch
        mv16 = b16
        n, C, H, W = b16.shape[0], b16.shape[1], b16.shape[2], b16.shape[3]
        cs, s0, s1 = b16.strides[1], b16.strides[2], b16.strides[3]
    else:
        b32 = batch
        mv32 = b32
        n, C, H, W = b32.shape[0], b32.shape[1], b32.shape[2], b32.shape[3]
        cs, s0, s1 = b32.strides[1], b32.strides[2], b32.strides[3]
    if esize != 2 and esize != 4:
        raise ValueError("adapt_batch: esize must be 2 or 4")
    OC, OH, OW = out.shape[1], out.shape[2], out.shape[3] // esize
    if (out.shape[0] != n or n < 1 or C < 1 or H < 1 or W < 1 or OC < 1 or OH < 1 or OW < 1
            or out.shape[3] != OW * esize or OC > VT_MAXC):
        raise ValueError("adapt_batch: out shape does not match the batch")
    if chmap.shape[0] != OC or scale.shape[0] != OC or offset.shape[0] != OC:
        raise ValueError("adapt_batch: chmap, scale and offset need one value per channel")
    for c in range(OC):
        if chmap[c] < 0 or chmap[c] >= C:
            raise ValueError("adapt_batch: bad channel map")
    if method != METHOD_BILINEAR and method != METHOD_AREA:
        raise ValueError("adapt_batch: bad method")
    ads = <vt_adapt*>malloc(n * sizeof(vt_adapt))
    if ads == NULL:
        raise MemoryError("vetrina.kernels: cannot allocate image table")
    try:
        memset(ads, 0, n * sizeof(vt_adapt))
        obase = <char*>&out[0, 0, 0, 0]
        for i in range(n):
            _fsrc_init(&ads[i].src, _fbase(mv32, mv16, f16, i, 0, 0, 0), s0, s1, f16, H, W,
                       OH, OW, method, keep)
            ads[i].src.nc = <int>OC
            for c in range(OC):
                ads[i].src.coff[c] = chmap[c] * cs
            ads[i].obase = obase + i * OC * OH * OW * esize
            ads[i].plane = OH * OW * esize
            ads[i].rowb = OW * esize
            ads[i].f16 = 1 if esize == 2 else 0
            ads[i].sc = &scale[0]
            ads[i].of = &offset[0]
        arena = _scratch(nthreads, OW, <int>OC, 1, &scr)
        with nogil:
            for r in prange(n * OH, num_threads=nthreads, schedule="dynamic",
                            chunksize=_chunk(OC * OW)):
                tid = openmp.omp_get_thread_num()
                vt_adapt_row(&ads[r // OH], <int>(r % OH), &scr[tid])
    finally:
        free(ads)
        free(scr)
    return out


def f32_to_f16_bits(const float[::1] src, uint16_t[::1] dst):
    """float32 -> float16 bits with the kernels' conversion (for tests)."""
    cdef Py_ssize_t i
    if dst.shape[0] != src.shape[0]:
        raise ValueError("f32_to_f16_bits: length mismatch")
    with nogil:
        for i in range(src.shape[0]):
            dst[i] = vt_f2h(src[i])
    return dst


def f16_bits_to_f32(const uint16_t[::1] src, float[::1] dst):
    """float16 bits -> float32 with the kernels' conversion (for tests)."""
    cdef Py_ssize_t i
    if dst.shape[0] != src.shape[0]:
        raise ValueError("f16_bits_to_f32: length mismatch")
    with nogil:
        for i in range(src.shape[0]):
            dst[i] = vt_h2f(src[i])
    return dst


def lanczos_table(Py_ssize_t S, Py_ssize_t D):
    """The Lanczos tap table of one axis, S -> D (for tests): ``(index, n, weight)``, index
    and weight (D, T) arrays, output d using ``index[d, :n[d]]`` with ``weight[d, :n[d]]``."""
    cdef _Taps t = _Taps(S, D, 1, METHOD_LANCZOS, True)
    return (np.asarray(t.off_a).reshape(D, t.T).copy(), np.asarray(t.n_a).copy(),
            np.asarray(t.w_a).reshape(D, t.T).copy())


# --------------------------------------------------------------------------------------------
# composite: RGBA over a background, exact integer arithmetic
# --------------------------------------------------------------------------------------------

def composite_rgba(const unsigned char[:, :, :] fg, const unsigned char[:, :, :] bg,
                   unsigned char[:, :, ::1] out, bint premultiplied, int num_threads):
    """out = round((fg * a + bg * (255 - a)) / 255) per channel (straight alpha), or
    min(255, fg + round(bg * (255 - a) / 255)) (premultiplied); a = fg[..., 3].
    ``fg`` (h, w, 4), ``bg`` (h, w, >= 3) and ``out`` (h, w, 3), any strides for the inputs."""
    cdef Py_ssize_t h = fg.shape[0], w = fg.shape[1], y, x
    cdef int c, a, v
    cdef int nthreads = _threads(num_threads)
    if (fg.shape[2] != 4 or bg.shape[0] != h or bg.shape[1] != w or bg.shape[2] < 3
            or out.shape[0] != h or out.shape[1] != w or out.shape[2] != 3 or h < 1 or w < 1):
        raise ValueError("composite_rgba: shapes do not match")
    with nogil:
        for y in prange(h, num_threads=nthreads, schedule="static"):
            for x in range(w):
                a = fg[y, x, 3]
                for c in range(3):
                    if premultiplied:
                        v = fg[y, x, c] + (bg[y, x, c] * (255 - a) + 127) // 255
                        out[y, x, c] = <unsigned char>(v if v < 255 else 255)
                    else:
                        out[y, x, c] = <unsigned char>(
                            (fg[y, x, c] * a + bg[y, x, c] * (255 - a) + 127) // 255)
    return out


include "_alpha.pxi"
include "_cutout.pxi"
include "_tiles.pxi"
