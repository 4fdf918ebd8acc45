// vetrina preprocess: uint8 HWC images (1/3/4 channels, any row pitch) -> float32 or float16
// NCHW batch (N, 3, H, W). One launch covers up to VT_MAX_IMAGES images (grid z = image),
// described by value in the kernel parameters. Each thread takes one output column and
// `rows` consecutive output rows (vt_rows_per_thread): the column's x taps are computed once,
// and a warp's 32 threads share each row's y taps.
//
// Per output pixel (docs/kernels.md): inside the image's content box, resample its source box
// (mode: bilinear, area, integer box, OpenCV 8-bit bilinear, see resample.cuh; PIL's Lanczos,
// below), take the source channel of each output channel (gray replicated, alpha dropped,
// RGB<->BGR swap), then y = value * scale[c] + offset[c] in float32; outside the content box
// (letterbox bars) the value is pad[c], already in the output domain. float16 output rounds y
// to nearest even.
//
// Fast paths (one kernel per interpolation family, templated on the channel count and the x
// window size; the choice per image is uniform over a block): the bytes of one x window of
// one source row come in as a few aligned 4-byte words (VtBytes) instead of one load per byte
// and channel, are converted to float without int -> float conversions, and are summed in the
// CPU's order. The tap coordinates' divisions are computed once per thread (VtAxisK). Area
// factors above 7 (or box blocks wider than 8 or of more than VT_BOX_U32_PIXELS pixels) take
// the generic per-sample kernel. Lanczos has its own kernel (vt_pre_lanczos: its taps computed
// on the device, the x weights once per thread).
#include "common.cuh"
#include "resample.cuh"

struct VtPreImage {
    const vt_u8* src;   // &img[0, 0, 0] in device memory
    vt_i64 row_pitch;   // bytes between rows
    int px_pitch;       // bytes between pixels (the channel count for packed rows)
    int ch[3];          // byte offset in a pixel of the source channel of output channel c
    VtAxis y, x;        // source box -> content box, per axis (see common.cuh)
    int mode;           // VT_M_* (resample.cuh)
    int kx, ky;         // VT_M_BOX: block size (= integer scale factors)
    float q;            // VT_M_BOX: 1 / (kx * ky) in float32
};
VT_AT(VtPreImage, row_pitch, 8);
VT_AT(VtPreImage, px_pitch, 16);
VT_AT(VtPreImage, ch, 20);
VT_AT(VtPreImage, y, 32);
VT_AT(VtPreImage, x, 48);
VT_AT(VtPreImage, mode, 64);
VT_AT(VtPreImage, q, 76);
VT_SIZE(VtPreImage, 80);

struct VtPreBatch {
    VtPreImage img[VT_MAX_IMAGES];
    float scale[3], offset[3], pad[3];  // per output channel
};
VT_AT(VtPreBatch, scale, 2560);
VT_AT(VtPreBatch, offset, 2572);
VT_AT(VtPreBatch, pad, 2584);
VT_SIZE(VtPreBatch, 2600);

// Largest BOX block width of the fast path (wider blocks take the generic path).
#define VT_BOX_MAXP 8
// Most pixels of a BOX block whose uint8 sum fits 32 bits (255 * 16843009 < 2^32): the fast
// path's limit (gpu.py _BOX_U32_PIXELS); the generic path sums in 64 bits.
#define VT_BOX_U32_PIXELS 16843009

// One channel of a uint8 image, converted exactly to float (generic path).
struct VtU8Plane {
    const vt_u8* base;  // &img[0, 0, channel]
    vt_i64 row_pitch;
    int px_pitch;
    __device__ __forceinline__ int raw(int y, int x) const {
        return vt_ldg(base + (vt_i64)y * row_pitch + (vt_i64)x * px_pitch);
    }
    __device__ __forceinline__ float at(int y, int x) const { return (float)raw(y, x); }
};

// OpenCV INTER_LINEAR 8U taps (CPU: _u8_taps): scale = 1 / (D / S), f as bilinear, weights
// rint((1 - f) * 2048) and rint(f * 2048); along x the taps clamp f at the edges, along y only
// the row indices are clamped.
VT_DEV void vt_u8_taps(const VtAxisK& k, int v, bool clamp_weights, int* s0, int* s1, int* w0,
                       int* w1) {
    const int S = k.S;
    float f = (float)(((double)v + 0.5) * k.scale - 0.5);
    const float fl = floorf(f);
    int s = (int)fl;
    f = f - fl;
    if (clamp_weights) {
        if (s < 0) {
            s = 0;
            f = 0.0f;
        }
        if (s >= S - 1) {
            s = S - 1;
            f = 0.0f;
        }
    }
    *s0 = s < 0 ? 0 : (s > S - 1 ? S - 1 : s);
    *s1 = s + 1 < 0 ? 0 : (s + 1 > S - 1 ? S - 1 : s + 1);
    *w0 = vt_rint((1.0f - f) * 2048.0f);
    *w1 = vt_rint(f * 2048.0f);
}

