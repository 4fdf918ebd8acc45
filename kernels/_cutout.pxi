# Cut-out kernels, included by _cpu.pyx (it shares its thread helpers). Wrappers:
# kernels/cutout.py; contract: docs/kernels.md, "Cut-out kernels".
#
# * edge statistics of a matte's outline on the photo (the empty-matte check): one row pass
#   that finds the outline (the 3x3 morphological gradient of alpha >= cut), sums the 3x3
#   Sobel magnitudes of the grey photo there and writes the squared magnitudes of every 4th
#   pixel (even rows and columns) for the photo's percentile. Sobel at REFLECT_101 borders,
#   the gradient's window clipped at the borders: what cv2.spatialGradient and
#   cv2.morphologyEx(MORPH_GRADIENT) compute, without their full-size int16 and mask planes.
#   Per-row sums, added in row order: results never depend on the thread count.
# * RGBA cut-out: colour (3 or 4 channels, either order) + alpha -> RGBA in one pass, every
#   pixel whose alpha is 0 all zero.

from libc.stdint cimport int32_t, int64_t

cdef extern from *:
    """
    #include <math.h>
    #include <stdint.h>
    #include <stdlib.h>
    #include <string.h>

    /* OpenCV's BORDER_REFLECT_101 index */
    static inline int vt_r101(int i, int n) {
        if (n == 1) return 0;
        if (i < 0) return -i;
        if (i >= n) return 2 * n - 2 - i;
        return i;
    }

    /* dx^2 + dy^2 of the 3x3 Sobel derivatives at column x from rows u (y-1), c (y), d (y+1)
       and the columns l (x-1) and r (x+1), borders already reflected */
    static inline int32_t vt_sobel_sq(const unsigned char *u, const unsigned char *c,
                                      const unsigned char *d, int l, int x, int r) {
        int dx = (u[r] + 2 * c[r] + d[r]) - (u[l] + 2 * c[l] + d[l]);
        int dy = (d[l] + 2 * d[x] + d[r]) - (u[l] + 2 * u[x] + u[r]);
        return dx * dx + dy * dy;
    }

    /* one row y: sum of sqrtf(dx^2 + dy^2) (float32, as the numpy check did) over its
       outline pixels and their count; for even y the squared magnitudes at even x into sq
       (ceil(w / 2) values). vor, vand, ol: w bytes of scratch each. */
    static void vt_edge_row(const unsigned char *grey, Py_ssize_t gs, const unsigned char *alpha,
                            Py_ssize_t as, int h, int w, int y, int cut,
                            unsigned char *restrict vor, unsigned char *restrict vand,
                            unsigned char *restrict ol, double *sum, int64_t *count,
                            int32_t *restrict sq) {
        const unsigned char *a0 = alpha + (Py_ssize_t)(y > 0 ? y - 1 : y) * as;
        const unsigned char *a1 = alpha + (Py_ssize_t)y * as;
        const unsigned char *a2 = alpha + (Py_ssize_t)(y + 1 < h ? y + 1 : y) * as;
        const unsigned char *u = grey + (Py_ssize_t)vt_r101(y - 1, h) * gs;
        const unsigned char *c = grey + (Py_ssize_t)y * gs;
        const unsigned char *d = grey + (Py_ssize_t)vt_r101(y + 1, h) * gs;
        const unsigned char k = (unsigned char)(cut - 1);
        double s = 0.0;
        int64_t n = 0;
        int x;
        /* any / all of alpha >= cut down the (clipped) 3-row column: vectorised byte loops */
        for (x = 0; x < w; x++) {
            unsigned char i0 = a0[x] > k, i1 = a1[x] > k, i2 = a2[x] > k;
            vor[x] = i0 | i1 | i2;
            vand[x] = i0 & i1 & i2;
        }
        /* the outline: some inside and some outside in the (clipped) 3x3 window */
        if (w == 1) {
            ol[0] = vor[0] & (unsigned char)~vand[0];
        } else {
            ol[0] = (vor[0] | vor[1]) & (unsigned char)~(vand[0] & vand[1]);
            for (x = 1; x < w - 1; x++)
                ol[x] = (vor[x - 1] | vor[x] | vor[x + 1])
                        & (unsigned char)~(vand[x - 1] & vand[x] & vand[x + 1]);
            ol[w - 1] = (vor[w - 2] | vor[w - 1]) & (unsigned char)~(vand[w - 2] & vand[w - 1]);
        }
        /* the outline is sparse: skip 8 zero flags at a time */
        for (x = 0; x < w;) {
            uint64_t word;
            if (x + 8 <= w) {
                memcpy(&word, ol + x, 8);
                if (word == 0) { x += 8; continue; }
            }
            if (ol[x]) {
                int32_t q = vt_sobel_sq(u, c, d, vt_r101(x - 1, w), x, vt_r101(x + 1, w));
                s += (double)sqrtf((float)q);
                n++;
            }
            x++;
        }
        *sum = s;
        *count = n;
        if (sq != NULL) {
            sq[0] = vt_sobel_sq(u, c, d, vt_r101(-1, w), 0, vt_r101(1, w));
            for (x = 2; x + 1 < w; x += 2) sq[x >> 1] = vt_sobel_sq(u, c, d, x - 1, x, x + 1);
            if (x < w) sq[x >> 1] = vt_sobel_sq(u, c, d, x - 1, x, vt_r101(x + 1, w));
        }
    }

    /* the values of rank lo and hi (0-based, lo <= hi) of n values in [0, 2^22): a histogram
       of the top bits finds their buckets, one more pass the values inside those buckets;
       -1: no memory, -2: a value outside the range */
    static int vt_rank_pair(const int32_t *v, Py_ssize_t n, Py_ssize_t lo, Py_ssize_t hi,
                            int32_t *out) {
        enum { SHIFT = 11, FINE = 1 << SHIFT, COARSE = 1 << (22 - SHIFT) };
        Py_ssize_t i, below[2] = {0, 0}, want[2];
        int64_t *coarse = (int64_t *)calloc(COARSE + 2 * FINE, sizeof(int64_t)), *fine[2];
        int bucket[2], b, j;
        if (coarse == NULL) return -1;
        fine[0] = coarse + COARSE;
        fine[1] = fine[0] + FINE;
        want[0] = lo; want[1] = hi;
        for (i = 0; i < n; i++) {
            if ((uint32_t)v[i] >> 22) { free(coarse); return -2; }  /* outside [0, 2^22) */
            coarse[v[i] >> SHIFT]++;
        }
        for (j = 0; j < 2; j++) {
            for (b = 0; b < COARSE && below[j] + coarse[b] <= want[j]; b++) below[j] += coarse[b];
            bucket[j] = b;
        }
        for (i = 0; i < n; i++) {
            int t = v[i] >> SHIFT;
            if (t == bucket[0]) fine[0][v[i] & (FINE - 1)]++;
            if (t == bucket[1]) fine[1][v[i] & (FINE - 1)]++;
        }
        for (j = 0; j < 2; j++) {
            Py_ssize_t seen = below[j];
            for (b = 0; b < FINE && seen + fine[j][b] <= want[j]; b++) seen += fine[j][b];
            out[j] = (bucket[j] << SHIFT) | b;
        }
        free(coarse);
        return 0;
    }

    /* one cut-out row, scalar: n pixels of s1 bytes (channels at 0, cs, 2 cs; reversed when
       swap) + alpha -> RGBA, all four bytes 0 where alpha is 0 */
    static void vt_cutout_row_scalar(const unsigned char *p, Py_ssize_t s1, Py_ssize_t cs,
                                     const unsigned char *a, Py_ssize_t as, int from, int n,
                                     int swap, unsigned char *restrict o) {
        int x;
        Py_ssize_t c0 = swap ? 2 * cs : 0, c2 = swap ? 0 : 2 * cs;
        for (x = from, o += 4 * (Py_ssize_t)from; x < n; x++, o += 4) {
            const unsigned char *q = p + (Py_ssize_t)x * s1;
            unsigned char v = a[(Py_ssize_t)x * as], m = v ? 0xFF : 0;
            o[0] = q[c0] & m;
            o[1] = q[cs] & m;
            o[2] = q[c2] & m;
            o[3] = v;
        }
    }

    #if VT_AVX2
    /* packed 3- or 4-byte pixels and packed alpha, 8 pixels a step: in-lane byte shuffles to
       RGB0 (or BGR0), alpha widened into byte 3, all cleared where alpha is 0; returns the
       first pixel left to the scalar loop (the loads never read past the row) */
    VT_TARGET_AVX2 static int vt_cutout_row_avx2(const unsigned char *p, int s1,
                                                 const unsigned char *a, int n, int swap,
                                                 unsigned char *o) {
        const char r = (char)(swap ? 2 : 0), b = (char)(swap ? 0 : 2), z = (char)0x80;
        __m128i lane3 = _mm_setr_epi8(r, 1, b, z, 3 + r, 4, 3 + b, z, 6 + r, 7, 6 + b, z,
                                      9 + r, 10, 9 + b, z);
        __m128i lane4 = _mm_setr_epi8(r, 1, b, z, 4 + r, 5, 4 + b, z, 8 + r, 9, 8 + b, z,
                                      12 + r, 13, 12 + b, z);
        __m256i shuffle = _mm256_broadcastsi128_si256(s1 == 3 ? lane3 : lane4);
        __m256i zero = _mm256_setzero_si256();
        int x = 0;
        /* the 16-byte load at pixel x + 4 ends at byte s1 * (x + 4) + 16 */
        for (; s1 * (x + 4) + 16 <= s1 * n; x += 8) {
            __m128i lo = _mm_loadu_si128((const __m128i *)(p + (Py_ssize_t)s1 * x));
            __m128i hi = _mm_loadu_si128((const __m128i *)(p + (Py_ssize_t)s1 * (x + 4)));
            __m256i px = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
            __m256i rgb = _mm256_shuffle_epi8(px, shuffle);
            long long eight;
            __m256i alpha;
            memcpy(&eight, a + x, 8);
            alpha = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(eight));
            rgb = _mm256_or_si256(rgb, _mm256_slli_epi32(alpha, 24));
            rgb = _mm256_andnot_si256(_mm256_cmpeq_epi32(alpha, zero), rgb);
            _mm256_storeu_si256((__m256i *)(o + 4 * (Py_ssize_t)x), rgb);
        }
        return x;
    }
    #endif

    static void vt_cutout_row(const unsigned char *p, Py_ssize_t s1, Py_ssize_t cs,
                              const unsigned char *a, Py_ssize_t as, int n, int swap,
                              unsigned char *restrict o) {
        int x = 0;
    #if VT_AVX2
        if ((s1 == 3 || s1 == 4) && cs == 1 && as == 1 && vt_level() >= 2)
            x = vt_cutout_row_avx2(p, (int)s1, a, n, swap, o);
    #endif
        vt_cutout_row_scalar(p, s1, cs, a, as, x, n, swap, o);
    }
    """
    void vt_edge_row(const unsigned char* grey, Py_ssize_t gs, const unsigned char* alpha,
                     Py_ssize_t as_, int h, int w, int y, int cut, unsigned char* vor,
                     unsigned char* vand, unsigned char* ol, double* sum, int64_t* count,
                     int32_t* sq) noexcept nogil
    int vt_rank_pair(const int32_t* v, Py_ssize_t n, Py_ssize_t lo, Py_ssize_t hi,
                     int32_t* out) noexcept nogil
    void vt_cutout_row(const unsigned char* p, Py_ssize_t s1, Py_ssize_t cs,
                       const unsigned char* a, Py_ssize_t as_, int n, int swap,
                       unsigned char* o) noexcept nogil


