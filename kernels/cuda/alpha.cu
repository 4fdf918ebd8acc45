// vetrina alpha (matting) kernels: matte -> alpha (bilinear resize, grey-guide guided filter,
// ramp), shadow alpha, shadow merge, premultiplication and compositing. Host side:
// kernels/gpu_alpha.py; contract: docs/kernels.md, "Alpha kernels"; CPU: kernels/_alpha.pxi.
//
// Every launch uses blocks of 32 x 8 threads (kernels/gpu.py, _BLOCK) and no shared memory or
// barriers, so the host emulation of the tests (one thread at a time) runs them as they are;
// the one warp shuffle (vt_warp_minmax) has a per-thread twin for the emulation.
//
// Numerics: the resize is the CPU's bilinear rule operation for operation (resample.cuh), the
// ramp, shadow and integer kernels the CPU's float64 / integer formulas (bit-identical). The
// guided filter sums in float64 in another order than the CPU (row pass: a running sum per
// segment of a row; column pass: a running sum per band of a column), so it is within 1 uint8
// level of the CPU.
#include "common.cuh"
#include "resample.cuh"

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

VT_DEV int vt_imax(int a, int b) { return a > b ? a : b; }

// Thread coordinates of a 2-D launch.
VT_DEV int vt_gx() { return (int)(blockIdx.x * blockDim.x + threadIdx.x); }
VT_DEV int vt_gy() { return (int)(blockIdx.y * blockDim.y + threadIdx.y); }

VT_DEV vt_u32 vt_float_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    vt_u32 x;
    __builtin_memcpy(&x, &f, 4);
    return x;
#endif
}

VT_DEV void vt_atomic_add(vt_u32* p, vt_u32 v) {
#ifdef __CUDA_ARCH__
    atomicAdd(p, v);
#else
    *p += v;
#endif
}

// minmax[0] = min(minmax[0], lo), minmax[1] = max(minmax[1], hi) over the calling warp's
// threads, all 32 of which call it: on the GPU the warp's values are combined by shuffles and
// lane 0 updates minmax, its atomics skipped when a plain read shows they cannot change it.
VT_DEV void vt_warp_minmax(vt_u32* p, vt_u32 lo, vt_u32 hi) {
#ifdef __CUDA_ARCH__
    VT_UNROLL
    for (int d = 16; d > 0; d >>= 1) {
        const vt_u32 l = __shfl_xor_sync(0xFFFFFFFFu, lo, d);
        const vt_u32 u = __shfl_xor_sync(0xFFFFFFFFu, hi, d);
        lo = l < lo ? l : lo;
        hi = u > hi ? u : hi;
    }
    if ((threadIdx.x & 31u) != 0u) return;
    if (lo < *(volatile vt_u32*)p) atomicMin(p, lo);
    if (hi > *(volatile vt_u32*)(p + 1)) atomicMax(p + 1, hi);
#else
    if (lo < p[0]) p[0] = lo;
    if (hi > p[1]) p[1] = hi;
#endif
}

// The ramp of docs/kernels.md in float64: t = (q - low) / (high - low) clamped to [0, 1]
// (NaN -> 0), floor(t * 255 + 0.5); hard (low == high): q >= low -> 255.
VT_DEV vt_u8 vt_ramp(double q, double low, double high, int hard) {
    if (hard) return q >= low ? 255 : 0;
    double t = (q - low) / (high - low);
    if (!(t > 0.0)) {
        t = 0.0;
    } else if (t > 1.0) {
        t = 1.0;
    }
    return (vt_u8)(int)(t * 255.0 + 0.5);  // >= 0.5: truncation == floor
}

// The matte, clamped to [0, 1] as it is read (NaN -> 0: fmaxf returns the other operand).
struct VtMatte {
    const float* base;
    vt_i64 pitch;  // elements between rows
    __device__ __forceinline__ float at(int y, int x) const {
        const float v = vt_ldg(base + (vt_i64)y * pitch + x);
        return fminf(fmaxf(v, 0.0f), 1.0f);
    }
};

// The resized matte at output (x, y): the CPU's bilinear rows, a weight-0 tap never read.
VT_DEV float vt_matte_at(const VtMatte& m, int mh, int mw, int h, int w, int x, int y) {
    const VtAxis ay = {0, mh, 0, h}, ax = {0, mw, 0, w};
    const VtAxisK ky = vt_axis_k(ay, VT_M_LINEAR), kx = vt_axis_k(ax, VT_M_LINEAR);
    VtTaps ty, tx;
    vt_linear_taps(ky, y, &ty);
    vt_linear_taps(kx, x, &tx);
    return vt_sample<true>(m, ky, ty, kx, tx);
}