// ---------------------------------------------------------------------------------------------
// Byte windows
// ---------------------------------------------------------------------------------------------

// Up to NB consecutive bytes of a row, realigned so that window byte j is byte j & 3 of
// r[j >> 2]. load(p, nbytes, words): the first nbytes (<= NB) bytes from p; the others are
// unspecified (finite: the kernels only ever multiply them by a weight of 0, or ignore them).
// words: the image start and row pitch are multiples of 4, so the aligned words holding the
// needed bytes lie inside the image's rows; they are loaded (predicated on need) and funnel-
// shifted into place. Otherwise one load per byte.
template <int NB>
struct VtBytes {
    enum { NR = (NB + 3) / 4 };
    vt_u32 r[NR];

    __device__ __forceinline__ void load(const vt_u8* p, int nbytes, bool words) {
        if (words) {
            const int m = (int)((vt_u64)p & 3u);
            const vt_u8* a = p - m;
            const int nw = nbytes > 0 ? (m + nbytes + 3) >> 2 : 0;  // words with a needed byte
            vt_u32 raw[NR + 1];
            VT_UNROLL
            for (int k = 0; k <= NR; ++k) raw[k] = k < nw ? vt_ldg_word(a + 4 * k) : 0u;
            VT_UNROLL
            for (int k = 0; k < NR; ++k) r[k] = vt_funnel(raw[k], raw[k + 1], m);
        } else {
            VT_UNROLL
            for (int k = 0; k < NR; ++k) r[k] = 0u;
            VT_UNROLL
            for (int j = 0; j < NB; ++j) {
                if (j < nbytes) r[j >> 2] |= (vt_u32)vt_ldg(p + j) << (8 * (j & 3));
            }
        }
    }
    __device__ __forceinline__ float f(int j) const { return vt_byte_f(r[j >> 2], j & 3); }
    __device__ __forceinline__ vt_u32 u(int j) const { return vt_byte(r[j >> 2], j & 3); }
};

// ---------------------------------------------------------------------------------------------
// Stores
// ---------------------------------------------------------------------------------------------

template <typename T>
VT_DEV void vt_pre_pad(const VtPreBatch& b, T* o, vt_i64 plane) {
    vt_store(o, b.pad[0]);
    vt_store(o + plane, b.pad[1]);
    vt_store(o + 2 * plane, b.pad[2]);
}

// v: the resampled source channels 0..2 (gray: v[0]) -> the three output planes.
template <int CH, typename T>
VT_DEV void vt_pre_store(const VtPreBatch& b, T* o, vt_i64 plane, const float* v, bool swap) {
    float a0 = v[0], a1 = v[0], a2 = v[0];
    if (CH != 1) {
        a0 = swap ? v[2] : v[0];
        a1 = v[1];
        a2 = swap ? v[0] : v[2];
    }
    vt_store(o, a0 * b.scale[0] + b.offset[0]);
    vt_store(o + plane, a1 * b.scale[1] + b.offset[1]);
    vt_store(o + 2 * plane, a2 * b.scale[2] + b.offset[2]);
}

// ---------------------------------------------------------------------------------------------
// Fast paths: one column (x: window taps, inside the content box), rows ya .. yb - 1
// ---------------------------------------------------------------------------------------------

// Everything a fast path needs about its image and column.
struct VtPreCol {
    const vt_u8* src;
    vt_i64 pitch;
    VtAxisK ky, kx;
    int vx;      // output column relative to the content box (inside it)
    bool words;  // VtBytes may load aligned words
    bool swap;   // output channels 0 and 2 take source channels 2 and 0
};

// h[c] = sum over the window of row `row` of byte(p, c) * w[p], in the CPU's order.
template <int CH, int MAXP>
VT_DEV void vt_pre_hrow(const vt_u8* row, const VtWin<MAXP>& xw, int nbytes, bool words,
                        float* h) {
    const int NC = CH == 1 ? 1 : 3;
    VtBytes<CH * MAXP> w;
    w.load(row, nbytes, words);
    VT_UNROLL
    for (int c = 0; c < NC; ++c) h[c] = w.f(c) * xw.w[0];
    VT_UNROLL
    for (int p = 1; p < MAXP; ++p) {
        // two taps: the second always (byte * 0 adds +0 to h >= 0, as the CPU's p0*g + p1*f)
        if (MAXP > 2 && p >= xw.n) break;
        VT_UNROLL
        for (int c = 0; c < NC; ++c) h[c] = h[c] + w.f(p * CH + c) * xw.w[p];
    }
}

