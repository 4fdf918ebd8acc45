// vetrina preprocess: uint8 HWC images (1/3/4 channels, any row pitch) -> float32 or float16
// NCHW batch (N, 3, H, W). One thread per output pixel, all three channels; one launch covers
// up to VT_MAX_IMAGES images (grid z = image), described by value in the kernel parameters.
//
// Per output pixel (docs/kernels.md): inside the image's content box, resample its source box
// (mode: bilinear, area, integer box, OpenCV 8-bit bilinear; see resample.cuh), take the
// source channel of each output channel (gray replicated, alpha dropped, RGB<->BGR swap), then
// y = value * scale[c] + offset[c] in float32; outside the content box (letterbox bars) the
// value is pad[c], already in the output domain. float16 output rounds y to nearest even.
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

// One channel of a uint8 image, converted exactly to float.
struct VtU8Plane {
    const vt_u8* base;  // &img[0, 0, channel]
    vt_i64 row_pitch;
    int px_pitch;
    __device__ __forceinline__ int raw(int y, int x) const {
        return base[(vt_i64)y * row_pitch + (vt_i64)x * px_pitch];
    }
    __device__ __forceinline__ float at(int y, int x) const { return (float)raw(y, x); }
};

// OpenCV INTER_LINEAR 8U taps (CPU: _u8_taps): scale = 1 / (D / S), f as bilinear, weights
// rint((1 - f) * 2048) and rint(f * 2048); along x the taps clamp f at the edges, along y only
// the row indices are clamped.
VT_DEV void vt_u8_taps(const VtAxis& ax, int v, bool clamp_weights, int* s0, int* s1, int* w0,
                       int* w1) {
    const int S = ax.slen;
    const double scale = 1.0 / ((double)ax.olen / (double)S);
    float f = (float)(((double)v + 0.5) * scale - 0.5);
    int s = (int)floor((double)f);
    f = f - (float)s;
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

template <typename T>
VT_DEV void vt_preprocess(const VtPreBatch& b, T* out, int H, int W) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int i = blockIdx.z;
    if (x >= W || y >= H) return;
    const VtPreImage& im = b.img[i];
    const vt_i64 plane = (vt_i64)H * W;
    T* o = out + (vt_i64)i * 3 * plane + (vt_i64)y * W + x;
    const int vy = y - im.y.o0, vx = x - im.x.o0;
    if (vy < 0 || vy >= im.y.olen || vx < 0 || vx >= im.x.olen) {
        vt_store(o, b.pad[0]);
        vt_store(o + plane, b.pad[1]);
        vt_store(o + 2 * plane, b.pad[2]);
        return;
    }
    float v[3];
    if (im.mode == VT_M_LINEAR || im.mode == VT_M_AREA) {
        VtTaps ty, tx;
        vt_taps(im.mode, im.y, vy, &ty);
        vt_taps(im.mode, im.x, vx, &tx);
        for (int c = 0; c < 3; ++c) {
            const VtU8Plane p = {im.src + im.ch[c], im.row_pitch, im.px_pitch};
            v[c] = vt_sample<false>(p, im.y, ty, im.x, tx);
        }
    } else if (im.mode == VT_M_BOX || im.mode == VT_M_U8_2X) {
        // exact integer block sums: the summation order is free
        const int kx = im.mode == VT_M_BOX ? im.kx : 2, ky = im.mode == VT_M_BOX ? im.ky : 2;
        const int y0 = im.y.s0 + ky * vy, x0 = im.x.s0 + kx * vx;
        for (int c = 0; c < 3; ++c) {
            const VtU8Plane p = {im.src + im.ch[c], im.row_pitch, im.px_pitch};
            vt_u32 t = 0;
            for (int r = 0; r < ky; ++r) {
                for (int k = 0; k < kx; ++k) t += (vt_u32)p.raw(y0 + r, x0 + k);
            }
            v[c] = im.mode == VT_M_BOX ? (float)t * im.q : (float)((t + 2u) >> 2);
        }
    } else {  // VT_M_U8
        int ys0, ys1, yb0, yb1, xs0, xs1, xb0, xb1;
        vt_u8_taps(im.y, vy, false, &ys0, &ys1, &yb0, &yb1);
        vt_u8_taps(im.x, vx, true, &xs0, &xs1, &xb0, &xb1);
        ys0 += im.y.s0;
        ys1 += im.y.s0;
        xs0 += im.x.s0;
        xs1 += im.x.s0;
        for (int c = 0; c < 3; ++c) {
            const VtU8Plane p = {im.src + im.ch[c], im.row_pitch, im.px_pitch};
            const int h0 = p.raw(ys0, xs0) * xb0 + p.raw(ys0, xs1) * xb1;
            const int h1 = p.raw(ys1, xs0) * xb0 + p.raw(ys1, xs1) * xb1;
            int r = (((yb0 * (h0 >> 4)) >> 16) + ((yb1 * (h1 >> 4)) >> 16) + 2) >> 2;
            v[c] = (float)(r > 255 ? 255 : r);
        }
    }
    vt_store(o, v[0] * b.scale[0] + b.offset[0]);
    vt_store(o + plane, v[1] * b.scale[1] + b.offset[1]);
    vt_store(o + 2 * plane, v[2] * b.scale[2] + b.offset[2]);
}

extern "C" __global__ void vt_preprocess_f32(const VtPreBatch b, float* out, int H, int W) {
    vt_preprocess(b, out, H, W);
}

extern "C" __global__ void vt_preprocess_f16(const VtPreBatch b, vt_u16* out, int H, int W) {
    vt_preprocess(b, out, H, W);
}