// Grey guide: (0.299 R + 0.587 G + 0.114 B) / 255 in float32, left to right.
VT_DEV float vt_luma(const vt_u8* px) {
    return (0.299f * (float)px[0] + 0.587f * (float)px[1] + 0.114f * (float)px[2]) / 255.0f;
}

// Clipped window [max(i - r, 0), min(i + r, n - 1)] of index i: its pixel count.
VT_DEV int vt_span(int i, int r, int n) {
    return vt_imin(i + r, n - 1) - vt_imax(i - r, 0) + 1;
}

// Integer luma round(0.299 R + 0.587 G + 0.114 B), halves up.
VT_DEV int vt_luma_int(const vt_u8* px) {
    return (299 * (int)px[0] + 587 * (int)px[1] + 114 * (int)px[2] + 500) / 1000;
}

// ---------------------------------------------------------------------------------------------
// matte -> alpha
// ---------------------------------------------------------------------------------------------

// p[0] = first, p[1 .. n) = rest: workspace initialisation as a kernel (so that a launch
// capture replays it).
extern "C" __global__ void vt_fill_u32(vt_u32* p, int n, vt_u32 first, vt_u32 rest) {
    const int i = vt_gx();
    if (i < n && vt_gy() == 0) p[i] = i == 0 ? first : rest;
}

// Without the guided filter: resize + ramp per pixel (resized: optional float32 copy of the
// resized matte, h x w contiguous).
extern "C" __global__ void vt_matte_alpha(const float* matte, int mh, int mw, vt_i64 mpitch,
                                          vt_u8* out, vt_i64 opitch, float* resized, int h,
                                          int w, double low, double high, int hard) {
    const int x = vt_gx(), y = vt_gy();
    if (x >= w || y >= h) return;
    const VtMatte m = {matte, mpitch};
    const float p = vt_matte_at(m, mh, mw, h, w, x, y);
    if (resized) resized[(vt_i64)y * w + x] = p;
    out[(vt_i64)y * opitch + x] = vt_ramp((double)p, low, high, hard);
}

// Guided path, step 1: resized matte P and guide luma L (h x w contiguous float32), and the
// luma's min and max bits in minmax[0..1] (initialised by the host to ~0 and 0). Each thread
// takes 4 adjacent pixels (their loads issue together, the row's y taps computed once); a
// warp's min and max are combined before one thread updates minmax.
extern "C" __global__ void vt_alpha_prepare(const float* matte, int mh, int mw, vt_i64 mpitch,
                                            const vt_u8* guide, vt_i64 gpitch, int gch,
                                            float* P, float* L, vt_u32* minmax, int h, int w) {
    const int x0 = vt_gx() * 4, y = vt_gy();
    if (y >= h) return;  // a warp is one row of threads of a block: it returns as a whole
    vt_u32 lo = 0xFFFFFFFFu, hi = 0u;
    if (x0 < w) {
        const VtMatte m = {matte, mpitch};
        const VtAxis ay = {0, mh, 0, h}, ax = {0, mw, 0, w};
        const VtAxisK ky = vt_axis_k(ay, VT_M_LINEAR), kx = vt_axis_k(ax, VT_M_LINEAR);
        VtTaps ty;
        vt_linear_taps(ky, y, &ty);
        const vt_u8* g = guide + (vt_i64)y * gpitch + (vt_i64)x0 * gch;
        const vt_i64 o = (vt_i64)y * w + x0;
        const int np = vt_imin(4, w - x0);
        VT_UNROLL
        for (int p = 0; p < 4; ++p) {
            if (p >= np) break;
            VtTaps tx;
            vt_linear_taps(kx, x0 + p, &tx);
            P[o + p] = vt_sample<true>(m, ky, ty, kx, tx);
            const float l = vt_luma(g + p * gch);
            L[o + p] = l;
            const vt_u32 bits = vt_float_bits(l);  // non-negative: bits order as the floats
            lo = bits < lo ? bits : lo;
            hi = bits > hi ? bits : hi;
        }
    }
    vt_warp_minmax(minmax, lo, hi);
}

