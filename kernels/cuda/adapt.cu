// vetrina adapt: float32/float16 NCHW batch -> float32/float16 NCHW batch between two stages
// whose contracts differ (value range, dtype, size, channel order or count); grid z = image.
// Each thread takes one output column and `rows` consecutive output rows
// (vt_rows_per_thread): its x taps (a VtWin) are computed once, each row's y taps once for
// all channels, and a warp's threads share the row.
//
// Per output pixel (CPU: adapt_batch): resample the whole input plane to (h, w) (bilinear or
// area; a tap of weight 0 is never read), output channel k takes input channel ch[k], then
// y = value * scale[k] + offset[k] in float32, stored as float32 or float16 (nearest even).
#include "common.cuh"
#include "resample.cuh"

#define VT_MAX_CHANNELS 64

struct VtAdapt {
    vt_i64 sn, sc, sh;        // input strides in elements (image, channel, row); columns adjacent
    int cin, cout;            // channel counts
    int mode;                 // VT_M_LINEAR or VT_M_AREA
    int pad_;
    VtAxis y, x;              // whole input plane -> whole output plane (olen = output size)
    int ch[VT_MAX_CHANNELS];  // input channel of output channel k
    float scale[VT_MAX_CHANNELS], offset[VT_MAX_CHANNELS];
};
VT_AT(VtAdapt, cin, 24);
VT_AT(VtAdapt, mode, 32);
VT_AT(VtAdapt, y, 40);
VT_AT(VtAdapt, x, 56);
VT_AT(VtAdapt, ch, 72);
VT_AT(VtAdapt, scale, 328);
VT_AT(VtAdapt, offset, 584);
VT_SIZE(VtAdapt, 840);

template <typename T>
struct VtAdaptPlane {
    const T* base;
    vt_i64 sh;
    __device__ __forceinline__ float at(int y, int x) const {
        return vt_load(base + (vt_i64)y * sh + x);
    }
};

// One input row resampled along x over the window: s = p0*w0; s = s + pk*wk (vt_row).
template <int MAXP, typename TI>
VT_DEV float vt_adapt_hrow(const TI* p, const VtWin<MAXP>& xw) {
    float s = vt_load(p) * xw.w[0];
    VT_UNROLL
    for (int j = 1; j < MAXP; ++j) {
        if (j >= xw.n) break;
        s = s + vt_load(p + j) * xw.w[j];
    }
    return s;
}

// Three output channels (RGB <-> BGR, the common hand-off) of row y: vt_adapt_win's sums in
// the same order, with the channel loop unrolled inside each row's taps, so that the loads of
// all three channels issue together (the general loop waits for each channel in turn).
template <int MAXP, typename TI, typename TO>
VT_DEV void vt_adapt_row3(const VtAdapt& a, const TI* const* p, TO* o, vt_i64 plane,
                          const VtAxisK& ky, const VtTaps& ty, const VtWin<MAXP>& xw) {
    float v[3];
    if (ty.first < 0) {
        const vt_i64 r0 = (vt_i64)(ky.s0 + ty.i0) * a.sh;
        VT_UNROLL
        for (int k = 0; k < 3; ++k) v[k] = vt_adapt_hrow(p[k] + r0, xw);
        if (ty.f != 0.0f) {
            const vt_i64 r1 = (vt_i64)(ky.s0 + ty.i1) * a.sh;
            float h[3];
            VT_UNROLL
            for (int k = 0; k < 3; ++k) h[k] = vt_adapt_hrow(p[k] + r1, xw);
            VT_UNROLL
            for (int k = 0; k < 3; ++k) v[k] = v[k] * ty.g + h[k] * ty.f;
        }
    } else {
        const vt_i64 r0 = (vt_i64)(ky.s0 + ty.first) * a.sh;
        const float w0 = vt_area_weight(ty, ty.first);
        VT_UNROLL
        for (int k = 0; k < 3; ++k) v[k] = vt_adapt_hrow(p[k] + r0, xw) * w0;
        for (int r = ty.first + 1; r < ty.last; ++r) {
            const vt_i64 rr = (vt_i64)(ky.s0 + r) * a.sh;
            const float wr = vt_area_weight(ty, r);
            VT_UNROLL
            for (int k = 0; k < 3; ++k) v[k] = v[k] + vt_adapt_hrow(p[k] + rr, xw) * wr;
        }
    }
    VT_UNROLL
    for (int k = 0; k < 3; ++k) vt_store(o + k * plane, v[k] * a.scale[k] + a.offset[k]);
}