// Float taps (MODE: VT_M_LINEAR or VT_M_AREA): x window of at most MAXP columns, y as
// vt_sample.
template <int MODE, int CH, int MAXP, typename T>
VT_DEV void vt_pre_float(const VtPreBatch& b, const VtPreCol& c, T* o, vt_i64 plane, int W,
                         int ya, int yb) {
    VtTaps tx;
    vt_taps(MODE, c.kx, c.vx, &tx);
    VtWin<MAXP> xw;
    vt_win(tx, &xw);
    const vt_u8* src = c.src + (c.kx.s0 + xw.first) * CH;
    const int nb = xw.n * CH;
    for (int y = ya; y < yb; ++y, o += W) {
        const int vy = y - c.ky.o0;
        if (vy < 0 || vy >= c.ky.D) {
            vt_pre_pad(b, o, plane);
            continue;
        }
        VtTaps ty;
        vt_taps(MODE, c.ky, vy, &ty);
        float v[3] = {0.0f, 0.0f, 0.0f}, h[3] = {0.0f, 0.0f, 0.0f};
        if (ty.first < 0) {
            // both rows' loads first (the second only when its weight is not 0)
            const int r1 = ty.f != 0.0f ? ty.i1 : ty.i0;
            vt_pre_hrow<CH, MAXP>(src + (vt_i64)(c.ky.s0 + ty.i0) * c.pitch, xw, nb, c.words, v);
            vt_pre_hrow<CH, MAXP>(src + (vt_i64)(c.ky.s0 + r1) * c.pitch, xw,
                                  ty.f != 0.0f ? nb : 0, c.words, h);
            if (ty.f != 0.0f) {
                VT_UNROLL
                for (int k = 0; k < 3; ++k) v[k] = v[k] * ty.g + h[k] * ty.f;
            }
        } else {
            vt_pre_hrow<CH, MAXP>(src + (vt_i64)(c.ky.s0 + ty.first) * c.pitch, xw, nb, c.words,
                                  v);
            const float w0 = vt_area_weight(ty, ty.first);
            VT_UNROLL
            for (int k = 0; k < 3; ++k) v[k] = v[k] * w0;
            for (int r = ty.first + 1; r < ty.last; ++r) {
                vt_pre_hrow<CH, MAXP>(src + (vt_i64)(c.ky.s0 + r) * c.pitch, xw, nb, c.words, h);
                const float wr = vt_area_weight(ty, r);
                VT_UNROLL
                for (int k = 0; k < 3; ++k) v[k] = v[k] + h[k] * wr;
            }
        }
        vt_pre_store<CH>(b, o, plane, v, c.swap);
    }
}

// VT_M_BOX and VT_M_U8_2X: exact integer sums of a kx x ky block (any order), kx <= 8.
// 32-bit sums: the launcher sends a block here only when kx * ky <= VT_BOX_U32_PIXELS
// (gpu.py _pre_fast_ok), so 255 * kx * ky < 2^32; larger blocks take vt_pre_generic.
template <int CH, typename T>
VT_DEV void vt_pre_box(const VtPreBatch& b, const VtPreImage& im, const VtPreCol& c, T* o,
                       vt_i64 plane, int W, int ya, int yb) {
    const int NC = CH == 1 ? 1 : 3;
    const bool two = im.mode == VT_M_U8_2X;
    const int kx = two ? 2 : im.kx, ky = two ? 2 : im.ky;
    const vt_u8* src = c.src + (c.kx.s0 + kx * c.vx) * CH;
    for (int y = ya; y < yb; ++y, o += W) {
        const int vy = y - c.ky.o0;
        if (vy < 0 || vy >= c.ky.D) {
            vt_pre_pad(b, o, plane);
            continue;
        }
        const vt_u8* row = src + (vt_i64)(c.ky.s0 + ky * vy) * c.pitch;
        vt_u32 t[3] = {0u, 0u, 0u};
        for (int r = 0; r < ky; ++r, row += c.pitch) {
            VtBytes<CH * VT_BOX_MAXP> w;
            w.load(row, kx * CH, c.words);
            VT_UNROLL
            for (int p = 0; p < VT_BOX_MAXP; ++p) {
                if (p >= kx) break;
                VT_UNROLL
                for (int k = 0; k < NC; ++k) t[k] += w.u(p * CH + k);
            }
        }
        float v[3];
        VT_UNROLL
        for (int k = 0; k < 3; ++k) v[k] = two ? (float)((t[k] + 2u) >> 2) : (float)t[k] * im.q;
        vt_pre_store<CH>(b, o, plane, v, c.swap);
    }
}