// The luma's centre: the midrange, in float64 (the CPU's value exactly).
VT_DEV double vt_centre(const vt_u32* minmax) {
    return ((double)vt_bits_f(minmax[0]) + (double)vt_bits_f(minmax[1])) * 0.5;
}

// Values summed per pixel: stage 0, 4 of them (I', p, I'*I', I'*p with I' = L - c);
// stage 1, 2 of them (a, b: planes AB and AB + n).
template <int STAGE>
struct VtGf {
    static constexpr int K = STAGE == 0 ? 4 : 2;
    const float *P, *L;
    const double* AB;
    vt_i64 n;  // pixels per plane
    double c;  // luma centre
    __device__ __forceinline__ void values(vt_i64 o, double* v) const {
        if constexpr (STAGE == 0) {
            const double i = (double)vt_ldg(L + o) - c, p = (double)vt_ldg(P + o);
            v[0] = i;
            v[1] = p;
            v[2] = i * i;
            v[3] = i * p;
        } else {
            v[0] = vt_ldg(AB + o);
            v[1] = vt_ldg(AB + n + o);
        }
    }
};

// Row pass: thread (segment s, row y) writes the clipped horizontal window sums of columns
// [s * seg, min((s + 1) * seg, w)) of row y into the K planes of S (plane k at S + k * n):
// the first one by direct summation, the next ones by a running sum (+ entering - leaving).
template <int STAGE>
VT_DEV void vt_gf_rows(const VtGf<STAGE>& g, double* S, int h, int w, int r, int seg) {
    constexpr int K = VtGf<STAGE>::K;
    const int s = vt_gx(), y = vt_gy();
    const int x0 = s * seg;
    if (x0 >= w || y >= h) return;
    const int x1 = vt_imin(x0 + seg, w);
    const vt_i64 row = (vt_i64)y * w;
    double sum[K], v[K];
    VT_UNROLL
    for (int k = 0; k < K; ++k) sum[k] = 0.0;
    for (int j = vt_imax(x0 - r, 0); j <= vt_imin(x0 + r, w - 1); ++j) {
        g.values(row + j, v);
        VT_UNROLL
        for (int k = 0; k < K; ++k) sum[k] = sum[k] + v[k];
    }
    for (int x = x0; x < x1; ++x) {
        if (x > x0) {
            if (x + r < w) {
                g.values(row + x + r, v);
                VT_UNROLL
                for (int k = 0; k < K; ++k) sum[k] = sum[k] + v[k];
            }
            if (x - r - 1 >= 0) {
                g.values(row + x - r - 1, v);
                VT_UNROLL
                for (int k = 0; k < K; ++k) sum[k] = sum[k] - v[k];
            }
        }
        VT_UNROLL
        for (int k = 0; k < K; ++k) S[k * g.n + row + x] = sum[k];
    }
}

// Column pass: thread (column x, band b) slides the vertical sums of the K row-sum planes
// down rows [b * band, min((b + 1) * band, h)); per pixel, with the box means
// m = sum * (1 / count): stage 0 writes a = (m(I'p) - m(I') m(p)) / (m(I'I') - m(I')^2 + eps)
// and b = m(p) - a m(I') to AB; stage 1 writes the ramped q = m(a) I' + m(b) to out.
template <int STAGE>
VT_DEV void vt_gf_cols(const VtGf<STAGE>& g, const double* S, double* AB, vt_u8* out,
                       vt_i64 opitch, int h, int w, int r, int band, double eps, double low,
                       double high, int hard) {
    constexpr int K = VtGf<STAGE>::K;
    const int x = vt_gx(), b = vt_gy();
    const int y0 = b * band;
    if (x >= w || y0 >= h) return;
    const int y1 = vt_imin(y0 + band, h);
    const vt_i64 n = g.n;
    const int nx = vt_span(x, r, w);
    double sum[K];
    VT_UNROLL
    for (int k = 0; k < K; ++k) sum[k] = 0.0;
    for (int j = vt_imax(y0 - r, 0); j <= vt_imin(y0 + r, h - 1); ++j) {
        VT_UNROLL
        for (int k = 0; k < K; ++k) sum[k] = sum[k] + vt_ldg(S + k * n + (vt_i64)j * w + x);
    }
    for (int y = y0; y < y1; ++y) {
        if (y > y0) {
            if (y + r < h) {
                VT_UNROLL
                for (int k = 0; k < K; ++k)
                    sum[k] = sum[k] + vt_ldg(S + k * n + (vt_i64)(y + r) * w + x);
            }
            if (y - r - 1 >= 0) {
                VT_UNROLL
                for (int k = 0; k < K; ++k)
                    sum[k] = sum[k] - vt_ldg(S + k * n + (vt_i64)(y - r - 1) * w + x);
            }
        }
        const double inv = 1.0 / ((double)nx * (double)vt_span(y, r, h));
        const vt_i64 o = (vt_i64)y * w + x;
        if constexpr (STAGE == 0) {
            const double mi = sum[0] * inv, mp = sum[1] * inv;
            const double mii = sum[2] * inv, mip = sum[3] * inv;
            const double a = (mip - mi * mp) / ((mii - mi * mi) + eps);
            AB[o] = a;
            AB[n + o] = mp - a * mi;
        } else {
            const double q = (sum[0] * inv) * ((double)vt_ldg(g.L + o) - g.c) + sum[1] * inv;
            out[(vt_i64)y * opitch + x] = vt_ramp(q, low, high, hard);
        }
    }
}