// x window of at most MAXP columns; y as vt_sample (one tap of weight 1: h0 alone). THREE:
// a.cout == 3, taken by vt_adapt_row3.
template <int MODE, int MAXP, bool THREE, typename TI, typename TO>
VT_DEV void vt_adapt_win(const VtAdapt& a, const TI* base, TO* o, vt_i64 plane, int w,
                         const VtAxisK& ky, const VtAxisK& kx, int x, int ya, int yb) {
    VtTaps tx;
    vt_taps(MODE, kx, x, &tx);
    VtWin<MAXP> xw;
    vt_win(tx, &xw);
    base += kx.s0 + xw.first;
    const TI* p3[3];
    VT_UNROLL
    for (int k = 0; k < 3; ++k) p3[k] = THREE ? base + (vt_i64)a.ch[k] * a.sc : base;
    for (int y = ya; y < yb; ++y, o += w) {
        VtTaps ty;
        vt_taps(MODE, ky, y, &ty);
        if (THREE) {
            vt_adapt_row3(a, p3, o, plane, ky, ty, xw);
        } else {
            for (int k = 0; k < a.cout; ++k) {
                const TI* p = base + (vt_i64)a.ch[k] * a.sc;
                float v;
                if (ty.first < 0) {
                    v = vt_adapt_hrow(p + (vt_i64)(ky.s0 + ty.i0) * a.sh, xw);
                    if (ty.f != 0.0f) {
                        v = v * ty.g +
                            vt_adapt_hrow(p + (vt_i64)(ky.s0 + ty.i1) * a.sh, xw) * ty.f;
                    }
                } else {
                    v = vt_adapt_hrow(p + (vt_i64)(ky.s0 + ty.first) * a.sh, xw) *
                        vt_area_weight(ty, ty.first);
                    for (int r = ty.first + 1; r < ty.last; ++r) {
                        v = v + vt_adapt_hrow(p + (vt_i64)(ky.s0 + r) * a.sh, xw) *
                                    vt_area_weight(ty, r);
                    }
                }
                vt_store(o + k * plane, v * a.scale[k] + a.offset[k]);
            }
        }
    }
}

// Area with x factors above VT_AREA_MAX8: one sample at a time.
template <typename TI, typename TO>
VT_DEV void vt_adapt_generic(const VtAdapt& a, const TI* base, TO* o, vt_i64 plane, int w,
                             const VtAxisK& ky, const VtAxisK& kx, int x, int ya, int yb) {
    VtTaps tx;
    vt_taps(VT_M_AREA, kx, x, &tx);
    for (int y = ya; y < yb; ++y, o += w) {
        VtTaps ty;
        vt_taps(VT_M_AREA, ky, y, &ty);
        for (int k = 0; k < a.cout; ++k) {
            const VtAdaptPlane<TI> p = {base + (vt_i64)a.ch[k] * a.sc, a.sh};
            const float v = vt_sample<true>(p, ky, ty, kx, tx);
            vt_store(o + k * plane, v * a.scale[k] + a.offset[k]);
        }
    }
}

