// vetrina postprocess: float32 or float16 NCHW batch (N, 3, H, W) -> uint8 HWC images
// (h, w, 3), or (h, w, 4) with an alpha plane appended. One thread per output pixel; one
// launch covers up to VT_MAX_IMAGES images (grid z = image).
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

template <typename T>
VT_DEV void vt_postprocess(const VtPostBatch& b, const T* batch) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int i = blockIdx.z;
    const VtPostImage& im = b.img[i];
    if (x >= im.w || y >= im.h) return;
    vt_u8* o = im.dst + (vt_i64)y * im.row_pitch + (vt_i64)x * im.nout;
    if (im.nout == 4) o[3] = im.alpha[(vt_i64)y * im.alpha_pitch + x];
    const int vy = y - im.y.o0, vx = x - im.x.o0;
    if (vy < 0 || vy >= im.y.olen || vx < 0 || vx >= im.x.olen) {
        o[0] = im.fill[0];
        o[1] = im.fill[1];
        o[2] = im.fill[2];
        return;
    }
    VtTaps ty, tx;
    vt_taps(b.mode, im.y, vy, &ty);
    vt_taps(b.mode, im.x, vx, &tx);
    const T* base = batch + (vt_i64)i * b.sn;
    for (int k = 0; k < 3; ++k) {
        VtPlane<T> p = {base + (vt_i64)b.bc[k] * b.sc, b.sh};
        const float v = vt_sample<true>(p, im.y, ty, im.x, tx);
        o[k] = vt_to_u8(v * b.scale[k] + b.offset[k]);
    }
}

extern "C" __global__ void vt_postprocess_f32(const VtPostBatch b, const float* batch) {
    vt_postprocess(b, batch);
}

extern "C" __global__ void vt_postprocess_f16(const VtPostBatch b, const vt_u16* batch) {
    vt_postprocess(b, batch);
}