// Stage 0 row sums of I', p, I'^2, I'p into S (4 planes).
extern "C" __global__ void vt_gf_rows4(const float* P, const float* L, const vt_u32* minmax,
                                       double* S, int h, int w, int r, int seg) {
    const VtGf<0> g = {P, L, nullptr, (vt_i64)h * w, vt_centre(minmax)};
    vt_gf_rows(g, S, h, w, r, seg);
}

// Stage 0 column pass: a, b into AB (2 planes).
extern "C" __global__ void vt_gf_cols4(const double* S, double* AB, int h, int w, int r,
                                       int band, double eps) {
    const VtGf<0> g = {nullptr, nullptr, nullptr, (vt_i64)h * w, 0.0};
    vt_gf_cols(g, S, AB, nullptr, 0, h, w, r, band, eps, 0.0, 1.0, 0);
}

// Stage 1 row sums of a, b into S (2 planes).
extern "C" __global__ void vt_gf_rows2(const double* AB, double* S, int h, int w, int r,
                                       int seg) {
    const VtGf<1> g = {nullptr, nullptr, AB, (vt_i64)h * w, 0.0};
    vt_gf_rows(g, S, h, w, r, seg);
}

// Stage 1 column pass: the alpha.
extern "C" __global__ void vt_gf_cols2(const double* S, const float* L, const vt_u32* minmax,
                                       vt_u8* out, vt_i64 opitch, int h, int w, int r, int band,
                                       double low, double high, int hard) {
    const VtGf<1> g = {nullptr, L, nullptr, (vt_i64)h * w, vt_centre(minmax)};
    vt_gf_cols(g, S, nullptr, out, opitch, h, w, r, band, 0.0, low, high, hard);
}

// ---------------------------------------------------------------------------------------------
// shadow
// ---------------------------------------------------------------------------------------------

// hist[luma] += 1 for every pixel whose alpha is 0 (hist: 257 words zeroed by the host).
extern "C" __global__ void vt_shadow_hist(const vt_u8* image, vt_i64 ipitch, int ich,
                                          const vt_u8* alpha, vt_i64 apitch, vt_u32* hist, int h,
                                          int w) {
    const int x = vt_gx(), y = vt_gy();
    if (x >= w || y >= h) return;
    if (alpha[(vt_i64)y * apitch + x] != 0) return;
    vt_atomic_add(hist + vt_luma_int(image + (vt_i64)y * ipitch + (vt_i64)x * ich), 1u);
}

// hist[256] = the lower median of the histogram (the (n+1)/2-th smallest), 0 when empty; one
// thread does it (256 bins).
extern "C" __global__ void vt_shadow_median(vt_u32* hist) {
    if (vt_gx() != 0 || vt_gy() != 0) return;
    vt_u32 n = 0;
    for (int i = 0; i < 256; ++i) n += hist[i];
    vt_u32 want = (n + 1u) / 2u, seen = 0, med = 0;
    for (int i = 0; i < 256 && n > 0; ++i) {
        seen += hist[i];
        if (seen >= want) {
            med = (vt_u32)i;
            break;
        }
    }
    hist[256] = med;
}