// VT_M_U8: OpenCV's 8-bit bilinear, 11-bit weights, both taps of each axis.
template <int CH, typename T>
VT_DEV void vt_pre_u8(const VtPreBatch& b, const VtPreCol& c, T* o, vt_i64 plane, int W,
                      int ya, int yb) {
    const int NC = CH == 1 ? 1 : 3;
    int xs0, xs1, xb0, xb1;
    vt_u8_taps(c.kx, c.vx, true, &xs0, &xs1, &xb0, &xb1);  // xs1 is xs0 or xs0 + 1
    const vt_u8* src = c.src + (c.kx.s0 + xs0) * CH;
    const int nb = (xs1 - xs0 + 1) * CH;
    for (int y = ya; y < yb; ++y, o += W) {
        const int vy = y - c.ky.o0;
        if (vy < 0 || vy >= c.ky.D) {
            vt_pre_pad(b, o, plane);
            continue;
        }
        int ys0, ys1, yb0, yb1;
        vt_u8_taps(c.ky, vy, false, &ys0, &ys1, &yb0, &yb1);
        VtBytes<2 * CH> w0, w1;
        w0.load(src + (vt_i64)(c.ky.s0 + ys0) * c.pitch, nb, c.words);
        w1.load(src + (vt_i64)(c.ky.s0 + ys1) * c.pitch, ys1 != ys0 ? nb : 0, c.words);
        float v[3] = {0.0f, 0.0f, 0.0f};
        VT_UNROLL
        for (int k = 0; k < NC; ++k) {
            // a second tap beyond the window (xs1 == xs0) has weight xb1 == 0
            const int h0 = (int)w0.u(k) * xb0 + (int)w0.u(CH + k) * xb1;
            const int h1 = ys1 != ys0 ? (int)w1.u(k) * xb0 + (int)w1.u(CH + k) * xb1 : h0;
            const int r = (((yb0 * (h0 >> 4)) >> 16) + ((yb1 * (h1 >> 4)) >> 16) + 2) >> 2;
            v[k] = (float)(r > 255 ? 255 : r);
        }
        vt_pre_store<CH>(b, o, plane, v, c.swap);
    }
}

// ---------------------------------------------------------------------------------------------
// Lanczos (PIL's ImagingResample with its Lanczos filter, a = 3), VT_M_LANCZOS
// ---------------------------------------------------------------------------------------------

// Preprocess only, so the mode is defined here rather than with the others in resample.cuh.
#define VT_M_LANCZOS 5

// The taps are computed on the device with the CPU's double operations (kernels/_cpu.pyx:
// vt_sinpi, vt_lz_*, vt_lanczos_taps), so the float32 weights are the CPU's bit for bit:
// sin(pi x) is a fixed Horner polynomial (no libm sin, whose device and host versions differ),
// and --fmad=false keeps every double multiply and add separately rounded.
VT_DEV double vt_sinpi(double x) {
    const double n = floor(x + 0.5), r = x - n;
    if (r == 0.0) return 0.0;  // exactly 0 at the integers
    const double z = r * r;
    double s = -1.0518471716932065e-11;
    s = s * z + 5.392664662608129e-10;
    s = s * z + -2.2948428997269873e-08;
    s = s * z + 7.952054001475513e-07;
    s = s * z + -2.1915353447830217e-05;
    s = s * z + 0.00046630280576761255;
    s = s * z + -0.0073704309457143504;
    s = s * z + 0.08214588661112823;
    s = s * z + -0.5992645293207921;
    s = s * z + 2.5501640398773455;
    s = s * z + -5.16771278004997;
    s = s * z + 3.141592653589793;
    s = s * r;
    return ((long long)n & 1) ? -s : s;
}

VT_DEV double vt_sinc(double x) {
    return x == 0.0 ? 1.0 : vt_sinpi(x) / (x * 3.141592653589793);
}

VT_DEV double vt_lanczos3(double t) {
    return (t > -3.0 && t < 3.0) ? vt_sinc(t) * vt_sinc(t / 3.0) : 0.0;
}

// One axis, S -> D: scale = S / D, filterscale = max(scale, 1), support = 3 * filterscale,
// ss = 1 / filterscale.
struct VtLz {
    double scale, support, ss;
    int S;
};

VT_DEV VtLz vt_lz(int S, int D) {
    VtLz a;
    a.scale = (double)S / (double)D;
    const double fs = a.scale < 1.0 ? 1.0 : a.scale;
    a.support = 3.0 * fs;
    a.ss = 1.0 / fs;
    a.S = S;
    return a;
}

