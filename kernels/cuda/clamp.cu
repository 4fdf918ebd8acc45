// vetrina clamp: in-place per-channel clamp of a C-contiguous float32/float16 (N, C, H, W)
// batch, the GPU twin of the np.clip(batch, lo, hi, out=batch) that runs between pipeline
// stages (engine/stages.py, Handoff.apply). Grid y strides over the N * C planes (the channel
// and its bounds are fixed per plane), grid x and the block's threads stride over a plane's
// H * W elements: adjacent threads take adjacent elements.
//
// Per element x of channel c, v = x as float32 (float16: widened, exactly), NumPy's clip bit for
// bit (kernels/gpu.py, clamp_async):
//   take == 0:  v < lo[c] -> lower bound;  else v > hi[c] -> upper bound;  else x untouched
//   take == 1:  v >= hi[c] -> upper bound; else v <= lo[c] -> lower bound; else x untouched
// The stored bound is lo/hi (float32) or lo_h/hi_h (float16 bits). NaN is never written (every
// comparison is false): its bits stay. The two modes differ only for a value equal to a bound
// (where only the sign of a zero can change): NumPy's loop for bounds that are constant over
// the batch (scalars) keeps the element (-0 stays -0 with lo = +0), its general loop
// (per-channel bounds broadcast as [:, None, None]) stores the bound (-0 becomes +0; with
// lo == hi, hi). The launcher guarantees lo[c] <= hi[c] (and, for take == 1, lo's bits = hi's
// where they are equal) and picks the comparison bounds like NumPy's type promotion: float16
// with scalar bounds compares with their float16 roundings, otherwise in float32 and a clamped
// float16 element gets the bound rounded to float16.
#include "common.cuh"

#define VT_CLAMP_MAX_CHANNELS 64

struct VtClamp {
    vt_i64 planes;                       // N * C
    vt_i64 hw;                           // H * W: elements of one plane
    int c;                               // channels
    int take;                            // 1: an element equal to a bound becomes the bound
    float lo[VT_CLAMP_MAX_CHANNELS];     // comparison bounds per channel
    float hi[VT_CLAMP_MAX_CHANNELS];
    vt_u16 lo_h[VT_CLAMP_MAX_CHANNELS];  // float16 bits stored for a clamped float16 element
    vt_u16 hi_h[VT_CLAMP_MAX_CHANNELS];
};
VT_AT(VtClamp, hw, 8);
VT_AT(VtClamp, c, 16);
VT_AT(VtClamp, take, 20);
VT_AT(VtClamp, lo, 24);
VT_AT(VtClamp, hi, 280);
VT_AT(VtClamp, lo_h, 536);
VT_AT(VtClamp, hi_h, 664);
VT_SIZE(VtClamp, 792);

// The element as float32 (plain loads: the kernel writes what it reads, so no __ldg).
VT_DEV float vt_clamp_value(float x) { return x; }
VT_DEV float vt_clamp_value(vt_u16 x) { return vt_h2f(x); }

// The bounds stored into a clamped element of channel c.
VT_DEV void vt_clamp_store_bounds(const VtClamp& a, int c, float* lo, float* hi) {
    *lo = a.lo[c];
    *hi = a.hi[c];
}
VT_DEV void vt_clamp_store_bounds(const VtClamp& a, int c, vt_u16* lo, vt_u16* hi) {
    *lo = a.lo_h[c];
    *hi = a.hi_h[c];
}

// Grid y strides over the planes, the grid's x threads over each plane's elements.
template <bool TAKE, typename T>
VT_DEV void vt_clamp(const VtClamp& a, T* x) {
    const vt_i64 per_block = (vt_i64)blockDim.x * blockDim.y;
    const vt_i64 first = (vt_i64)blockIdx.x * per_block + threadIdx.y * blockDim.x + threadIdx.x;
    const vt_i64 step = (vt_i64)gridDim.x * per_block;
    for (vt_i64 p = blockIdx.y; p < a.planes; p += gridDim.y) {
        const int c = (int)(p % a.c);
        const float lo = a.lo[c], hi = a.hi[c];
        T slo, shi;
        vt_clamp_store_bounds(a, c, &slo, &shi);
        T* plane = x + p * a.hw;
        for (vt_i64 i = first; i < a.hw; i += step) {
            const float v = vt_clamp_value(plane[i]);
            if (TAKE) {
                if (v >= hi) {
                    plane[i] = shi;
                } else if (v <= lo) {
                    plane[i] = slo;
                }
            } else if (v < lo) {
                plane[i] = slo;
            } else if (v > hi) {
                plane[i] = shi;
            }
        }
    }
}

template <typename T>
VT_DEV void vt_clamp_any(const VtClamp& a, T* x) {
    if (a.take) {
        vt_clamp<true>(a, x);
    } else {
        vt_clamp<false>(a, x);
    }
}

extern "C" __global__ void vt_clamp_f32(const VtClamp a, float* x) { vt_clamp_any(a, x); }
extern "C" __global__ void vt_clamp_f16(const VtClamp a, vt_u16* x) { vt_clamp_any(a, x); }
