// vetrina postprocess: float32 or float16 NCHW batch (N, 3, H, W) -> uint8 HWC images
// (h, w, 3), or (h, w, 4) with an alpha plane appended. One launch covers up to VT_MAX_IMAGES
// images (grid z = image). Each thread takes 4 adjacent output pixels (12 or 16 bytes, stored
// as 4-byte words when the rows are word aligned) of `rows` consecutive output rows
// (vt_rows_per_thread): the x taps are computed once per thread, a warp's threads share each
// row's y taps, and bilinear keeps the last two x-resampled source rows, so that an upscale
// resamples each source row once per thread instead of once per output row.
//
// Per output pixel (docs/kernels.md): inside the image's content box, resample the batch box
// (bilinear or area; a tap of weight 0 is never read, so NaN/inf stay local), then
// v = value * scale + offset per batch channel, NaN -> 0, clamp to [0, 255], floor(v + 0.5).
// Output channel k reads batch channel bc[k] (RGB<->BGR swap). Outside the content box the
// pixel is fill[k]. The alpha plane, when given, is copied to channel 3 everywhere.
#include "common.cuh"
#include "resample.cuh"

struct VtPostImage {
    vt_u8* dst;           // &out[0, 0, 0] in device memory
    vt_i64 row_pitch;     // bytes between output rows
    const vt_u8* alpha;   // &alpha[0, 0] or null
    vt_i64 alpha_pitch;   // bytes between alpha rows (alpha pixels are adjacent)
    int h, w, nout;       // output size and channel count (3 or 4)
    vt_u8 fill[4];        // output channels 0..2 outside the content box
    VtAxis y, x;          // batch box -> content box of the output, per axis (common.cuh)
};
VT_AT(VtPostImage, row_pitch, 8);
VT_AT(VtPostImage, alpha, 16);
VT_AT(VtPostImage, alpha_pitch, 24);
VT_AT(VtPostImage, h, 32);
VT_AT(VtPostImage, w, 36);
VT_AT(VtPostImage, nout, 40);
VT_AT(VtPostImage, fill, 44);
VT_AT(VtPostImage, y, 48);
VT_AT(VtPostImage, x, 64);
VT_SIZE(VtPostImage, 80);

struct VtPostBatch {
    VtPostImage img[VT_MAX_IMAGES];
    vt_i64 sn, sc, sh;    // batch strides in elements (image, channel, row); columns adjacent
    int H, W;             // batch plane size
    int bc[3];            // batch channel of output channel k
    int mode;             // VT_M_LINEAR or VT_M_AREA
    float scale[3], offset[3];  // per output channel k (gathered from batch channel bc[k])
};
VT_AT(VtPostBatch, sn, 2560);
VT_AT(VtPostBatch, sc, 2568);
VT_AT(VtPostBatch, sh, 2576);
VT_AT(VtPostBatch, H, 2584);
VT_AT(VtPostBatch, W, 2588);
VT_AT(VtPostBatch, bc, 2592);
VT_AT(VtPostBatch, mode, 2604);
VT_AT(VtPostBatch, scale, 2608);
VT_AT(VtPostBatch, offset, 2620);
VT_SIZE(VtPostBatch, 2632);

template <typename T>
struct VtPlane {
    const T* base;
    vt_i64 sh;
    __device__ __forceinline__ float at(int y, int x) const {
        return vt_load(base + (vt_i64)y * sh + x);
    }
};

// Where a thread's pixels go: output row y, pixels x0 .. x0 + np - 1.
struct VtPostOut {
    vt_u8* dst;          // &out[0, x0, 0]
    vt_i64 pitch;
    const vt_u8* alpha;  // &alpha[0, x0] or null
    vt_i64 apitch;
    int nout, np;
    bool words;   // 4 pixels and word-aligned rows: the pixels are stored as 3 or 4 words
    bool awords;  // 4 pixels and a word-aligned alpha plane: the alpha bytes are one word
};