// Window [*lo, *hi) of output index d (window-relative source indices); returns the centre.
VT_DEV double vt_lz_window(const VtLz& a, int d, int* lo, int* hi) {
    const double center = ((double)d + 0.5) * a.scale;
    const int x0 = (int)(center - a.support + 0.5), x1 = (int)(center + a.support + 0.5);
    *lo = x0 < 0 ? 0 : x0;
    *hi = x1 > a.S ? a.S : x1;
    return center;
}

VT_DEV double vt_lz_raw(const VtLz& a, double center, int k) {
    return vt_lanczos3(((double)k - center + 0.5) * a.ss);
}

// The sum of a window's raw weights, in tap order.
VT_DEV double vt_lz_sum(const VtLz& a, double center, int lo, int hi) {
    double ww = 0.0;
    for (int k = lo; k < hi; ++k) ww = ww + vt_lz_raw(a, center, k);
    return ww;
}

// The float32 weight of tap k: raw / sum in double (raw when the sum is 0), rounded once.
VT_DEV float vt_lz_weight(const VtLz& a, double center, double ww, int k) {
    const double v = vt_lz_raw(a, center, k);
    return (float)(ww != 0.0 ? v / ww : v);
}

// x weights a thread keeps (columns with wider windows recompute theirs per row: downscales
// by more than about 21x). CACHE false (the generic kernel): none, no stack array.
#define VT_LZ_MAXW 128

// One column, rows ya .. yb - 1, in the CPU's order: per tap row h = p0*w0; h = h + pk*wk,
// clamped to [0, 255]; then v = h0*g0; v = v + hj*gj (the CPU sums its zero-weight padding
// taps too, which adds +0 to a sum that is never -0: the same value).
template <bool CACHE, typename T>
VT_DEV void vt_pre_lanczos(const VtPreBatch& b, const VtPreImage& im, const VtPreCol& c, T* o,
                           vt_i64 plane, int W, int ya, int yb) {
    const VtLz ax = vt_lz(im.x.slen, im.x.olen), ay = vt_lz(im.y.slen, im.y.olen);
    int x0, x1;
    const double xc = vt_lz_window(ax, c.vx, &x0, &x1);
    const double xs = vt_lz_sum(ax, xc, x0, x1);
    const int nx = x1 - x0;
    const bool cached = CACHE && nx <= VT_LZ_MAXW;
    float wx[CACHE ? VT_LZ_MAXW : 1];
    if (cached) {
        for (int k = 0; k < nx; ++k) wx[k] = vt_lz_weight(ax, xc, xs, x0 + k);
    }
    const vt_u8* src = im.src + (vt_i64)(im.x.s0 + x0) * im.px_pitch;
    for (int y = ya; y < yb; ++y, o += W) {
        const int vy = y - c.ky.o0;
        if (vy < 0 || vy >= c.ky.D) {
            vt_pre_pad(b, o, plane);
            continue;
        }
        int y0, y1;
        const double yc = vt_lz_window(ay, vy, &y0, &y1);
        const double ys = vt_lz_sum(ay, yc, y0, y1);
        float v[3] = {0.0f, 0.0f, 0.0f};
        for (int r = y0; r < y1; ++r) {
            const vt_u8* row = src + (vt_i64)(im.y.s0 + r) * im.row_pitch;
            float h[3] = {0.0f, 0.0f, 0.0f};
            for (int k = 0; k < nx; ++k) {
                const float w = cached ? wx[k] : vt_lz_weight(ax, xc, xs, x0 + k);
                const vt_u8* px = row + (vt_i64)k * im.px_pitch;
                VT_UNROLL
                for (int q = 0; q < 3; ++q) {
                    const float p = (float)vt_ldg(px + im.ch[q]);
                    h[q] = k == 0 ? p * w : h[q] + p * w;
                }
            }
            const float g = vt_lz_weight(ay, yc, ys, r);
            VT_UNROLL
            for (int q = 0; q < 3; ++q) {
                float hq = h[q] < 0.0f ? 0.0f : h[q];
                hq = hq > 255.0f ? 255.0f : hq;
                v[q] = r == y0 ? hq * g : v[q] + hq * g;
            }
        }
        vt_store(o, v[0] * b.scale[0] + b.offset[0]);
        vt_store(o + plane, v[1] * b.scale[1] + b.offset[1]);
        vt_store(o + 2 * plane, v[2] * b.scale[2] + b.offset[2]);
    }
}

