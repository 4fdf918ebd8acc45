# Alpha (matting) kernels, included by _cpu.pyx so that they share its bilinear tap tables,
# row engine (vt_fsrc / vt_fvalue) and per-thread scratch. Wrappers: kernels/alpha.py;
# contract: docs/kernels.md, "Alpha kernels".
#
# * matte -> alpha: bilinear resize of a low-resolution matte (exactly adapt's rows), an
#   optional grey-guide guided filter (He et al. 2010) with clipped-window box means in
#   float64, a ramp and uint8 rounding. Without the filter it is one fused row pass; with it,
#   three passes: resize + luma, then (a, b) per pixel, then their means and the output.
# * shadow alpha from a darkened background, shadow merge, premultiplication: exact integer
#   or float64 arithmetic, one row pass each.
#
# Box sums: one OpenMP task per band of rows. A band keeps column sums of the horizontal
# window sums and slides them down, adding at each row the horizontal window sums of (row
# entering the window - row leaving it), so the cost per pixel does not depend on the radius.
# Band heights depend only on the image height and the radius, never on the thread count:
# results never depend on num_threads.

from libc.stdint cimport int64_t

cdef extern from *:
    """
    #include <math.h>

    /* q -> uint8 alpha: t = (q - low) / (high - low) clamped to [0, 1] (NaN -> 0), then
       floor(t * 255 + 0.5), all in float64; low == high (hard): q >= low -> 255, else 0 */
    static inline unsigned char vt_ramp_u8(double q, double low, double high, int hard) {
        double t;
        if (hard) return q >= low ? 255 : 0;
        t = (q - low) / (high - low);
        if (!(t > 0.0)) t = 0.0;
        else if (t > 1.0) t = 1.0;
        return (unsigned char)(int)(t * 255.0 + 0.5);  /* >= 0.5: truncation == floor */
    }

    /* one output row of the resized matte (adapt's value row, bit for bit) -> p row (po, may
       be NULL) and the ramped uint8 row (o, may be NULL) */
    static void vt_matte_row(const vt_fsrc *src, int y, vt_scr *s, float *po, unsigned char *o,
                             double low, double high, int hard) {
        vt_vrow v;
        int x, cw = src->cw;
        const float *a, *b;
        float wa, wb, q;
        vt_fvalue(src, y, s, &v);
        a = v.a[0]; b = v.b[0]; wa = v.wa; wb = v.wb;
        for (x = 0; x < cw; x++) {
            if (v.nb) q = a[x] * wa + b[x] * wb;
            else q = wa == 1.0f ? a[x] : a[x] * wa;
            if (po) po[x] = q;
            if (o) o[x] = vt_ramp_u8((double)q, low, high, hard);
        }
    }

    /* grey guide of one row: I = (0.299 R + 0.587 G + 0.114 B) / 255 in float32, left to
       right; s1: bytes per pixel, cs: bytes per channel (R, G, B at 0, cs, 2 cs); also the
       row's min and max */
    static void vt_luma_row(const unsigned char *g, Py_ssize_t s1, Py_ssize_t cs, int w,
                            float *l, float *mn, float *mx) {
        int x;
        float lo = 2.0f, hi = -1.0f;
        for (x = 0; x < w; x++) {
            const unsigned char *px = g + (Py_ssize_t)x * s1;
            float v = (0.299f * (float)px[0] + 0.587f * (float)px[cs] + 0.114f * (float)px[2 * cs])
                      / 255.0f;
            l[x] = v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        *mn = lo; *mx = hi;
    }

    /* guided filter state; planes are C-contiguous h x w */
    typedef struct {
        const float *P;             /* resized matte */
        const float *L;             /* guide luma (uncentred) */
        double *AB;                 /* per-pixel linear coefficients a, b (h x w x 2) */
        unsigned char *out;
        int h, w, r, hard;
        double c;                   /* centre subtracted from the luma (midrange) */
        double eps, low, high;
    } vt_gf;

    /* col[x*K + k] += the horizontal clipped-window sum of one row of K interleaved planes
       (v[x*K + k]): sum of v[j*K + k], j in max(x-r,0) .. min(x+r,w-1), as a running sum that
       moves by (entering value - leaving value); the K chains are independent */
    VT_INLINE void vt_hbox(const double *restrict v, double *restrict col, int w, int r,
                           const int K) {
        int x, k, e = r < w - 1 ? r : w - 1;
        double s[4] = {0.0, 0.0, 0.0, 0.0};
        for (x = 0; x <= e; x++)
            for (k = 0; k < K; k++) s[k] += v[x * K + k];
        for (k = 0; k < K; k++) col[k] = col[k] + s[k];
        /* x <= r: nothing leaves; x in [r+1, w-r-1]: one value enters, one leaves;
           x >= max(r+1, w-r): nothing enters */
        for (x = 1; x <= r && x < w; x++) {
            if (x + r < w)
                for (k = 0; k < K; k++) s[k] += v[(x + r) * K + k];
            for (k = 0; k < K; k++) col[x * K + k] = col[x * K + k] + s[k];
        }
        for (x = r + 1; x + r < w; x++) {
            for (k = 0; k < K; k++) s[k] += v[(x + r) * K + k] - v[(x - r - 1) * K + k];
            for (k = 0; k < K; k++) col[x * K + k] = col[x * K + k] + s[k];
        }
        for (x = (r + 1 > w - r ? r + 1 : w - r); x < w; x++) {
            for (k = 0; k < K; k++) s[k] -= v[(x - r - 1) * K + k];
            for (k = 0; k < K; k++) col[x * K + k] = col[x * K + k] + s[k];
        }
    }

    /* the K interleaved input values of row y written to v, or subtracted from v when acc (a
       leaving row): stage 0: K = 4, I', p, I'*I', I'*p (I' = L - c); stage 1: K = 2, a, b */
    static void vt_gf_row(const vt_gf *g, int stage, int y, int acc, double *restrict v) {
        Py_ssize_t o = (Py_ssize_t)y * g->w, x;
        int w = g->w;
        if (stage == 0) {
            const float *p = g->P + o, *l = g->L + o;
            double c = g->c;
            for (x = 0; x < w; x++) {
                double i = (double)l[x] - c, q = (double)p[x];
                if (acc) {
                    v[4 * x] -= i; v[4 * x + 1] -= q;
                    v[4 * x + 2] -= i * i; v[4 * x + 3] -= i * q;
                } else {
                    v[4 * x] = i; v[4 * x + 1] = q; v[4 * x + 2] = i * i; v[4 * x + 3] = i * q;
                }
            }
        } else {
            const double *ab = g->AB + 2 * o;
            if (acc) for (x = 0; x < 2 * w; x++) v[x] = v[x] - ab[x];
            else for (x = 0; x < 2 * w; x++) v[x] = ab[x];
        }
    }

    /* slide the column sums: col += horizontal window sums of (row yin - row yout), either
       row may be -1 (absent); the difference is taken first, so a row equal to the one it
       replaces (flat areas) leaves the sums exactly unchanged */
    static void vt_gf_slide(const vt_gf *g, int stage, int yin, int yout, double *restrict col,
                            double *restrict v) {
        int K = stage == 0 ? 4 : 2, w = g->w;
        Py_ssize_t n = (Py_ssize_t)K * w;
        if (yin >= 0) vt_gf_row(g, stage, yin, 0, v);
        else memset(v, 0, (size_t)n * sizeof(double));
        if (yout >= 0) vt_gf_row(g, stage, yout, 1, v);
        if (K == 4) vt_hbox(v, col, w, g->r, 4);
        else vt_hbox(v, col, w, g->r, 2);
    }

    /* stage 0 (a, b of rows y0..y1-1) or stage 1 (output rows y0..y1-1) of one band; scr:
       9 * w doubles (column sums and an input row: K <= 4 values per pixel; 1 / count per
       column). Box means are sums times 1 / count (count = pixels inside the window). */
    static void vt_gf_band(const vt_gf *g, int stage, int y0, int y1, double *scr) {
        int w = g->w, h = g->h, r = g->r, x, y, ny, ny_tab = -1;
        double *col = scr, *v = scr + 4 * (Py_ssize_t)w, *inv = scr + 8 * (Py_ssize_t)w;
        double eps = g->eps, c = g->c;
        int top = y0 - r > 0 ? y0 - r : 0, bot = y0 + r < h - 1 ? y0 + r : h - 1;
        memset(col, 0, 4 * (size_t)w * sizeof(double));
        for (y = top; y <= bot; y++) vt_gf_slide(g, stage, y, -1, col, v);
        for (y = y0; y < y1; y++) {
            Py_ssize_t o = (Py_ssize_t)y * w;
            if (y > y0 && (y + r < h || y - r - 1 >= 0))
                vt_gf_slide(g, stage, y + r < h ? y + r : -1, y - r - 1, col, v);
            ny = (y + r < h - 1 ? y + r : h - 1) - (y - r > 0 ? y - r : 0) + 1;
            if (ny != ny_tab) {
                for (x = 0; x < w; x++) {
                    int nx = (x + r < w - 1 ? x + r : w - 1) - (x - r > 0 ? x - r : 0) + 1;
                    inv[x] = 1.0 / ((double)nx * (double)ny);
                }
                ny_tab = ny;
            }
            if (stage == 0) {
                double *restrict ab = g->AB + 2 * o;
                for (x = 0; x < w; x++) {
                    const double *cc = col + 4 * x;
                    double k = inv[x];
                    double mi = cc[0] * k, mp = cc[1] * k, mii = cc[2] * k, mip = cc[3] * k;
                    double a = (mip - mi * mp) / ((mii - mi * mi) + eps);
                    ab[2 * x] = a;
                    ab[2 * x + 1] = mp - a * mi;
                }
            } else {
                const float *restrict l = g->L + o;
                unsigned char *restrict out = g->out + o;
                for (x = 0; x < w; x++) {
                    double q = (col[2 * x] * inv[x]) * ((double)l[x] - c) + col[2 * x + 1] * inv[x];
                    out[x] = vt_ramp_u8(q, g->low, g->high, g->hard);
                }
            }
        }
    }

    /* integer luma of docs/kernels.md: round(0.299 R + 0.587 G + 0.114 B), halves up */
    static inline int vt_luma_int(const unsigned char *px, Py_ssize_t cs) {
        return (299 * px[0] + 587 * px[cs] + 114 * px[2 * cs] + 500) / 1000;
    }

    /* shadow alpha of one pixel: d = clip((1 - L / bg) * strength, 0, 1), 0 below min_d */
    static inline unsigned char vt_shadow_u8(int luma, double bg, double strength, double min_d) {
        double d = (1.0 - (double)luma / bg) * strength;
        if (!(d > 0.0)) d = 0.0;
        else if (d > 1.0) d = 1.0;
        if (d < min_d) return 0;
        return (unsigned char)(int)(d * 255.0 + 0.5);  /* >= 0.5: truncation == floor */
    }

    /* uint8 row views: n pixels from p, s1 bytes apart, channels cs bytes apart */
    typedef struct { const unsigned char *p; Py_ssize_t s1, cs; } vt_u8row;

    /* hist[luma] += 1 over the pixels of a row whose alpha (a, as bytes apart) is 0 */
    static void vt_hist_row(vt_u8row im, const unsigned char *a, Py_ssize_t as, int n,
                            int64_t *hist) {
        int x;
        for (x = 0; x < n; x++)
            if (a[x * as] == 0) hist[vt_luma_int(im.p + x * im.s1, im.cs)]++;
    }

    /* shadow row through a 256-entry table of vt_shadow_u8 per luma (the same values) */
    static void vt_shadow_row(vt_u8row im, const unsigned char *a, Py_ssize_t as, int n,
                              const unsigned char *table, unsigned char *o) {
        int x;
        for (x = 0; x < n; x++)
            o[x] = a[x * as] == 255 ? 0 : table[vt_luma_int(im.p + x * im.s1, im.cs)];
    }

    /* floor(num / den) for 0 <= num, 0 < den, num + den < 2^31: a float64 estimate (inv =
       1 / den) corrected by one step either way, exact */
    static inline int vt_idiv(int num, int den, double inv) {
        int q = (int)((double)num * inv);
        q -= q * den > num;
        q += (q + 1) * den <= num;
        return q;
    }

    /* merge_shadow of a row: N = 255 A + (255 - A) S, A' = (N + 127) / 255,
       C' = (510 A C + N) / (2 N), all 0 when N == 0 (N > 0 below the shortcuts) */
    static void vt_merge_row(vt_u8row im, const unsigned char *sh, Py_ssize_t ss, int n,
                             unsigned char *o) {
        int x, c;
        for (x = 0; x < n; x++, o += 4) {
            const unsigned char *q = im.p + x * im.s1;
            int a = q[3 * im.cs], nn = 255 * a + (255 - a) * sh[x * ss];
            if (a == 0) {  /* exact shortcut: C' = 0, A' = S (covers N == 0) */
                o[0] = o[1] = o[2] = 0;
                o[3] = sh[x * ss];
                continue;
            }
            if (a == 255) {  /* exact shortcut: C' = C, A' = 255 */
                o[0] = q[0]; o[1] = q[im.cs]; o[2] = q[2 * im.cs]; o[3] = 255;
                continue;
            }
            {
                double inv = 1.0 / (double)(2 * nn);
                for (c = 0; c < 3; c++)
                    o[c] = (unsigned char)vt_idiv(510 * a * q[c * im.cs] + nn, 2 * nn, inv);
            }
            o[3] = (unsigned char)((nn + 127) / 255);
        }
    }

    /* premultiply a row: C' = (C A + 127) / 255, A kept */
    static void vt_premul_row(vt_u8row im, int n, unsigned char *restrict o) {
        int x, c;
        if (im.s1 == 4 && im.cs == 1) {  /* contiguous pixels: a loop the compiler vectorises */
            const unsigned char *restrict q = im.p;
            for (x = 0; x < 4 * n; x += 4) {
                unsigned a = q[x + 3];
                o[x] = (unsigned char)((q[x] * a + 127u) / 255u);
                o[x + 1] = (unsigned char)((q[x + 1] * a + 127u) / 255u);
                o[x + 2] = (unsigned char)((q[x + 2] * a + 127u) / 255u);
                o[x + 3] = (unsigned char)a;
            }
            return;
        }
        for (x = 0; x < n; x++, o += 4) {
            const unsigned char *q = im.p + x * im.s1;
            unsigned a = q[3 * im.cs];
            for (c = 0; c < 3; c++) o[c] = (unsigned char)((q[c * im.cs] * a + 127u) / 255u);
            o[3] = (unsigned char)a;
        }
    }
    """
    ctypedef struct vt_gf:
        const float* P
        const float* L
        double* AB
        unsigned char* out
        int h
        int w
        int r
        int hard
        double c
        double eps
        double low
        double high

    void vt_matte_row(const vt_fsrc* src, int y, vt_scr* s, float* po, unsigned char* o,
                      double low, double high, int hard) noexcept nogil
    void vt_luma_row(const unsigned char* g, Py_ssize_t s1, Py_ssize_t cs, int w, float* l,
                     float* mn, float* mx) noexcept nogil
    void vt_gf_band(const vt_gf* g, int stage, int y0, int y1, double* scr) noexcept nogil
    unsigned char vt_shadow_u8(int luma, double bg, double strength, double min_d) noexcept nogil
    ctypedef struct vt_u8row:
        const unsigned char* p
        Py_ssize_t s1
        Py_ssize_t cs
    void vt_hist_row(vt_u8row im, const unsigned char* a, Py_ssize_t as_, int n,
                     int64_t* hist) noexcept nogil
    void vt_shadow_row(vt_u8row im, const unsigned char* a, Py_ssize_t as_, int n,
                       const unsigned char* table, unsigned char* o) noexcept nogil
    void vt_merge_row(vt_u8row im, const unsigned char* sh, Py_ssize_t ss, int n,
                      unsigned char* o) noexcept nogil
    void vt_premul_row(vt_u8row im, int n, unsigned char* o) noexcept nogil