// Stores one row of the thread's pixels; byte 3p + k of q[0..2] (little-endian words):
// output channel k of pixel p. The alpha plane is copied to channel 3 of every pixel.
VT_DEV void vt_post_write(const VtPostOut& w, int y, const vt_u32* q) {
    vt_u8* o = w.dst + (vt_i64)y * w.pitch;
    if (w.nout == 3 && w.words) {  // r0 g0 b0 r1 | g1 b1 r2 g2 | b2 r3 g3 b3
        vt_store_word(o, q[0]);
        vt_store_word(o + 4, q[1]);
        vt_store_word(o + 8, q[2]);
        return;
    }
    vt_u32 a = 0u;  // alpha bytes of pixels 0..3
    if (w.nout == 4) {
        const vt_u8* ap = w.alpha + (vt_i64)y * w.apitch;
        if (w.awords) {
            a = vt_ldg_word(ap);
        } else {
            VT_UNROLL
            for (int p = 0; p < 4; ++p) {
                if (p < w.np) a = vt_put_byte(a, p, vt_ldg(ap + p));
            }
        }
    }
    VT_UNROLL
    for (int p = 0; p < 4; ++p) {
        const vt_u32 c0 = vt_byte(q[(3 * p) >> 2], (3 * p) & 3);
        const vt_u32 c1 = vt_byte(q[(3 * p + 1) >> 2], (3 * p + 1) & 3);
        const vt_u32 c2 = vt_byte(q[(3 * p + 2) >> 2], (3 * p + 2) & 3);
        if (w.nout == 4 && w.words) {
            vt_u32 px = vt_put_byte(0u, 0, c0);
            px = vt_put_byte(px, 1, c1);
            px = vt_put_byte(px, 2, c2);
            vt_store_word(o + 4 * p, vt_put_byte(px, 3, vt_byte(a, p)));
        } else if (p < w.np) {
            vt_u8* px = o + p * w.nout;
            px[0] = (vt_u8)c0;
            px[1] = (vt_u8)c1;
            px[2] = (vt_u8)c2;
            if (w.nout == 4) px[3] = (vt_u8)vt_byte(a, p);
        }
    }
}

// q (as vt_post_write takes it) from byte(p, k) of output channel k of pixel p, 0 <= p < 4.
template <class F>
VT_DEV void vt_post_pack(vt_u32* q, F byte) {
    q[0] = q[1] = q[2] = 0u;
    VT_UNROLL
    for (int p = 0; p < 4; ++p) {
        VT_UNROLL
        for (int k = 0; k < 3; ++k) {
            const int j = 3 * p + k;
            q[j >> 2] = vt_put_byte(q[j >> 2], j & 3, byte(p, k));
        }
    }
}

// The fill bytes of every pixel, packed as vt_post_write takes them.
VT_DEV void vt_post_fill(const VtPostImage& im, vt_u32* q) {
    vt_post_pack(q, [&](int, int k) { return (vt_u32)im.fill[k]; });
}

// Source row r of output channel k resampled along x at the thread's pixels: h[p * 3 + k] =
// p0*g + p1*f, or p0*g alone for one tap (the other is never read). Branch-free, so that all
// loads issue together: pixels outside the content box read a valid column (xf clamped by
// the caller) and their values are not used.
template <typename T>
VT_DEV void vt_post_hrow(const T* const* plane, vt_i64 sh, int r, const int* xf, const float* xw,
                         int two, float* h) {
    VT_UNROLL
    for (int k = 0; k < 3; ++k) {
        const T* row = plane[k] + (vt_i64)r * sh;
        VT_UNROLL
        for (int p = 0; p < 4; ++p) {
            const bool t = two >> p & 1;
            const float p1 = t ? vt_load(row + xf[p] + 1) : 0.0f;
            const float s = vt_load(row + xf[p]) * (1.0f - xw[p]);  // g = 1 - f (vt_linear_taps)
            h[3 * p + k] = t ? s + p1 * xw[p] : s;
        }
    }
}

// Bilinear taps of virtual index v: vt_linear_taps, or (UP2: olen == 2 * slen) the same taps
// in closed form. There the source coordinate (v + 0.5) / 2 - 0.5 = v / 2 - 0.25 is exact:
// v = 2m takes m - 1 and m with f = 0.75 (m = 0: m alone), v = 2m + 1 takes m and m + 1 with
// f = 0.25 (m = S - 1: m alone). No double arithmetic, no division for the axis constants.
template <bool UP2>
VT_DEV void vt_post_taps(const VtAxisK& k, int v, VtTaps* t) {
    if (!UP2) {
        vt_linear_taps(k, v, t);
        return;
    }
    const int m = v >> 1;
    int s = (v & 1) ? m : m - 1;
    float f = (v & 1) ? 0.25f : 0.75f;
    if ((v & 1) ? m >= k.S - 1 : m == 0) {
        s = (v & 1) ? k.S - 1 : 0;
        f = 0.0f;
    }
    vt_two_taps(t, s, f);
}