// MODE: VT_M_LINEAR or VT_M_AREA (a.mode says the same).
template <int MODE, typename TI, typename TO>
VT_DEV void vt_adapt(const VtAdapt& a, const TI* in, TO* out) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int h = a.y.olen, w = a.x.olen;
    const int rows = vt_rows_per_thread(h);
    const int ya = (int)(blockIdx.y * blockDim.y + threadIdx.y) * rows;
    if (x >= w || ya >= h) return;
    const int yb = vt_imin(ya + rows, h);
    const int i = blockIdx.z;
    const VtAxisK ky = vt_axis_k(a.y, MODE), kx = vt_axis_k(a.x, MODE);
    const vt_i64 plane = (vt_i64)h * w;
    TO* o = out + (vt_i64)i * a.cout * plane + (vt_i64)ya * w + x;
    const TI* base = in + (vt_i64)i * a.sn;
    if (MODE == VT_M_LINEAR || kx.S < kx.D) {  // two taps along x
        if (a.cout == 3) {
            vt_adapt_win<MODE, 2, true>(a, base, o, plane, w, ky, kx, x, ya, yb);
        } else {
            vt_adapt_win<MODE, 2, false>(a, base, o, plane, w, ky, kx, x, ya, yb);
        }
    } else if (kx.S <= VT_AREA_MAX8 * kx.D) {
        if (a.cout == 3) {
            vt_adapt_win<MODE, 8, true>(a, base, o, plane, w, ky, kx, x, ya, yb);
        } else {
            vt_adapt_win<MODE, 8, false>(a, base, o, plane, w, ky, kx, x, ya, yb);
        }
    } else {
        vt_adapt_generic(a, base, o, plane, w, ky, kx, x, ya, yb);
    }
}

// Same size (input plane == output plane): bilinear and area are both the identity there (one
// tap of weight 1, and v * 1.0f == v), so y = value * scale[k] + offset[k], without taps.
// Each thread takes 4 adjacent columns of `rows` rows, one vector load and store per channel
// where its 4 values are aligned (else one element each), and up to three channels' loads
// issue together (the RGB hand-off in one step).
template <typename TI, typename TO>
VT_DEV void vt_adapt_same(const VtAdapt& a, const TI* in, TO* out) {
    const int x0 = (int)(blockIdx.x * blockDim.x + threadIdx.x) * 4;
    const int h = a.y.olen, w = a.x.olen;
    const int rows = vt_rows_per_thread(h);
    const int ya = (int)(blockIdx.y * blockDim.y + threadIdx.y) * rows;
    if (x0 >= w || ya >= h) return;
    const int yb = vt_imin(ya + rows, h);
    const int np = vt_imin(4, w - x0);
    const int i = blockIdx.z;
    const vt_i64 plane = (vt_i64)h * w;
    const TI* base = in + (vt_i64)i * a.sn + x0;
    TO* o = out + (vt_i64)i * a.cout * plane + x0;
    for (int y = ya; y < yb; ++y) {
        for (int k0 = 0; k0 < a.cout; k0 += 3) {
            float v[12];
            VT_UNROLL
            for (int j = 0; j < 3; ++j) {
                if (k0 + j >= a.cout) break;
                const TI* p = base + (vt_i64)a.ch[k0 + j] * a.sc + (vt_i64)y * a.sh;
                if (np == 4 && ((vt_u64)p & (4 * sizeof(TI) - 1)) == 0) {
                    vt_load4(p, v + 4 * j);
                } else {
                    VT_UNROLL
                    for (int c = 0; c < 4; ++c) v[4 * j + c] = c < np ? vt_load(p + c) : 0.0f;
                }
            }
            VT_UNROLL
            for (int j = 0; j < 3; ++j) {
                const int k = k0 + j;
                if (k >= a.cout) break;
                VT_UNROLL
                for (int c = 0; c < 4; ++c) v[4 * j + c] = v[4 * j + c] * a.scale[k] + a.offset[k];
                TO* q = o + k * plane + (vt_i64)y * w;
                if (np == 4 && ((vt_u64)q & (4 * sizeof(TO) - 1)) == 0) {
                    vt_store4(q, v + 4 * j);
                } else {
                    VT_UNROLL
                    for (int c = 0; c < 4; ++c) {
                        if (c < np) vt_store(q + c, v[4 * j + c]);
                    }
                }
            }
        }
    }
}