// Kernel families: the launcher picks one per launch from the interpolation method (area:
// VT_FAM_BOX when every image of the launch has integer factors), and the generic kernel
// (VT_FAM_ANY) for images that no fast path takes (_pre_fast_ok in gpu.py: area factors above
// VT_AREA_MAX8, box blocks wider than VT_BOX_MAXP). Separate kernels keep each one's register
// count to its own paths. The fast paths take the channel maps that the launcher packs.
#define VT_FAM_LINEAR 0  // VT_M_LINEAR
#define VT_FAM_AREA 1    // VT_M_AREA, VT_M_BOX
#define VT_FAM_BOX 2     // VT_M_BOX only (area with integer factors: the light integer path)
#define VT_FAM_U8 3      // VT_M_U8, VT_M_U8_2X
#define VT_FAM_ANY 4     // every mode, one sample at a time
#define VT_FAM_LANCZOS 5 // VT_M_LANCZOS (vt_pre_lanczos; also taken by VT_FAM_ANY)

template <int FAM, int CH, typename T>
VT_DEV void vt_pre_fast(const VtPreBatch& b, const VtPreImage& im, const VtPreCol& c, T* o,
                        vt_i64 plane, int W, int ya, int yb) {
    if (FAM == VT_FAM_LINEAR) {
        vt_pre_float<VT_M_LINEAR, CH, 2>(b, c, o, plane, W, ya, yb);
    } else if (FAM == VT_FAM_BOX) {
        vt_pre_box<CH>(b, im, c, o, plane, W, ya, yb);
    } else if (FAM == VT_FAM_AREA) {
        if (im.mode == VT_M_BOX) {
            vt_pre_box<CH>(b, im, c, o, plane, W, ya, yb);
        } else if (c.kx.S < c.kx.D) {  // upscale along x: two taps
            vt_pre_float<VT_M_AREA, CH, 2>(b, c, o, plane, W, ya, yb);
        } else {
            vt_pre_float<VT_M_AREA, CH, 8>(b, c, o, plane, W, ya, yb);
        }
    } else if (im.mode == VT_M_U8_2X) {
        vt_pre_box<CH>(b, im, c, o, plane, W, ya, yb);
    } else {
        vt_pre_u8<CH>(b, c, o, plane, W, ya, yb);
    }
}

// ---------------------------------------------------------------------------------------------
// Generic path: any channel map and mode, one sample at a time
// ---------------------------------------------------------------------------------------------

template <typename T>
VT_DEV void vt_pre_generic(const VtPreBatch& b, const VtPreImage& im, const VtPreCol& c, T* o,
                           vt_i64 plane, int W, int ya, int yb) {
    const int vx = c.vx;
    for (int y = ya; y < yb; ++y, o += W) {
        const int vy = y - c.ky.o0;
        if (vy < 0 || vy >= c.ky.D) {
            vt_pre_pad(b, o, plane);
            continue;
        }
        float v[3];
        if (im.mode == VT_M_LINEAR || im.mode == VT_M_AREA) {
            VtTaps ty, tx;
            vt_taps(im.mode, c.ky, vy, &ty);
            vt_taps(im.mode, c.kx, vx, &tx);
            for (int k = 0; k < 3; ++k) {
                const VtU8Plane p = {im.src + im.ch[k], im.row_pitch, im.px_pitch};
                v[k] = vt_sample<false>(p, c.ky, ty, c.kx, tx);
            }
        } else if (im.mode == VT_M_BOX || im.mode == VT_M_U8_2X) {
            // exact integer block sums: the summation order is free
            const int kx = im.mode == VT_M_BOX ? im.kx : 2, ky = im.mode == VT_M_BOX ? im.ky : 2;
            const int y0 = c.ky.s0 + ky * vy, x0 = c.kx.s0 + kx * vx;
            for (int k = 0; k < 3; ++k) {
                const VtU8Plane p = {im.src + im.ch[k], im.row_pitch, im.px_pitch};
                // 64-bit total: a block past VT_BOX_U32_PIXELS pixels (8192 x 8192 -> 1)
                // wraps a 32-bit sum; a row's sum fits 32 bits (kx <= the image width <=
                // MAX_IMAGE_SIZE = 2^20, gpu.py _check_device_image: <= 255 * 2^20)
                vt_u64 t = 0;
                for (int r = 0; r < ky; ++r) {
                    vt_u32 row = 0u;
                    for (int j = 0; j < kx; ++j) row += (vt_u32)p.raw(y0 + r, x0 + j);
                    t += row;
                }
                v[k] = im.mode == VT_M_BOX ? (float)t * im.q : (float)((t + 2u) >> 2);
            }
        } else {  // VT_M_U8
            int ys0, ys1, yb0, yb1, xs0, xs1, xb0, xb1;
            vt_u8_taps(c.ky, vy, false, &ys0, &ys1, &yb0, &yb1);
            vt_u8_taps(c.kx, vx, true, &xs0, &xs1, &xb0, &xb1);
            ys0 += c.ky.s0;
            ys1 += c.ky.s0;
            xs0 += c.kx.s0;
            xs1 += c.kx.s0;
            for (int k = 0; k < 3; ++k) {
                const VtU8Plane p = {im.src + im.ch[k], im.row_pitch, im.px_pitch};
                const int h0 = p.raw(ys0, xs0) * xb0 + p.raw(ys0, xs1) * xb1;
                const int h1 = p.raw(ys1, xs0) * xb0 + p.raw(ys1, xs1) * xb1;
                int r = (((yb0 * (h0 >> 4)) >> 16) + ((yb1 * (h1 >> 4)) >> 16) + 2) >> 2;
                v[k] = (float)(r > 255 ? 255 : r);
            }
        }
        vt_store(o, v[0] * b.scale[0] + b.offset[0]);
        vt_store(o + plane, v[1] * b.scale[1] + b.offset[1]);
        vt_store(o + 2 * plane, v[2] * b.scale[2] + b.offset[2]);
    }
}