// Bilinear. ha, hb: source rows ra, rb resampled along x (vt_post_hrow); consecutive output
// rows mostly share them (an upscale by 2 needs a new source row every other output row).
template <bool UP2, typename T>
VT_DEV void vt_post_linear(const VtPostBatch& b, const VtPostImage& im, const T* base,
                           const VtPostOut& w, int x0, int ya, int yb) {
    // (UP2 needs no axis constants: VT_M_BOX computes none of the float ones)
    const int mode = UP2 ? VT_M_BOX : VT_M_LINEAR;
    const VtAxisK ky = vt_axis_k(im.y, mode), kx = vt_axis_k(im.x, mode);
    int xf[4], in = 0, two = 0;  // in, two: bit p = pixel p inside the content box, two taps
    float xw[4];
    VT_UNROLL
    for (int p = 0; p < 4; ++p) {
        const int vx = x0 + p - kx.o0;
        const bool inside = p < w.np && vx >= 0 && vx < kx.D;
        VtTaps t;
        vt_post_taps<UP2>(kx, inside ? vx : 0, &t);  // outside: column 0's taps, never used
        xf[p] = kx.s0 + t.i0;
        xw[p] = t.f;
        in |= (int)inside << p;
        two |= (int)(t.f != 0.0f) << p;
    }
    const T* plane[3];
    VT_UNROLL
    for (int k = 0; k < 3; ++k) plane[k] = base + (vt_i64)b.bc[k] * b.sc;
    float ha[12], hb[12];
    VT_UNROLL
    for (int j = 0; j < 12; ++j) ha[j] = hb[j] = 0.0f;
    int ra = -1, rb = -1;  // source rows held in ha, hb (none yet)
    for (int y = ya; y < yb; ++y) {
        vt_u32 q[3];
        const int vy = y - ky.o0;
        if (vy < 0 || vy >= ky.D) {
            vt_post_fill(im, q);
            vt_post_write(w, y, q);
            continue;
        }
        VtTaps ty;
        vt_post_taps<UP2>(ky, vy, &ty);
        const int r0 = ky.s0 + ty.i0, r1 = ky.s0 + ty.i1;
        const bool tworows = ty.f != 0.0f;
        // (warp-uniform branches: a warp's threads share the row)
        if (r0 != ra) {
            if (r0 == rb) {
                VT_UNROLL
                for (int j = 0; j < 12; ++j) ha[j] = hb[j];
            } else {
                vt_post_hrow(plane, b.sh, r0, xf, xw, two, ha);
            }
            ra = r0;
        }
        if (tworows && r1 != rb) {
            vt_post_hrow(plane, b.sh, r1, xf, xw, two, hb);
            rb = r1;
        }
        // every pixel converted without a branch; pixels outside the content box (rare: the
        // threads at a letterbox bar's edge or the row's end) get their fill bytes after
        vt_post_pack(q, [&](int p, int k) {
            float v = ha[3 * p + k];
            if (tworows) v = v * ty.g + hb[3 * p + k] * ty.f;
            return vt_to_u8_bits(v * b.scale[k] + b.offset[k]);
        });
        if (in != 0xF) {
            VT_UNROLL
            for (int p = 0; p < 4; ++p) {
                if (in >> p & 1) continue;
                VT_UNROLL
                for (int k = 0; k < 3; ++k) {
                    const int j = 3 * p + k;
                    q[j >> 2] = vt_put_byte(q[j >> 2], j & 3, (vt_u32)im.fill[k]);
                }
            }
        }
        vt_post_write(w, y, q);
    }
}