def edge_rows(const unsigned char[:, ::1] grey, const unsigned char[:, ::1] alpha, int cut,
              double[::1] sums, int64_t[::1] counts, int32_t[:, ::1] squares, int num_threads):
    """Per row y: ``sums[y]`` / ``counts[y]`` over the outline; ``squares[y // 2]`` for even
    y (see the file's header)."""
    cdef Py_ssize_t H = grey.shape[0], W = grey.shape[1], y
    cdef int nthreads = _threads(num_threads), tid
    if (alpha.shape[0] != H or alpha.shape[1] != W or sums.shape[0] != H
            or counts.shape[0] != H or squares.shape[0] != (H + 1) // 2
            or squares.shape[1] != (W + 1) // 2 or H < 1 or W < 1 or not 0 < cut < 256):
        raise ValueError("edge_rows: shapes do not match")
    cdef unsigned char[:, ::1] scratch = np.empty((nthreads, 3 * W), dtype=np.uint8)
    with nogil:
        for y in prange(H, num_threads=nthreads, schedule="static"):
            tid = openmp.omp_get_thread_num()
            vt_edge_row(&grey[0, 0], grey.strides[0], &alpha[0, 0], alpha.strides[0],
                        <int>H, <int>W, <int>y, cut, &scratch[tid, 0], &scratch[tid, W],
                        &scratch[tid, 2 * W], &sums[y], &counts[y],
                        &squares[y // 2, 0] if y % 2 == 0 else NULL)


def rank_pair(const int32_t[::1] values, Py_ssize_t lo, Py_ssize_t hi):
    """(value of rank lo, value of rank hi), 0-based, of ``values`` in [0, 2^22)."""
    cdef int32_t out[2]
    cdef int rc
    if not 0 <= lo <= hi < values.shape[0]:
        raise ValueError("rank_pair: ranks out of range")
    with nogil:
        rc = vt_rank_pair(&values[0], values.shape[0], lo, hi, out)
    if rc == -2:
        raise ValueError("rank_pair: values must lie in [0, 2**22)")
    if rc != 0:
        raise MemoryError("rank_pair: no memory for the histogram")
    return int(out[0]), int(out[1])


def cutout_rgba(const unsigned char[:, :, :] colour, const unsigned char[:, :] alpha,
                unsigned char[:, :, ::1] out, bint swap, int num_threads):
    """out = colour's first three channels (reversed when ``swap``) + alpha; 0 where alpha is 0."""
    cdef Py_ssize_t H = colour.shape[0], W = colour.shape[1], y
    cdef int nthreads = _threads(num_threads)
    if (colour.shape[2] < 3 or alpha.shape[0] != H or alpha.shape[1] != W
            or out.shape[0] != H or out.shape[1] != W or out.shape[2] != 4 or H < 1 or W < 1):
        raise ValueError("cutout_rgba: shapes do not match")
    with nogil:
        for y in prange(H, num_threads=nthreads, schedule="static"):
            vt_cutout_row(&colour[y, 0, 0], colour.strides[1], colour.strides[2], &alpha[y, 0],
                          alpha.strides[1], <int>W, swap, &out[y, 0, 0])
    return out