cdef inline int _gf_band_height(int h, int r) noexcept nogil:
    """Rows per band of the box-sum passes: a function of the height and radius only (so the
    sums, and the results, never depend on the thread count); at least 2r+1 rows, so that
    priming a band's window costs at most about half of the band's own work."""
    cdef int band = max(128, 2 * r + 1)
    return min(band, h)


def matte_alpha(const float[:, ::1] matte, unsigned char[:, ::1] out, object guide,
                int radius, double eps, double low, double high, int num_threads,
                object resized=None):
    """Fill ``out`` (uint8 (H, W)) with the alpha of ``matte`` (float32 (h, w), already
    clamped to [0, 1]): bilinear resize to (H, W), then, when ``guide`` (uint8 (H, W, >= 3),
    any strides, RGB) is given and ``radius > 0``, the grey-guide guided filter, then the
    ramp. ``resized``: None or float32 (H, W) C-contiguous, filled with the resized matte
    (the filter's input), for tests and debugging."""
    cdef Py_ssize_t mh = matte.shape[0], mw = matte.shape[1]
    cdef Py_ssize_t H = out.shape[0], W = out.shape[1], y
    cdef int nthreads = _threads(num_threads), tid, hard = 1 if low == high else 0
    cdef int guided = 1 if (guide is not None and radius > 0) else 0
    cdef vt_fsrc src
    cdef vt_scr* scr = NULL
    cdef list keep = []
    cdef float[:, ::1] pmv
    cdef float* pbase = NULL
    cdef const unsigned char[:, :, :] gmv
    if mh < 1 or mw < 1 or H < 1 or W < 1:
        raise ValueError("matte_alpha: empty matte or output")
    if not (0.0 <= low <= high <= 1.0) or not eps > 0.0 or radius < 0:
        raise ValueError("matte_alpha: bad ramp, eps or radius")
    if resized is not None:
        pmv = resized
        if pmv.shape[0] != H or pmv.shape[1] != W:
            raise ValueError("matte_alpha: resized does not match out")
        pbase = &pmv[0, 0]
    if guided:
        gmv = guide
        if gmv.shape[0] != H or gmv.shape[1] != W or gmv.shape[2] < 3:
            raise ValueError("matte_alpha: guide does not match out")
        if pbase == NULL:
            pmv = np.empty((H, W), dtype=np.float32)
            pbase = &pmv[0, 0]
    memset(&src, 0, sizeof(vt_fsrc))
    _fsrc_init(&src, <const char*>&matte[0, 0], mw * 4, 4, False, mh, mw, H, W,
               METHOD_BILINEAR, keep)
    src.nc = 1
    src.coff[0] = 0
    arena = _scratch(nthreads, W, 1, 1, &scr)
    try:
        if not guided:
            with nogil:
                for y in prange(H, num_threads=nthreads, schedule="dynamic",
                                chunksize=_chunk(W)):
                    tid = openmp.omp_get_thread_num()
                    vt_matte_row(&src, <int>y, &scr[tid],
                                 (pbase + y * W) if pbase != NULL else NULL,
                                 &out[y, 0], low, high, hard)
            return out
        _guided(&src, scr, pbase, gmv, out, radius, eps, low, high, hard, nthreads)
    finally:
        free(scr)
    return out