// Any mode (area): each sample as vt_sample, the row's y taps shared by the thread's pixels.
template <int MODE, typename T>
VT_DEV void vt_post_generic(const VtPostBatch& b, const VtPostImage& im, const T* base,
                            const VtPostOut& w, int x0, int ya, int yb) {
    const VtAxisK ky = vt_axis_k(im.y, MODE), kx = vt_axis_k(im.x, MODE);
    for (int y = ya; y < yb; ++y) {
        vt_u32 q[3];
        vt_post_fill(im, q);
        const int vy = y - ky.o0;
        if (vy >= 0 && vy < ky.D) {
            VtTaps ty;
            vt_taps(MODE, ky, vy, &ty);
            for (int p = 0; p < w.np; ++p) {  // not unrolled: q's words are chosen by select
                const int vx = x0 + p - kx.o0;
                if (vx < 0 || vx >= kx.D) continue;
                VtTaps tx;
                vt_taps(MODE, kx, vx, &tx);
                VT_UNROLL
                for (int k = 0; k < 3; ++k) {
                    const VtPlane<T> pl = {base + (vt_i64)b.bc[k] * b.sc, b.sh};
                    const float v = vt_sample<true>(pl, ky, ty, kx, tx);
                    const vt_u32 u = vt_to_u8_bits(v * b.scale[k] + b.offset[k]);
                    const int j = 3 * p + k, at = j & 3;
                    q[0] = j >> 2 == 0 ? vt_put_byte(q[0], at, u) : q[0];
                    q[1] = j >> 2 == 1 ? vt_put_byte(q[1], at, u) : q[1];
                    q[2] = j >> 2 == 2 ? vt_put_byte(q[2], at, u) : q[2];
                }
            }
        }
        vt_post_write(w, y, q);
    }
}

// Output pixels x0 .. x0 + 3 of image im (vt_post_write's view of them).
VT_DEV VtPostOut vt_post_out(const VtPostImage& im, int x0) {
    VtPostOut w;
    w.nout = im.nout;
    w.np = vt_imin(4, im.w - x0);
    w.dst = im.dst + (vt_i64)x0 * im.nout;
    w.pitch = im.row_pitch;
    w.alpha = im.nout == 4 ? im.alpha + x0 : im.alpha;
    w.apitch = im.alpha_pitch;
    w.words = w.np == 4 && (((vt_u64)im.dst | (vt_u64)im.row_pitch) & 3u) == 0;
    w.awords = w.np == 4 && (((vt_u64)im.alpha | (vt_u64)im.alpha_pitch) & 3u) == 0;
    return w;
}

// The thread's share of image im (grid z): output columns x0 .. x0 + 3 of rows ya .. yb - 1;
// false when it has none.
struct VtPostSpan {
    int x0, ya, yb;
};
VT_DEV bool vt_post_span(const VtPostImage& im, VtPostSpan* s) {
    const int rows = vt_rows_per_thread(im.h);
    s->x0 = (int)(blockIdx.x * blockDim.x + threadIdx.x) * 4;
    s->ya = (int)(blockIdx.y * blockDim.y + threadIdx.y) * rows;
    s->yb = vt_imin(s->ya + rows, im.h);
    return s->x0 < im.w && s->ya < im.h;
}

// MODE: VT_M_LINEAR (vt_post_linear) or VT_M_AREA (vt_post_generic); b.mode says the same.
// UP2 (bilinear only): every image's content box is twice its batch box on both axes.
template <int MODE, bool UP2, typename T>
VT_DEV void vt_postprocess(const VtPostBatch& b, const T* batch) {
    const VtPostImage& im = b.img[blockIdx.z];
    VtPostSpan t;
    if (!vt_post_span(im, &t)) return;
    const VtPostOut w = vt_post_out(im, t.x0);
    const T* base = batch + (vt_i64)blockIdx.z * b.sn;
    if (MODE == VT_M_LINEAR) {
        vt_post_linear<UP2>(b, im, base, w, t.x0, t.ya, t.yb);
    } else {
        vt_post_generic<MODE>(b, im, base, w, t.x0, t.ya, t.yb);
    }
}

