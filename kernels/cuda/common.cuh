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
typedef unsigned long long vt_u64;

#define VT_DEV static __device__ __forceinline__

// Register caps (__launch_bounds__) go on a separate declaration of a kernel, so that the
// definition keeps the `extern "C" __global__ void name(` form that kernels/gpu.py's
// kernel_names() reads. The host emulation has no such attribute.
#ifndef __CUDACC__
#define __launch_bounds__(...)
#endif

// Full unrolling of the small fixed-count loops that index register arrays (NVRTC); the host
// build of the emulation tests has no such pragma and needs none.
#ifdef __CUDACC__
#define VT_UNROLL _Pragma("unroll")
#else
#define VT_UNROLL
#endif

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

// ---------------------------------------------------------------------------------------------
// Memory access and bit helpers (device intrinsics; plain C++ in the host emulation)
// ---------------------------------------------------------------------------------------------

// Read-only loads through the non-coherent cache: every kernel's inputs are constant for the
// whole launch and never alias its outputs.
template <typename T>
VT_DEV T vt_ldg(const T* p) {
#ifdef __CUDA_ARCH__
    return __ldg(p);
#else
    return *p;
#endif
}

// The 4-byte word at a 4-byte aligned address.
VT_DEV vt_u32 vt_ldg_word(const vt_u8* p) {
#ifdef __CUDA_ARCH__
    return __ldg((const vt_u32*)p);
#else
    vt_u32 w;
    __builtin_memcpy(&w, p, 4);
    return w;
#endif
}

VT_DEV void vt_store_word(vt_u8* p, vt_u32 w) {
#ifdef __CUDA_ARCH__
    *(vt_u32*)p = w;
#else
    __builtin_memcpy(p, &w, 4);
#endif
}

// Bytes m .. m + 3 (m in 0..3) of the 8-byte value hi:lo.
VT_DEV vt_u32 vt_funnel(vt_u32 lo, vt_u32 hi, int m) {
#ifdef __CUDA_ARCH__
    return __funnelshift_r(lo, hi, 8 * m);
#else
    return m ? (lo >> (8 * m)) | (hi << (32 - 8 * m)) : lo;
#endif
}

VT_DEV float vt_bits_f(vt_u32 x) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(x);
#else
    float f;
    __builtin_memcpy(&f, &x, 4);
    return f;
#endif
}

// Byte k (0..3) of w as a float, exactly (float)byte: the float with bits 0x4B0000bb is
// 2^23 + bb, and subtracting 2^23 is exact. Cheaper than an int -> float conversion.
VT_DEV float vt_byte_f(vt_u32 w, int k) {
#ifdef __CUDA_ARCH__
    const vt_u32 bits = __byte_perm(w, 0x4B000000u, 0x7540u | (vt_u32)k);
#else
    const vt_u32 bits = 0x4B000000u | ((w >> (8 * k)) & 0xffu);
#endif
    return vt_bits_f(bits) - 8388608.0f;
}

// Byte k (0..3) of w.
VT_DEV vt_u32 vt_byte(vt_u32 w, int k) { return (w >> (8 * k)) & 0xffu; }

// w with byte k (0..3) replaced by the low byte of v.
VT_DEV vt_u32 vt_put_byte(vt_u32 w, int k, vt_u32 v) {
#ifdef __CUDA_ARCH__
    return __byte_perm(w, v, k == 0 ? 0x3214u : (k == 1 ? 0x3240u : (k == 2 ? 0x3410u : 0x4210u)));
#else
    return (w & ~(0xffu << (8 * k))) | (v & 0xffu) << (8 * k);
#endif
}

VT_DEV int vt_imin(int a, int b) { return a < b ? a : b; }

// Rows per thread of a launch: the launcher shrinks grid y so that each thread takes
// `rows` consecutive output rows (kernels/gpu.py, _grid); h is the image's height.
VT_DEV int vt_rows_per_thread(int h) {
    const int span = (int)(gridDim.y * blockDim.y);
    return (h + span - 1) / span;
}

// Loads and stores of one element of a float plane (float32 or float16 storage).
VT_DEV float vt_load(const float* p) { return vt_ldg(p); }
VT_DEV float vt_load(const vt_u16* p) { return vt_h2f(vt_ldg(p)); }
// Four adjacent elements in one vector load; p aligned to 4 elements (16 / 8 bytes).
VT_DEV void vt_load4(const float* p, float* v) {
#ifdef __CUDA_ARCH__
    asm("ld.global.nc.v4.f32 {%0, %1, %2, %3}, [%4];"
        : "=f"(v[0]), "=f"(v[1]), "=f"(v[2]), "=f"(v[3])
        : "l"(p));
#else
    __builtin_memcpy(v, p, 16);
#endif
}
VT_DEV void vt_load4(const vt_u16* p, float* v) {
    vt_u32 lo, hi;
#ifdef __CUDA_ARCH__
    asm("ld.global.nc.v2.u32 {%0, %1}, [%2];" : "=r"(lo), "=r"(hi) : "l"(p));
#else
    __builtin_memcpy(&lo, p, 4);
    __builtin_memcpy(&hi, p + 2, 4);
#endif
    v[0] = vt_h2f((vt_u16)(lo & 0xffffu));
    v[1] = vt_h2f((vt_u16)(lo >> 16));
    v[2] = vt_h2f((vt_u16)(hi & 0xffffu));
    v[3] = vt_h2f((vt_u16)(hi >> 16));
}
// Four adjacent elements in one vector store (vt_store's rounding); p aligned to 4 elements.
// No "memory" clobber: the kernels' inputs never alias their outputs, so loads may move
// across these stores.
VT_DEV void vt_store4(float* p, const float* v) {
#ifdef __CUDA_ARCH__
    asm volatile("st.global.v4.f32 [%0], {%1, %2, %3, %4};"
                 :
                 : "l"(p), "f"(v[0]), "f"(v[1]), "f"(v[2]), "f"(v[3]));
#else
    __builtin_memcpy(p, v, 16);
#endif
}
VT_DEV void vt_store4(vt_u16* p, const float* v) {
    const vt_u32 lo = (vt_u32)vt_f2h(v[0]) | (vt_u32)vt_f2h(v[1]) << 16;
    const vt_u32 hi = (vt_u32)vt_f2h(v[2]) | (vt_u32)vt_f2h(v[3]) << 16;
#ifdef __CUDA_ARCH__
    asm volatile("st.global.v2.u32 [%0], {%1, %2};" : : "l"(p), "r"(lo), "r"(hi));
#else
    __builtin_memcpy(p, &lo, 4);
    __builtin_memcpy(p + 2, &hi, 4);
#endif
}
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

// vt_to_u8 in the low byte of the result (the other bytes are arbitrary), without the
// float -> int conversion on the device: fmaxf/fminf give the same clamp (NaN -> 0, and -0
// is harmless: -0 + 0.5 == 0.5); s = v + 0.5 lies in [0.5, 255.5], where adding 2^23 rounded
// down is exactly 2^23 + floor(s), whose float bits are 0x4B000000 + floor(s).
VT_DEV vt_u32 vt_to_u8_bits(float v) {
#ifdef __CUDA_ARCH__
    const float s = fminf(fmaxf(v, 0.0f), 255.0f) + 0.5f;
    return __float_as_uint(__fadd_rd(s, 8388608.0f));
#else
    return vt_to_u8(v);
#endif
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