cdef int _guided(const vt_fsrc* src, vt_scr* scr, float* pbase, const unsigned char[:, :, :] guide,
                 unsigned char[:, ::1] out, int radius, double eps, double low, double high,
                 int hard, int nthreads) except -1:
    """The guided path of matte_alpha: resize + luma rows, then the two band passes."""
    cdef Py_ssize_t H = out.shape[0], W = out.shape[1], y, b
    cdef int tid, band, nbands, stage
    cdef object lum = np.empty((H, W), dtype=np.float32)
    cdef object mins = np.empty(H, dtype=np.float32)
    cdef object maxs = np.empty(H, dtype=np.float32)
    cdef object coef = np.empty((H, W, 2), dtype=np.float64)
    cdef float[:, ::1] lmv = lum
    cdef float[::1] mnv = mins
    cdef float[::1] mxv = maxs
    cdef double[:, :, ::1] cmv = coef
    cdef const unsigned char* gbase = &guide[0, 0, 0]
    cdef Py_ssize_t gs0 = guide.strides[0], gs1 = guide.strides[1], gcs = guide.strides[2]
    cdef object work = np.empty((nthreads, 9 * W), dtype=np.float64)
    cdef double[:, ::1] wmv = work
    cdef vt_gf g
    with nogil:
        for y in prange(H, num_threads=nthreads, schedule="dynamic", chunksize=_chunk(W)):
            tid = openmp.omp_get_thread_num()
            vt_matte_row(src, <int>y, &scr[tid], pbase + y * W, NULL, low, high, hard)
            vt_luma_row(gbase + y * gs0, gs1, gcs, <int>W, &lmv[y, 0], &mnv[y], &mxv[y])
    g.P = pbase
    g.L = &lmv[0, 0]
    g.AB = &cmv[0, 0, 0]
    g.out = &out[0, 0]
    g.h = <int>H
    g.w = <int>W
    g.r = <int>min(radius, max(H, W))  # a window past every border is the whole image
    g.hard = hard
    # centring on the luma's midrange changes nothing mathematically (the filter is
    # shift-invariant in I) but makes a constant guide give var = cov = 0 exactly
    g.c = (<double>float(mins.min()) + <double>float(maxs.max())) * 0.5
    g.eps = eps
    g.low = low
    g.high = high
    band = _gf_band_height(g.h, g.r)
    nbands = (g.h + band - 1) // band
    for stage in range(2):
        with nogil:
            for b in prange(nbands, num_threads=nthreads, schedule="dynamic", chunksize=1):
                tid = openmp.omp_get_thread_num()
                vt_gf_band(&g, stage, <int>(b * band), <int>min((b + 1) * band, H), &wmv[tid, 0])
    return 0