// Same size: every image of the launch shows its batch box 1:1 (slen == olen on both axes),
// where bilinear and area are both the identity (one tap of weight 1, and v * 1.0f == v), so
// a pixel is its batch value mapped and converted: no taps, no row cache. This is the common
// case of an editor whose output keeps the input's size, and the general kernel spent most of
// its ~650 instructions per warp and row on taps there (Nsight Compute, H200, 512 -> 512).
// The thread's 4 values of a channel come in one vector load where they are inside the
// content box and aligned (16 bytes for float32, 8 for float16), else one load each.
template <typename T>
VT_DEV void vt_postprocess_same(const VtPostBatch& b, const T* batch) {
    const VtPostImage& im = b.img[blockIdx.z];
    VtPostSpan t;
    if (!vt_post_span(im, &t)) return;
    const VtPostOut w = vt_post_out(im, t.x0);
    const int vx = t.x0 - im.x.o0;  // content column of pixel 0
    int in = 0;                   // bit p: pixel p inside the content box
    VT_UNROLL
    for (int p = 0; p < 4; ++p) in |= (int)(p < w.np && vx + p >= 0 && vx + p < im.x.olen) << p;
    const T* plane[3];
    VT_UNROLL
    for (int k = 0; k < 3; ++k) {
        plane[k] = batch + (vt_i64)blockIdx.z * b.sn + (vt_i64)b.bc[k] * b.sc;
    }
    const vt_i64 col = (vt_i64)im.x.s0 + vx;  // batch column of pixel 0
    for (int y = t.ya; y < t.yb; ++y) {
        vt_u32 q[3];
        const int vy = y - im.y.o0;
        if (in == 0 || vy < 0 || vy >= im.y.olen) {
            vt_post_fill(im, q);
            vt_post_write(w, y, q);
            continue;
        }
        const vt_i64 at = (vt_i64)(im.y.s0 + vy) * b.sh + col;
        float v[12];
        VT_UNROLL
        for (int k = 0; k < 3; ++k) {
            const T* src = plane[k] + at;
            if (in == 0xF && ((vt_u64)src & (4 * sizeof(T) - 1)) == 0) {
                vt_load4(src, v + 4 * k);
            } else {
                VT_UNROLL
                for (int p = 0; p < 4; ++p) v[4 * k + p] = in >> p & 1 ? vt_load(src + p) : 0.0f;
            }
        }
        vt_post_pack(q, [&](int p, int k) {
            return in >> p & 1 ? vt_to_u8_bits(v[4 * k + p] * b.scale[k] + b.offset[k])
                               : (vt_u32)im.fill[k];
        });
        vt_post_write(w, y, q);
    }
}

// One kernel per mode and batch dtype (kernels/gpu.py picks by name), and the shortcuts: up2
// (bilinear at exactly 2x) and same (1:1). Bilinear is capped at 80 registers: 3 blocks of 256
// threads per SM (NVRTC 13.0 spills 30 bytes there on sm_90; up2 spills none).
extern "C" __launch_bounds__(256, 3) __global__
    void vt_postprocess_f32(const VtPostBatch b, const float* batch);
extern "C" __launch_bounds__(256, 3) __global__
    void vt_postprocess_f16(const VtPostBatch b, const vt_u16* batch);
extern "C" __launch_bounds__(256, 3) __global__
    void vt_postprocess_up2_f32(const VtPostBatch b, const float* batch);
extern "C" __launch_bounds__(256, 3) __global__
    void vt_postprocess_up2_f16(const VtPostBatch b, const vt_u16* batch);

extern "C" __global__ void vt_postprocess_f32(const VtPostBatch b, const float* batch) {
    vt_postprocess<VT_M_LINEAR, false>(b, batch);
}

extern "C" __global__ void vt_postprocess_f16(const VtPostBatch b, const vt_u16* batch) {
    vt_postprocess<VT_M_LINEAR, false>(b, batch);
}

extern "C" __global__ void vt_postprocess_up2_f32(const VtPostBatch b, const float* batch) {
    vt_postprocess<VT_M_LINEAR, true>(b, batch);
}

extern "C" __global__ void vt_postprocess_up2_f16(const VtPostBatch b, const vt_u16* batch) {
    vt_postprocess<VT_M_LINEAR, true>(b, batch);
}

extern "C" __global__ void vt_postprocess_same_f32(const VtPostBatch b, const float* batch) {
    vt_postprocess_same(b, batch);
}

extern "C" __global__ void vt_postprocess_same_f16(const VtPostBatch b, const vt_u16* batch) {
    vt_postprocess_same(b, batch);
}

extern "C" __global__ void vt_postprocess_area_f32(const VtPostBatch b, const float* batch) {
    vt_postprocess<VT_M_AREA, false>(b, batch);
}

extern "C" __global__ void vt_postprocess_area_f16(const VtPostBatch b, const vt_u16* batch) {
    vt_postprocess<VT_M_AREA, false>(b, batch);
}
