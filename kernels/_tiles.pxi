# Tile blend, included by _cpu.pyx (it shares its thread helpers, float16 conversion and
# instruction-set switch). Wrapper: kernels/tiling.py (TilePlan.blend); contract:
# docs/kernels.md, "Tiling".
#
# One OpenMP task per output row. A row is computed from the tiles overlapping it, in the
# plan's row-major tile order: for each covering tile row i (ascending) and each tile column j
# (ascending), every value adds `t * (wy[i][r] * wx[j][c])` to a float32 accumulator and the
# weight `wy[i][r] * wx[j][c]` to a float32 weight sum (one per value, C copies of the same
# per-pixel sum), starting from +0; then `value = acc / wsum` is converted to the tiles' dtype.
# Those are exactly the float32 operations, in exactly the order, of the numpy formulation
# (tests/kernels/reference.py), so the results equal it bit for bit. Scratch per thread: two
# output rows and one tile row of float32; no full-size temporaries.
#
# Packed tiles (pixels of C values one after another: column stride C * esize, channel stride
# esize) are read in place by one flat loop per tile row (the x weights repeated per channel,
# `wxe`); other layouts (e.g. HWC views of an NCHW batch, what the pipeline passes) are first
# converted row by row into packed float32 (exact), then take the float32 loop. The float32
# and uint8 loops are plain C vectorised by the compiler (SSE2, and an AVX2 copy); float16
# input and the output conversions have explicit SSE2 / AVX2 code. Every lane computes the
# scalar operations, so set_simd(0 | 1 | 2) give the same bits (the tests compare them).

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    enum { VT_TILE_F32 = 0, VT_TILE_F16 = 1, VT_TILE_U8 = 2 };

    typedef struct {
        const char *const *base;    /* per tile: address of its element (0, 0, 0) */
        const Py_ssize_t *s0;       /* per tile: row, column and channel strides (bytes) */
        const Py_ssize_t *s1;
        const Py_ssize_t *s2;
        const unsigned char *packed;/* per tile: 1 when its pixels are packed */
        const float *wy;            /* ny x th weights along y */
        const float *wxe;           /* nx x (tw * C): wx with each value repeated C times */
        const Py_ssize_t *y0;       /* ny scaled tile origins (output rows) */
        const Py_ssize_t *x0;       /* nx scaled tile origins (output columns) */
        const Py_ssize_t *ilo;      /* per output row: first and last covering tile row */
        const Py_ssize_t *ihi;
        Py_ssize_t th, tw, ow, C, nx;
        int kind;                   /* VT_TILE_* of the tiles and the output */
        char *out;                  /* C-contiguous (oh, ow, C) output */
        Py_ssize_t os0;             /* its row stride in bytes */
    } vt_tiles;

    #define VT_CVT_F32(p, e) (((const float *)(p))[e])
    #define VT_CVT_F16(p, e) vt_h2f(((const uint16_t *)(p))[e])
    #define VT_CVT_U8(p, e) ((float)((const unsigned char *)(p))[e])

    /* packed: n = pixels * C values of one tile row */
    #define VT_TILE_PACKED(NAME, CVT, ATTR)                                                   \\
        ATTR static void NAME(const char *t, float wyv, const float *restrict we,             \\
                              Py_ssize_t n, float *restrict a, float *restrict q) {           \\
            Py_ssize_t e;                                                                     \\
            for (e = 0; e < n; e++) {                                                         \\
                float w = wyv * we[e];                                                        \\
                a[e] = a[e] + CVT(t, e) * w;                                                  \\
                q[e] = q[e] + w;                                                              \\
            }                                                                                 \\
        }
    /* any strides: one tile row -> w packed pixels of C floats (exact conversions) */
    #define VT_TILE_GATHER(NAME, T, CVT)                                                      \
        static void NAME(const char *t, Py_ssize_t s1, Py_ssize_t s2, Py_ssize_t w,           \
                         Py_ssize_t C, float *restrict b) {                                   \
            Py_ssize_t x, k;                                                                  \
            if (C == 3) {                                                                     \
                for (x = 0; x < w; x++) {                                                     \
                    const char *px = t + x * s1;                                              \
                    b[3 * x] = CVT(px, 0);                                                    \
                    b[3 * x + 1] = CVT(px + s2, 0);                                           \
                    b[3 * x + 2] = CVT(px + 2 * s2, 0);                                       \
                }                                                                             \
            } else if (C == 4) {                                                              \
                for (x = 0; x < w; x++) {                                                     \
                    const char *px = t + x * s1;                                              \
                    b[4 * x] = CVT(px, 0);                                                    \
                    b[4 * x + 1] = CVT(px + s2, 0);                                           \
                    b[4 * x + 2] = CVT(px + 2 * s2, 0);                                       \
                    b[4 * x + 3] = CVT(px + 3 * s2, 0);                                       \
                }                                                                             \
            } else {                                                                          \
                for (k = 0; k < C; k++) {                                                     \
                    const char *pk = t + k * s2;                                              \
                    for (x = 0; x < w; x++) b[x * C + k] = CVT(pk + x * s1, 0);               \
                }                                                                             \
            }                                                                                 \
        }
    /* value = acc / wsum -> the output dtype, n values */
    #define VT_TILE_OUT(NAME, ATTR)                                                           \\
        ATTR static void NAME(int kind, const float *restrict a, const float *restrict q,     \\
                              char *restrict o, Py_ssize_t n) {                               \\
            Py_ssize_t e;                                                                     \\
            if (kind == VT_TILE_F32) {                                                        \\
                float *restrict f = (float *)o;                                               \\
                for (e = 0; e < n; e++) f[e] = a[e] / q[e];                                   \\
            } else if (kind == VT_TILE_F16) {                                                 \\
                uint16_t *restrict h = (uint16_t *)o;                                         \\
                for (e = 0; e < n; e++) h[e] = vt_f2h(a[e] / q[e]);                           \\
            } else {                                                                          \\
                unsigned char *restrict u = (unsigned char *)o;                               \\
                for (e = 0; e < n; e++) {                                                     \\
                    float v = a[e] / q[e];                                                    \\
                    v = v > 0.0f ? v : 0.0f;  /* np.clip(v, 0, 255); never NaN here */       \\
                    v = v < 255.0f ? v : 255.0f;                                              \\
                    u[e] = (unsigned char)(int)(v + 0.5f);  /* >= 0.5: truncation == floor */ \\
                }                                                                             \\
            }                                                                                 \\
        }

    VT_TILE_PACKED(vt_tile_pk_f32, VT_CVT_F32, )
    VT_TILE_PACKED(vt_tile_pk_f16, VT_CVT_F16, )
    VT_TILE_PACKED(vt_tile_pk_u8, VT_CVT_U8, )
    VT_TILE_OUT(vt_tile_out, )
    #if VT_AVX2
    VT_TILE_PACKED(vt_tile_pk_f32_avx2, VT_CVT_F32, VT_TARGET_AVX2)
    VT_TILE_PACKED(vt_tile_pk_u8_avx2, VT_CVT_U8, VT_TARGET_AVX2)
    #endif

    #if VT_SSE
    /* vt_h2f on 4 lanes (4 x u32 holding half bits): the same integer steps and multiply,
       selects instead of ?: */
    static inline __m128 vt_h2f4(__m128i h) {
        __m128i em = _mm_and_si128(h, _mm_set1_epi32(0x7fff));
        __m128i sign = _mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x8000)), 16);
        __m128i bits = _mm_slli_epi32(em, 13);
        __m128 f = _mm_mul_ps(_mm_castsi128_ps(bits), _mm_set1_ps(5.192296858534828e+33f));
        __m128i big = _mm_cmpgt_epi32(em, _mm_set1_epi32(0x7bff));      /* inf or NaN */
        __m128i fb = _mm_or_si128(
            _mm_and_si128(big, _mm_or_si128(bits, _mm_set1_epi32(0x7f800000))),
            _mm_andnot_si128(big, _mm_castps_si128(f)));
        return _mm_castsi128_ps(_mm_or_si128(fb, sign));
    }
    /* packed float16 tile row, 8 values a step, then the C loop */
    static void vt_tile_pk_f16_sse(const char *t, float wyv, const float *restrict we,
                                   Py_ssize_t n, float *restrict a, float *restrict q) {
        const uint16_t *h = (const uint16_t *)t;
        const __m128 wy4 = _mm_set1_ps(wyv);
        const __m128i z = _mm_setzero_si128();
        Py_ssize_t e = 0;
        for (; e + 8 <= n; e += 8) {
            __m128i b = _mm_loadu_si128((const __m128i *)(h + e));
            __m128 t0 = vt_h2f4(_mm_unpacklo_epi16(b, z)), t1 = vt_h2f4(_mm_unpackhi_epi16(b, z));
            __m128 w0 = _mm_mul_ps(wy4, _mm_loadu_ps(we + e));
            __m128 w1 = _mm_mul_ps(wy4, _mm_loadu_ps(we + e + 4));
            _mm_storeu_ps(a + e, _mm_add_ps(_mm_loadu_ps(a + e), _mm_mul_ps(t0, w0)));
            _mm_storeu_ps(a + e + 4, _mm_add_ps(_mm_loadu_ps(a + e + 4), _mm_mul_ps(t1, w1)));
            _mm_storeu_ps(q + e, _mm_add_ps(_mm_loadu_ps(q + e), w0));
            _mm_storeu_ps(q + e + 4, _mm_add_ps(_mm_loadu_ps(q + e + 4), w1));
        }
        vt_tile_pk_f16(t + 2 * e, wyv, we + e, n - e, a + e, q + e);
    }
    /* clamp, + 0.5, truncate: 4 uint8 values as int32 lanes (maxps gives 0 for NaN) */
    static inline __m128i vt_tile_u8x4(__m128 v) {
        v = _mm_min_ps(_mm_max_ps(v, _mm_setzero_ps()), _mm_set1_ps(255.0f));
        return _mm_cvttps_epi32(_mm_add_ps(v, _mm_set1_ps(0.5f)));
    }
    #define VT_TDIV4(E) _mm_div_ps(_mm_loadu_ps(a + (E)), _mm_loadu_ps(q + (E)))
    static void vt_tile_out_sse(int kind, const float *restrict a, const float *restrict q,
                                char *restrict o, Py_ssize_t n) {
        Py_ssize_t e = 0;
        if (kind == VT_TILE_U8) {
            for (; e + 16 <= n; e += 16) {
                __m128i i0 = vt_tile_u8x4(VT_TDIV4(e)), i1 = vt_tile_u8x4(VT_TDIV4(e + 4));
                __m128i i2 = vt_tile_u8x4(VT_TDIV4(e + 8)), i3 = vt_tile_u8x4(VT_TDIV4(e + 12));
                _mm_storeu_si128((__m128i *)(o + e), _mm_packus_epi16(_mm_packs_epi32(i0, i1),
                                                                      _mm_packs_epi32(i2, i3)));
            }
            vt_tile_out(kind, a + e, q + e, o + e, n - e);
        } else if (kind == VT_TILE_F16) {
            for (; e + 8 <= n; e += 8) vt_st8h((uint16_t *)o + e, VT_TDIV4(e), VT_TDIV4(e + 4));
            vt_tile_out(kind, a + e, q + e, o + 2 * e, n - e);
        } else {
            for (; e + 4 <= n; e += 4) _mm_storeu_ps((float *)o + e, VT_TDIV4(e));
            vt_tile_out(kind, a + e, q + e, o + 4 * e, n - e);
        }
    }
    #endif

    #if VT_AVX2
    VT_TARGET_AVX2 static inline __m256 vt_h2f8(__m128i h16) {
        __m256i h = _mm256_cvtepu16_epi32(h16);
        __m256i em = _mm256_and_si256(h, _mm256_set1_epi32(0x7fff));
        __m256i sign = _mm256_slli_epi32(_mm256_and_si256(h, _mm256_set1_epi32(0x8000)), 16);
        __m256i bits = _mm256_slli_epi32(em, 13);
        __m256 f = _mm256_mul_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(5.192296858534828e+33f));
        __m256i big = _mm256_cmpgt_epi32(em, _mm256_set1_epi32(0x7bff));
        __m256i fb = _mm256_blendv_epi8(_mm256_castps_si256(f),
                                        _mm256_or_si256(bits, _mm256_set1_epi32(0x7f800000)), big);
        return _mm256_castsi256_ps(_mm256_or_si256(fb, sign));
    }
    VT_TARGET_AVX2 static void vt_tile_pk_f16_avx2(const char *t, float wyv,
                                                   const float *restrict we, Py_ssize_t n,
                                                   float *restrict a, float *restrict q) {
        const uint16_t *h = (const uint16_t *)t;
        const __m256 wy8 = _mm256_set1_ps(wyv);
        Py_ssize_t e = 0;
        for (; e + 8 <= n; e += 8) {
            __m256 t8 = vt_h2f8(_mm_loadu_si128((const __m128i *)(h + e)));
            __m256 w8 = _mm256_mul_ps(wy8, _mm256_loadu_ps(we + e));
            _mm256_storeu_ps(a + e, _mm256_add_ps(_mm256_loadu_ps(a + e), _mm256_mul_ps(t8, w8)));
            _mm256_storeu_ps(q + e, _mm256_add_ps(_mm256_loadu_ps(q + e), w8));
        }
        vt_tile_pk_f16(t + 2 * e, wyv, we + e, n - e, a + e, q + e);
    }
    VT_TARGET_AVX2 static inline __m256i vt_tile_u8x8(__m256 v) {
        v = _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(255.0f));
        return _mm256_cvttps_epi32(_mm256_add_ps(v, _mm256_set1_ps(0.5f)));
    }
    #define VT_TDIV8(E) _mm256_div_ps(_mm256_loadu_ps(a + (E)), _mm256_loadu_ps(q + (E)))
    VT_TARGET_AVX2 static void vt_tile_out_avx2(int kind, const float *restrict a,
                                                const float *restrict q, char *restrict o,
                                                Py_ssize_t n) {
        Py_ssize_t e = 0;
        if (kind == VT_TILE_U8) {
            const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
            for (; e + 32 <= n; e += 32) {
                __m256i i0 = vt_tile_u8x8(VT_TDIV8(e)), i1 = vt_tile_u8x8(VT_TDIV8(e + 8));
                __m256i i2 = vt_tile_u8x8(VT_TDIV8(e + 16)), i3 = vt_tile_u8x8(VT_TDIV8(e + 24));
                __m256i b = _mm256_packus_epi16(_mm256_packs_epi32(i0, i1),
                                                _mm256_packs_epi32(i2, i3));
                _mm256_storeu_si256((__m256i *)(o + e), _mm256_permutevar8x32_epi32(b, order));
            }
            vt_tile_out(kind, a + e, q + e, o + e, n - e);
        } else if (kind == VT_TILE_F16) {
            for (; e + 8 <= n; e += 8) {
                __m256 v = VT_TDIV8(e);
                vt_st8h((uint16_t *)o + e, _mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            }
            vt_tile_out(kind, a + e, q + e, o + 2 * e, n - e);
        } else {
            for (; e + 8 <= n; e += 8) _mm256_storeu_ps((float *)o + e, VT_TDIV8(e));
            vt_tile_out(kind, a + e, q + e, o + 4 * e, n - e);
        }
    }
    #endif
    VT_TILE_GATHER(vt_tile_gather_f32, float, VT_CVT_F32)
    VT_TILE_GATHER(vt_tile_gather_f16, uint16_t, VT_CVT_F16)
    VT_TILE_GATHER(vt_tile_gather_u8, unsigned char, VT_CVT_U8)

    /* output row y; scratch: acc and ws, ow * C floats each, tb: tw * C floats */
    static void vt_tiles_row(const vt_tiles *p, Py_ssize_t y, float *restrict acc,
                             float *restrict ws, float *restrict tb) {
        const Py_ssize_t C = p->C, n = p->ow * C, th = p->th, tw = p->tw;
        const int kind = p->kind;
        Py_ssize_t i, j;
        const int level = vt_level();
        memset(acc, 0, (size_t)n * sizeof(float));
        memset(ws, 0, (size_t)n * sizeof(float));
        for (i = p->ilo[y]; i <= p->ihi[y]; i++) {
            const Py_ssize_t r = y - p->y0[i];
            const float wyv = p->wy[i * th + r];
            for (j = 0; j < p->nx; j++) {
                const Py_ssize_t k = i * p->nx + j, x0 = p->x0[j];
                const Py_ssize_t w = tw < p->ow - x0 ? tw : p->ow - x0;
                const char *t = p->base[k] + r * p->s0[k];
                float *a = acc + x0 * C, *q = ws + x0 * C;
                if (p->packed[k]) {
                    const float *we = p->wxe + j * tw * C;
                    if (kind == VT_TILE_F32) {
    #if VT_AVX2
                        if (level >= 2) { vt_tile_pk_f32_avx2(t, wyv, we, w * C, a, q); continue; }
    #endif
                        vt_tile_pk_f32(t, wyv, we, w * C, a, q);
                    } else if (kind == VT_TILE_U8) {
    #if VT_AVX2
                        if (level >= 2) { vt_tile_pk_u8_avx2(t, wyv, we, w * C, a, q); continue; }
    #endif
                        vt_tile_pk_u8(t, wyv, we, w * C, a, q);
                    } else {
    #if VT_AVX2
                        if (level >= 2) { vt_tile_pk_f16_avx2(t, wyv, we, w * C, a, q); continue; }
    #endif
    #if VT_SSE
                        if (level >= 1) { vt_tile_pk_f16_sse(t, wyv, we, w * C, a, q); continue; }
    #endif
                        vt_tile_pk_f16(t, wyv, we, w * C, a, q);
                    }
                } else {
                    /* other layouts: the row as packed floats, then the float32 loop */
                    const float *we = p->wxe + j * tw * C;
                    if (kind == VT_TILE_F32) vt_tile_gather_f32(t, p->s1[k], p->s2[k], w, C, tb);
                    else if (kind == VT_TILE_F16) vt_tile_gather_f16(t, p->s1[k], p->s2[k], w, C, tb);
                    else vt_tile_gather_u8(t, p->s1[k], p->s2[k], w, C, tb);
    #if VT_AVX2
                    if (level >= 2) { vt_tile_pk_f32_avx2((const char *)tb, wyv, we, w * C, a, q); continue; }
    #endif
                    vt_tile_pk_f32((const char *)tb, wyv, we, w * C, a, q);
                }
            }
        }
    #if VT_AVX2
        if (level >= 2) { vt_tile_out_avx2(kind, acc, ws, p->out + y * p->os0, n); return; }
    #endif
    #if VT_SSE
        if (level >= 1) { vt_tile_out_sse(kind, acc, ws, p->out + y * p->os0, n); return; }
    #endif
        vt_tile_out(kind, acc, ws, p->out + y * p->os0, n);
    }
    """
    ctypedef struct vt_tiles:
        const char* const* base
        const Py_ssize_t* s0
        const Py_ssize_t* s1
        const Py_ssize_t* s2
        const unsigned char* packed
        const float* wy
        const float* wxe
        const Py_ssize_t* y0
        const Py_ssize_t* x0
        const Py_ssize_t* ilo
        const Py_ssize_t* ihi
        Py_ssize_t th, tw, ow, C, nx
        int kind
        char* out
        Py_ssize_t os0
    void vt_tiles_row(const vt_tiles* p, Py_ssize_t y, float* acc, float* ws,
                      float* tb) noexcept nogil


TILE_F32 = 0
TILE_F16 = 1
TILE_U8 = 2


def blend_tiles(list tiles, int kind, const float[:, ::1] wy, const float[:, ::1] wx,
                const float[:, ::1] wxe, const Py_ssize_t[::1] ys, const Py_ssize_t[::1] xs,
                unsigned char[:, ::1] out, int num_threads):
    """Feathered blend of ``tiles`` (row-major, ``len(ys) * len(xs)`` of them, each a 3-D
    (th, tw, C) array of any strides: uint8 (kind TILE_U8), float32 (TILE_F32, aligned) or
    float16 viewed as uint16 (TILE_F16, aligned)) into ``out``, the bytes of a C-contiguous
    (oh, ow, C) array of that dtype. ``wy`` (ny, th) / ``wx`` (nx, tw): float32 weights per
    tile and axis; ``wxe`` (nx, tw * C): ``wx`` with each value repeated C times; ``ys`` /
    ``xs``: the tiles' origins in output pixels, non-decreasing, inside the output."""
    cdef Py_ssize_t ny = wy.shape[0], th = wy.shape[1], nx = wx.shape[0], tw = wx.shape[1]
    cdef Py_ssize_t oh = out.shape[0], C, ow, esize, n, k, i, y, lo, hi, addr
    cdef Py_ssize_t sh0, sh1, sh2, st0, st1, st2
    cdef int nthreads = _threads(num_threads), tid
    cdef object mv
    cdef const unsigned char[:, :, :] m8
    cdef const float[:, :, :] m32
    cdef const uint16_t[:, :, :] m16
    cdef vt_tiles p
    cdef list keep = []
    if kind == TILE_F32:
        esize = 4
    elif kind == TILE_F16:
        esize = 2
    elif kind == TILE_U8:
        esize = 1
    else:
        raise ValueError("blend_tiles: bad kind")
    if ny < 1 or nx < 1 or th < 1 or tw < 1 or wxe.shape[0] != nx or wxe.shape[1] % tw:
        raise ValueError("blend_tiles: weight tables do not match")
    C = wxe.shape[1] // tw
    if C < 1 or ys.shape[0] != ny or xs.shape[0] != nx or len(tiles) != ny * nx:
        raise ValueError("blend_tiles: tiles and tables do not match")
    ow = out.shape[1] // (C * esize)
    if oh < 1 or ow < 1 or out.shape[1] != ow * C * esize:
        raise ValueError("blend_tiles: out shape does not match")
    for i in range(ny):
        if ys[i] < 0 or ys[i] >= oh or (i > 0 and ys[i] < ys[i - 1]):
            raise ValueError("blend_tiles: bad tile rows")
    for i in range(nx):
        if xs[i] < 0 or xs[i] >= ow or (i > 0 and xs[i] < xs[i - 1]):
            raise ValueError("blend_tiles: bad tile columns")
    n = ny * nx
    cdef Py_ssize_t[:, ::1] desc = np.empty((4, n), dtype=np.intp)  # base, s0, s1, s2
    cdef Py_ssize_t[:, ::1] cover = np.empty((2, oh), dtype=np.intp)  # ilo, ihi per row
    cdef unsigned char[::1] packed = np.empty(n, dtype=np.uint8)
    for k in range(n):
        mv = tiles[k]
        if kind == TILE_U8:
            m8 = mv
            keep.append(m8)
            sh0, sh1, sh2 = m8.shape[0], m8.shape[1], m8.shape[2]
            st0, st1, st2 = m8.strides[0], m8.strides[1], m8.strides[2]
            addr = <Py_ssize_t>&m8[0, 0, 0] if sh0 > 0 and sh1 > 0 and sh2 > 0 else 0
        elif kind == TILE_F32:
            m32 = mv
            keep.append(m32)
            sh0, sh1, sh2 = m32.shape[0], m32.shape[1], m32.shape[2]
            st0, st1, st2 = m32.strides[0], m32.strides[1], m32.strides[2]
            addr = <Py_ssize_t>&m32[0, 0, 0] if sh0 > 0 and sh1 > 0 and sh2 > 0 else 0
            if addr % 4 or st0 % 4 or st1 % 4 or st2 % 4:
                raise ValueError(f"blend_tiles: tile {k} is not aligned")
        else:
            m16 = mv
            keep.append(m16)
            sh0, sh1, sh2 = m16.shape[0], m16.shape[1], m16.shape[2]
            st0, st1, st2 = m16.strides[0], m16.strides[1], m16.strides[2]
            addr = <Py_ssize_t>&m16[0, 0, 0] if sh0 > 0 and sh1 > 0 and sh2 > 0 else 0
            if addr % 2 or st0 % 2 or st1 % 2 or st2 % 2:
                raise ValueError(f"blend_tiles: tile {k} is not aligned")
        if sh0 != th or sh1 != tw or sh2 != C:
            raise ValueError(f"blend_tiles: tile {k} has the wrong shape")
        desc[0, k], desc[1, k], desc[2, k], desc[3, k] = addr, st0, st1, st2
        packed[k] = 1 if st1 == C * esize and (C == 1 or st2 == esize) else 0
    # tile rows covering each output row: ys and ys + th are non-decreasing
    lo = 0
    hi = -1
    for y in range(oh):
        while lo < ny and ys[lo] + th <= y:
            lo += 1
        while hi + 1 < ny and ys[hi + 1] <= y:
            hi += 1
        cover[0, y] = lo
        cover[1, y] = hi
    cdef float[:, ::1] scratch = np.empty((nthreads, (2 * ow + tw) * C), dtype=np.float32)
    p.base = <const char* const*>&desc[0, 0]
    p.s0 = &desc[1, 0]
    p.s1 = &desc[2, 0]
    p.s2 = &desc[3, 0]
    p.packed = &packed[0]
    p.wy = &wy[0, 0]
    p.wxe = &wxe[0, 0]
    p.y0 = &ys[0]
    p.x0 = &xs[0]
    p.ilo = &cover[0, 0]
    p.ihi = &cover[1, 0]
    p.th, p.tw, p.ow, p.C, p.nx = th, tw, ow, C, nx
    p.kind = kind
    p.out = <char*>&out[0, 0]
    p.os0 = out.strides[0]
    with nogil:
        for y in prange(oh, num_threads=nthreads, schedule="dynamic", chunksize=_chunk(ow * C)):
            tid = openmp.omp_get_thread_num()
            vt_tiles_row(&p, y, &scratch[tid, 0], &scratch[tid, ow * C], &scratch[tid, 2 * ow * C])
    return out