cdef inline vt_u8row _row(const unsigned char[:, :, :] im, Py_ssize_t y) noexcept nogil:
    cdef vt_u8row v
    v.p = &im[y, 0, 0]
    v.s1 = im.strides[1]
    v.cs = im.strides[2]
    return v


def shadow_histogram(const unsigned char[:, :, :] image, const unsigned char[:, :] alpha,
                     int num_threads):
    """int64[256] histogram of the integer luma of the pixels whose alpha is 0."""
    cdef Py_ssize_t H = image.shape[0], W = image.shape[1], y
    cdef int nthreads = _threads(num_threads), tid
    cdef object per = np.zeros((nthreads, 256), dtype=np.int64)
    cdef int64_t[:, ::1] pv = per
    if image.shape[2] < 3 or alpha.shape[0] != H or alpha.shape[1] != W or H < 1 or W < 1:
        raise ValueError("shadow_histogram: shapes do not match")
    with nogil:
        for y in prange(H, num_threads=nthreads, schedule="static"):
            tid = openmp.omp_get_thread_num()
            vt_hist_row(_row(image, y), &alpha[y, 0], alpha.strides[1], <int>W, &pv[tid, 0])
    return per.sum(axis=0)


def shadow_alpha(const unsigned char[:, :, :] image, const unsigned char[:, :] alpha,
                 unsigned char[:, ::1] out, double background, double strength,
                 double min_darkening, int num_threads):
    """out = the shadow alpha of docs/kernels.md for a background grey level > 0 (the
    formula depends on the luma alone: a 256-entry table holds its exact values)."""
    cdef Py_ssize_t H = image.shape[0], W = image.shape[1], y
    cdef int nthreads = _threads(num_threads), k
    cdef unsigned char table[256]
    if (image.shape[2] < 3 or alpha.shape[0] != H or alpha.shape[1] != W or out.shape[0] != H
            or out.shape[1] != W or H < 1 or W < 1):
        raise ValueError("shadow_alpha: shapes do not match")
    if not background > 0.0:
        raise ValueError("shadow_alpha: background must be > 0")
    for k in range(256):
        table[k] = vt_shadow_u8(k, background, strength, min_darkening)
    with nogil:
        for y in prange(H, num_threads=nthreads, schedule="static"):
            vt_shadow_row(_row(image, y), &alpha[y, 0], alpha.strides[1], <int>W, table,
                          &out[y, 0])
    return out