// CH: 0 takes each image's channel count from its pixel pitch; 1, 3 or 4 compiles that
// count's fast path alone (the launcher sends a launch there only when every image has it).
template <int FAM, typename T, int CH = 0>
VT_DEV void vt_preprocess(const VtPreBatch& b, T* out, int H, int W) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int rows = vt_rows_per_thread(H);
    const int ya = (int)(blockIdx.y * blockDim.y + threadIdx.y) * rows;
    if (x >= W || ya >= H) return;
    const int yb = vt_imin(ya + rows, H);
    const int i = blockIdx.z;
    const VtPreImage& im = b.img[i];
    const vt_i64 plane = (vt_i64)H * W;
    T* o = out + (vt_i64)i * 3 * plane + (vt_i64)ya * W + x;
    VtPreCol c;
    c.vx = x - im.x.o0;
    if (c.vx < 0 || c.vx >= im.x.olen) {  // a letterbox bar: the whole column is padding
        for (int y = ya; y < yb; ++y, o += W) vt_pre_pad(b, o, plane);
        return;
    }
    const int mode = FAM == VT_FAM_LINEAR ? VT_M_LINEAR
                     : FAM == VT_FAM_U8       ? VT_M_U8
                     : FAM == VT_FAM_BOX      ? VT_M_BOX
                                              : im.mode;
    c.src = im.src;
    c.pitch = im.row_pitch;
    c.ky = vt_axis_k(im.y, mode);
    c.kx = vt_axis_k(im.x, mode);
    c.words = (((vt_u64)im.src | (vt_u64)im.row_pitch) & 3u) == 0;
    c.swap = im.ch[0] == 2;
    if (FAM == VT_FAM_LANCZOS) {
        vt_pre_lanczos<true>(b, im, c, o, plane, W, ya, yb);
    } else if (FAM == VT_FAM_ANY && im.mode == VT_M_LANCZOS) {
        vt_pre_lanczos<false>(b, im, c, o, plane, W, ya, yb);
    } else if (FAM == VT_FAM_ANY) {
        vt_pre_generic(b, im, c, o, plane, W, ya, yb);
    } else if (CH != 0) {  // (CH 0 never takes this branch; 3 only names a valid path)
        vt_pre_fast<FAM, CH != 0 ? CH : 3>(b, im, c, o, plane, W, ya, yb);
    } else if (im.px_pitch == 1) {  // gray (0, 0, 0); else RGB(A) (0, 1, 2) or (2, 1, 0)
        vt_pre_fast<FAM, 1>(b, im, c, o, plane, W, ya, yb);
    } else if (im.px_pitch == 3) {
        vt_pre_fast<FAM, 3>(b, im, c, o, plane, W, ya, yb);
    } else {
        vt_pre_fast<FAM, 4>(b, im, c, o, plane, W, ya, yb);
    }
}

// One kernel per family and output dtype (kernels/gpu.py picks by name). Register caps (no
// spills, sm_80 and sm_90): bilinear and 8-bit bilinear 40 (6 blocks of 256 threads per SM),
// box 48 (5 blocks), the area family's 8-column windows 80 (3 blocks), lanczos 80 (3 blocks;
// its cached x weights live in the thread's local memory). The area family also has one
// kernel per channel count (vt_preprocess_area_c{1,3,4}_*), for launches whose images all
// have it: NVRTC 13.0's ptxas spills the three paths together at 80 registers (464 bytes
// stored, 1232 loaded, on sm_90), each alone not at all (13.5 spills neither).
extern "C" __launch_bounds__(256, 6) __global__
    void vt_preprocess_f32(const VtPreBatch b, float* out, int H, int W);
extern "C" __launch_bounds__(256, 6) __global__
    void vt_preprocess_f16(const VtPreBatch b, vt_u16* out, int H, int W);
extern "C" __launch_bounds__(256, 5) __global__
    void vt_preprocess_box_f32(const VtPreBatch b, float* out, int H, int W);
