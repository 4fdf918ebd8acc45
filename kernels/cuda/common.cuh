// vetrina CUDA kernels: shared definitions (compiled by NVRTC, see kernels/gpu.py).
//
// Numerics contract: docs/kernels.md. Every rule here mirrors the CPU kernels
// (kernels/_cpu.pyx) operation for operation: tap coordinates in double rounded once to
// float32, pixel arithmetic in float32 in the same order. The sources are compiled with
// --fmad=false (no contraction into FMA), --ftz=false and IEEE division, so each float
// operation rounds exactly like the CPU build (-ffp-contract=off) and results are equal bit
// for bit wherever the CPU kernel's order is followed.
//
// No CUDA headers are included: NVRTC from the nvidia-cuda-nvrtc wheel ships none, so float16
// conversions are written here (PTX cvt on the device, bit manipulation elsewhere).
#pragma once

typedef unsigned char vt_u8;
typedef unsigned short vt_u16;
typedef unsigned int vt_u32;
typedef long long vt_i64;

#define VT_DEV static __device__ __forceinline__

// Largest number of images one launch describes; the launcher splits larger batches. The
// per-image descriptors travel by value in the kernel parameters (under the 4 KiB limit).
#define VT_MAX_IMAGES 32

// Layout checks: kernels/gpu.py packs these structs byte for byte (struct.Struct formats with
// the same offsets), so every offset it relies on is asserted here at compile time. NVRTC
// before 13.5 has no __builtin_offsetof: there the offsets are checked by the host build of
// these sources (CI's emulation tests, g++), and sizes still by NVRTC.
#ifdef __CUDACC_RTC__
#define VT_AT(T, field, off) static_assert(true, "")
#else
#define VT_AT(T, field, off) \
    static_assert(__builtin_offsetof(T, field) == (off), #T "." #field " must be at " #off)
#endif
#define VT_SIZE(T, n) static_assert(sizeof(T) == (n), "sizeof(" #T ") must be " #n)

// ---------------------------------------------------------------------------------------------
// float16 <-> float32, round to nearest even (numpy's astype(float16) and __float2half_rn)
// ---------------------------------------------------------------------------------------------

VT_DEV vt_u16 vt_f2h(float f) {
#ifdef __CUDA_ARCH__
    vt_u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#else
    vt_u32 x;
    __builtin_memcpy(&x, &f, 4);
    vt_u32 sign = (x >> 16) & 0x8000u;
    vt_u32 mag = x & 0x7fffffffu;
    if (mag > 0x7f800000u) return (vt_u16)(sign | 0x7e00u);  // NaN (quiet)
    if (mag >= 0x477ff000u) return (vt_u16)(sign | 0x7c00u);  // rounds to >= 65520: inf
    if (mag >= 0x38800000u) {                                   // normal half
        vt_u32 r = mag - 0x38000000u;                            // rebias exponent 127 -> 15
        vt_u32 h = r >> 13, rem = r & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h += 1u;
        return (vt_u16)(sign | h);
    }
    if (mag < 0x33000000u) return (vt_u16)sign;                 // below half the smallest subnormal
    vt_u32 e = mag >> 23, m = (mag & 0x7fffffu) | 0x800000u;
    vt_u32 shift = 126u - e;                                     // 14..24 (value = m * 2^(e-150))
    vt_u32 h = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (h & 1u))) h += 1u;
    return (vt_u16)(sign | h);
#endif
}

VT_DEV float vt_h2f(vt_u16 h) {
#ifdef __CUDA_ARCH__
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    vt_u32 sign = (vt_u32)(h & 0x8000u) << 16;
    vt_u32 e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0x1fu) {
        x = sign | 0x7f800000u | (m << 13);
    } else if (e != 0u) {
        x = sign | ((e + 112u) << 23) | (m << 13);
    } else if (m == 0u) {
        x = sign;
    } else {  // subnormal half: normalise
        e = 113u;
        while (!(m & 0x400u)) {
            m <<= 1;
            e -= 1u;
        }
        x = sign | (e << 23) | ((m & 0x3ffu) << 13);
    }
    float f;
    __builtin_memcpy(&f, &x, 4);
    return f;
#endif
}

// Loads and stores of one element of a float plane (float32 or float16 storage).
VT_DEV float vt_load(const float* p) { return *p; }
VT_DEV float vt_load(const vt_u16* p) { return vt_h2f(*p); }
VT_DEV void vt_store(float* p, float v) { *p = v; }
VT_DEV void vt_store(vt_u16* p, float v) { *p = vt_f2h(v); }

// float32 -> uint8: NaN -> 0, clamp to [0, 255], floor(v + 0.5) with a float32 addition.
VT_DEV vt_u8 vt_to_u8(float v) {
    const float zero = 0.0f, top = 255.0f, half = 0.5f;
    if (!(v >= zero)) {
        v = zero;
    } else if (v > top) {
        v = top;
    }
    return (vt_u8)(vt_u32)(v + half);  // v + 0.5 >= 0.5: truncation == floor
}

// ---------------------------------------------------------------------------------------------
// Geometry: how output index d of one axis maps onto the source
// ---------------------------------------------------------------------------------------------

// One axis of a placement. Output indices o0 <= d < o0 + olen show the source window
// [s0, s0 + slen) resampled to olen samples (virtual index v = d - o0); every other output
// index is padding. o0 may be negative and olen larger than the output (centre crop in the
// resized domain); slen < the source length is a crop in the source domain.
struct VtAxis {
    int s0, slen, o0, olen;
};
VT_SIZE(VtAxis, 16);

// OpenCV INTER_LINEAR pixel-centre taps for virtual index v of a src -> dst resize, exactly as
// the CPU's _axis_table: f = (float)((v + 0.5) * (src / dst) - 0.5) in double, s = floor(f),
// f -= s in float32, clamps at both ends. Returns the taps i0, i1 and the weight f of i1.
VT_DEV void vt_linear_tap(int src, int dst, int v, int* i0, int* i1, float* f) {
    double scale = (double)src / (double)dst;
    float ff = (float)(((double)v + 0.5) * scale - 0.5);
    int s = (int)floor((double)ff);
    ff = ff - (float)s;
    if (s < 0) {
        s = 0;
        ff = 0.0f;
    }
    if (s >= src - 1) {
        s = src - 1;
        ff = 0.0f;
    }
    *i0 = s;
    *i1 = s + 1 > src - 1 ? src - 1 : s + 1;
    *f = ff;
}