def merge_shadow_rgba(const unsigned char[:, :, :] rgba, const unsigned char[:, :] shadow,
                      unsigned char[:, :, ::1] out, int num_threads):
    """Straight RGBA + black shadow alpha -> straight RGBA, exact integers:
    N = 255 A + (255 - A) S, A' = round(N / 255), C' = round(255 A C / N) (0 when N == 0)."""
    cdef Py_ssize_t H = rgba.shape[0], W = rgba.shape[1], y
    cdef int nthreads = _threads(num_threads)
    if (rgba.shape[2] != 4 or shadow.shape[0] != H or shadow.shape[1] != W
            or out.shape[0] != H or out.shape[1] != W or out.shape[2] != 4 or H < 1 or W < 1):
        raise ValueError("merge_shadow_rgba: shapes do not match")
    with nogil:
        for y in prange(H, num_threads=nthreads, schedule="static"):
            vt_merge_row(_row(rgba, y), &shadow[y, 0], shadow.strides[1], <int>W, &out[y, 0, 0])
    return out


def premultiply_rgba(const unsigned char[:, :, :] rgba, unsigned char[:, :, ::1] out,
                     int num_threads):
    """out colour = round(C * A / 255) (no ties exist), alpha kept."""
    cdef Py_ssize_t H = rgba.shape[0], W = rgba.shape[1], y
    cdef int nthreads = _threads(num_threads)
    if (rgba.shape[2] != 4 or out.shape[0] != H or out.shape[1] != W or out.shape[2] != 4
            or H < 1 or W < 1):
        raise ValueError("premultiply_rgba: shapes do not match")
    with nogil:
        for y in prange(H, num_threads=nthreads, schedule="static"):
            vt_premul_row(_row(rgba, y), <int>W, &out[y, 0, 0])
    return out