// The shadow alpha: background grey bg (> 0), or hist[256] when bg == 0 (0 there: all zeros);
// d = clip((1 - L / B) * strength, 0, 1), 0 below min_d or where alpha is 255.
extern "C" __global__ void vt_shadow_apply(const vt_u8* image, vt_i64 ipitch, int ich,
                                           const vt_u8* alpha, vt_i64 apitch, vt_u8* out,
                                           vt_i64 opitch, int h, int w, int bg,
                                           const vt_u32* hist, double strength, double min_d) {
    const int x = vt_gx(), y = vt_gy();
    if (x >= w || y >= h) return;
    const int B = bg > 0 ? bg : (int)vt_ldg(hist + 256);
    vt_u8 v = 0;
    if (B > 0 && alpha[(vt_i64)y * apitch + x] != 255) {
        const int lum = vt_luma_int(image + (vt_i64)y * ipitch + (vt_i64)x * ich);
        double d = (1.0 - (double)lum / (double)B) * strength;
        if (!(d > 0.0)) {
            d = 0.0;
        } else if (d > 1.0) {
            d = 1.0;
        }
        if (!(d < min_d)) v = (vt_u8)(int)(d * 255.0 + 0.5);
    }
    out[(vt_i64)y * opitch + x] = v;
}

// ---------------------------------------------------------------------------------------------
// RGBA: shadow merge, premultiplication, compositing (exact integers)
// ---------------------------------------------------------------------------------------------

// N = 255 A + (255 - A) S; A' = round(N / 255); C' = round(255 A C / N), halves up; 0 if N == 0.
extern "C" __global__ void vt_merge_shadow(const vt_u8* rgba, vt_i64 pitch, const vt_u8* shadow,
                                           vt_i64 spitch, vt_u8* out, vt_i64 opitch, int h,
                                           int w) {
    const int x = vt_gx(), y = vt_gy();
    if (x >= w || y >= h) return;
    const vt_u8* p = rgba + (vt_i64)y * pitch + 4 * (vt_i64)x;
    vt_u8* o = out + (vt_i64)y * opitch + 4 * (vt_i64)x;
    const int a = p[3], n = 255 * a + (255 - a) * (int)shadow[(vt_i64)y * spitch + x];
    if (n == 0) {
        o[0] = o[1] = o[2] = o[3] = 0;
        return;
    }
    VT_UNROLL
    for (int k = 0; k < 3; ++k) o[k] = (vt_u8)((510 * a * (int)p[k] + n) / (2 * n));
    o[3] = (vt_u8)((n + 127) / 255);
}

// C' = round(C A / 255) (no ties exist), alpha kept.
extern "C" __global__ void vt_premultiply(const vt_u8* rgba, vt_i64 pitch, vt_u8* out,
                                          vt_i64 opitch, int h, int w) {
    const int x = vt_gx(), y = vt_gy();
    if (x >= w || y >= h) return;
    const vt_u8* p = rgba + (vt_i64)y * pitch + 4 * (vt_i64)x;
    vt_u8* o = out + (vt_i64)y * opitch + 4 * (vt_i64)x;
    const int a = p[3];
    VT_UNROLL
    for (int k = 0; k < 3; ++k) o[k] = (vt_u8)(((int)p[k] * a + 127) / 255);
    o[3] = (vt_u8)a;
}

// RGBA over a background image (bg != null, bch >= 3 channels) or the colour c0, c1, c2:
// straight: (c a + b (255 - a) + 127) / 255; premultiplied: min(255, c + (b (255 - a) + 127) /
// 255) -- the CPU composite's integers.
extern "C" __global__ void vt_composite(const vt_u8* rgba, vt_i64 pitch, const vt_u8* bg,
                                        vt_i64 bpitch, int bch, int c0, int c1, int c2,
                                        vt_u8* out, vt_i64 opitch, int h, int w, int premul) {
    const int x = vt_gx(), y = vt_gy();
    if (x >= w || y >= h) return;
    const vt_u8* p = rgba + (vt_i64)y * pitch + 4 * (vt_i64)x;
    vt_u8* o = out + (vt_i64)y * opitch + 3 * (vt_i64)x;
    const vt_u8* q = bg ? bg + (vt_i64)y * bpitch + (vt_i64)x * bch : nullptr;
    const int a = p[3], colour[3] = {c0, c1, c2};
    VT_UNROLL
    for (int k = 0; k < 3; ++k) {
        const int b = q ? (int)q[k] : colour[k];
        if (premul) {
            const int v = (int)p[k] + (b * (255 - a) + 127) / 255;
            o[k] = (vt_u8)(v < 255 ? v : 255);
        } else {
            o[k] = (vt_u8)(((int)p[k] * a + b * (255 - a) + 127) / 255);
        }
    }
}
