// vetrina adapt: float32/float16 NCHW batch -> float32/float16 NCHW batch between two stages
// whose contracts differ (value range, dtype, size, channel order or count). One thread per
// output pixel and all its channels; grid z = image.
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

template <typename TI, typename TO>
VT_DEV void vt_adapt(const VtAdapt& a, const TI* in, TO* out) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int i = blockIdx.z;
    const int h = a.y.olen, w = a.x.olen;
    if (x >= w || y >= h) return;
    VtTaps ty, tx;
    vt_taps(a.mode, a.y, y, &ty);
    vt_taps(a.mode, a.x, x, &tx);
    const vt_i64 plane = (vt_i64)h * w;
    TO* o = out + (vt_i64)i * a.cout * plane + (vt_i64)y * w + x;
    const TI* base = in + (vt_i64)i * a.sn;
    for (int k = 0; k < a.cout; ++k) {
        const VtAdaptPlane<TI> p = {base + (vt_i64)a.ch[k] * a.sc, a.sh};
        const float v = vt_sample<true>(p, a.y, ty, a.x, tx);
        vt_store(o + k * plane, v * a.scale[k] + a.offset[k]);
    }
}

extern "C" __global__ void vt_adapt_f32_f32(const VtAdapt a, const float* in, float* out) {
    vt_adapt(a, in, out);
}
extern "C" __global__ void vt_adapt_f32_f16(const VtAdapt a, const float* in, vt_u16* out) {
    vt_adapt(a, in, out);
}
extern "C" __global__ void vt_adapt_f16_f32(const VtAdapt a, const vt_u16* in, float* out) {
    vt_adapt(a, in, out);
}
extern "C" __global__ void vt_adapt_f16_f16(const VtAdapt a, const vt_u16* in, vt_u16* out) {
    vt_adapt(a, in, out);
}