// One kernel per mode and dtype pair (kernels/gpu.py picks by name). Bilinear is capped at 40
// registers (6 blocks of 256 threads per SM), area at 64 (4 blocks).
extern "C" __launch_bounds__(256, 6) __global__
    void vt_adapt_f32_f32(const VtAdapt a, const float* in, float* out);
extern "C" __launch_bounds__(256, 6) __global__
    void vt_adapt_f32_f16(const VtAdapt a, const float* in, vt_u16* out);
extern "C" __launch_bounds__(256, 6) __global__
    void vt_adapt_f16_f32(const VtAdapt a, const vt_u16* in, float* out);
extern "C" __launch_bounds__(256, 6) __global__
    void vt_adapt_f16_f16(const VtAdapt a, const vt_u16* in, vt_u16* out);
extern "C" __launch_bounds__(256, 4) __global__
    void vt_adapt_area_f32_f32(const VtAdapt a, const float* in, float* out);
extern "C" __launch_bounds__(256, 4) __global__
    void vt_adapt_area_f32_f16(const VtAdapt a, const float* in, vt_u16* out);
extern "C" __launch_bounds__(256, 4) __global__
    void vt_adapt_area_f16_f32(const VtAdapt a, const vt_u16* in, float* out);
extern "C" __launch_bounds__(256, 4) __global__
    void vt_adapt_area_f16_f16(const VtAdapt a, const vt_u16* in, vt_u16* out);

extern "C" __global__ void vt_adapt_same_f32_f32(const VtAdapt a, const float* in, float* out) {
    vt_adapt_same(a, in, out);
}
extern "C" __global__ void vt_adapt_same_f32_f16(const VtAdapt a, const float* in, vt_u16* out) {
    vt_adapt_same(a, in, out);
}
extern "C" __global__ void vt_adapt_same_f16_f32(const VtAdapt a, const vt_u16* in, float* out) {
    vt_adapt_same(a, in, out);
}
extern "C" __global__ void vt_adapt_same_f16_f16(const VtAdapt a, const vt_u16* in, vt_u16* out) {
    vt_adapt_same(a, in, out);
}
extern "C" __global__ void vt_adapt_f32_f32(const VtAdapt a, const float* in, float* out) {
    vt_adapt<VT_M_LINEAR>(a, in, out);
}
extern "C" __global__ void vt_adapt_f32_f16(const VtAdapt a, const float* in, vt_u16* out) {
    vt_adapt<VT_M_LINEAR>(a, in, out);
}
extern "C" __global__ void vt_adapt_f16_f32(const VtAdapt a, const vt_u16* in, float* out) {
    vt_adapt<VT_M_LINEAR>(a, in, out);
}
extern "C" __global__ void vt_adapt_f16_f16(const VtAdapt a, const vt_u16* in, vt_u16* out) {
    vt_adapt<VT_M_LINEAR>(a, in, out);
}
extern "C" __global__ void vt_adapt_area_f32_f32(const VtAdapt a, const float* in, float* out) {
    vt_adapt<VT_M_AREA>(a, in, out);
}
extern "C" __global__ void vt_adapt_area_f32_f16(const VtAdapt a, const float* in, vt_u16* out) {
    vt_adapt<VT_M_AREA>(a, in, out);
}
extern "C" __global__ void vt_adapt_area_f16_f32(const VtAdapt a, const vt_u16* in, float* out) {
    vt_adapt<VT_M_AREA>(a, in, out);
}
extern "C" __global__ void vt_adapt_area_f16_f16(const VtAdapt a, const vt_u16* in, vt_u16* out) {
    vt_adapt<VT_M_AREA>(a, in, out);
}