extern "C" __launch_bounds__(256, 5) __global__
    void vt_preprocess_box_f16(const VtPreBatch b, vt_u16* out, int H, int W);
extern "C" __launch_bounds__(256, 6) __global__
    void vt_preprocess_u8_f32(const VtPreBatch b, float* out, int H, int W);
extern "C" __launch_bounds__(256, 6) __global__
    void vt_preprocess_u8_f16(const VtPreBatch b, vt_u16* out, int H, int W);
extern "C" __launch_bounds__(256, 3) __global__
    void vt_preprocess_area_f32(const VtPreBatch b, float* out, int H, int W);
extern "C" __launch_bounds__(256, 3) __global__
    void vt_preprocess_area_f16(const VtPreBatch b, vt_u16* out, int H, int W);
extern "C" __launch_bounds__(256, 3) __global__
    void vt_preprocess_area_c1_f32(const VtPreBatch b, float* out, int H, int W);
extern "C" __launch_bounds__(256, 3) __global__
    void vt_preprocess_area_c1_f16(const VtPreBatch b, vt_u16* out, int H, int W);
extern "C" __launch_bounds__(256, 3) __global__
    void vt_preprocess_area_c3_f32(const VtPreBatch b, float* out, int H, int W);
extern "C" __launch_bounds__(256, 3) __global__
    void vt_preprocess_area_c3_f16(const VtPreBatch b, vt_u16* out, int H, int W);
extern "C" __launch_bounds__(256, 3) __global__
    void vt_preprocess_area_c4_f32(const VtPreBatch b, float* out, int H, int W);
extern "C" __launch_bounds__(256, 3) __global__
    void vt_preprocess_area_c4_f16(const VtPreBatch b, vt_u16* out, int H, int W);
extern "C" __launch_bounds__(256, 3) __global__
    void vt_preprocess_lanczos_f32(const VtPreBatch b, float* out, int H, int W);
extern "C" __launch_bounds__(256, 3) __global__
    void vt_preprocess_lanczos_f16(const VtPreBatch b, vt_u16* out, int H, int W);

extern "C" __global__ void vt_preprocess_f32(const VtPreBatch b, float* out, int H, int W) {
    vt_preprocess<VT_FAM_LINEAR>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_f16(const VtPreBatch b, vt_u16* out, int H, int W) {
    vt_preprocess<VT_FAM_LINEAR>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_area_f32(const VtPreBatch b, float* out, int H, int W) {
    vt_preprocess<VT_FAM_AREA>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_area_f16(const VtPreBatch b, vt_u16* out, int H, int W) {
    vt_preprocess<VT_FAM_AREA>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_area_c1_f32(const VtPreBatch b, float* out, int H,
                                                      int W) {
    vt_preprocess<VT_FAM_AREA, float, 1>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_area_c1_f16(const VtPreBatch b, vt_u16* out, int H,
                                                      int W) {
    vt_preprocess<VT_FAM_AREA, vt_u16, 1>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_area_c3_f32(const VtPreBatch b, float* out, int H,
                                                      int W) {
    vt_preprocess<VT_FAM_AREA, float, 3>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_area_c3_f16(const VtPreBatch b, vt_u16* out, int H,
                                                      int W) {
    vt_preprocess<VT_FAM_AREA, vt_u16, 3>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_area_c4_f32(const VtPreBatch b, float* out, int H,
                                                      int W) {
    vt_preprocess<VT_FAM_AREA, float, 4>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_area_c4_f16(const VtPreBatch b, vt_u16* out, int H,
                                                      int W) {
    vt_preprocess<VT_FAM_AREA, vt_u16, 4>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_box_f32(const VtPreBatch b, float* out, int H, int W) {
    vt_preprocess<VT_FAM_BOX>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_box_f16(const VtPreBatch b, vt_u16* out, int H, int W) {
    vt_preprocess<VT_FAM_BOX>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_u8_f32(const VtPreBatch b, float* out, int H, int W) {
    vt_preprocess<VT_FAM_U8>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_u8_f16(const VtPreBatch b, vt_u16* out, int H, int W) {
    vt_preprocess<VT_FAM_U8>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_lanczos_f32(const VtPreBatch b, float* out, int H,
                                                     int W) {
    vt_preprocess<VT_FAM_LANCZOS>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_lanczos_f16(const VtPreBatch b, vt_u16* out, int H,
                                                     int W) {
    vt_preprocess<VT_FAM_LANCZOS>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_any_f32(const VtPreBatch b, float* out, int H, int W) {
    vt_preprocess<VT_FAM_ANY>(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_any_f16(const VtPreBatch b, vt_u16* out, int H, int W) {
    vt_preprocess<VT_FAM_ANY>(b, out, H, W);
}
