// vetrina tiles: seamless blending of processed tiles back into one image (CPU:
// vetrina.kernels.TilePlan.blend). One launch; each thread takes one output column and `rows`
// consecutive rows (vt_rows_per_thread), all channels.
//
// Output pixel (Y, X), channel c: over the tiles that cover it, in row-major tile order,
//   w    = wy[i][Y - ys[i]] * wx[j][X - xs[j]]            (float32 feather weights)
//   acc  = acc + tile[k][Y - ys[i], X - xs[j], c] * w      (float32, from 0)
//   wsum = wsum + w
// then acc / wsum, stored as float32, float16 (nearest even) or uint8 (clamp to [0, 255],
// floor(v + 0.5)). The per-tile weight rows and the tile origins (already multiplied by the
// scale factor) come from the host: the CPU's own TilePlan.weights, so both sides use the same
// float32 weights. Tiles and output are addressed by element strides (HWC images or NCHW
// batches alike).
#include "common.cuh"

#define VT_KIND_F32 0
#define VT_KIND_F16 1
#define VT_KIND_U8 2

struct VtBlend {
    const void* tiles;     // tile k, row y, column x, channel c at k*tk + y*ty + x*tx + c*tc
    void* out;             // row y, column x, channel c at y*oy + x*ox + c*oc
    const float* wy;       // ny rows of TH weights
    const float* wx;       // nx rows of TW weights
    const int* ys;         // ny tile row origins (scaled)
    const int* xs;         // nx tile column origins (scaled)
    vt_i64 tk, ty, tx, tc;  // tile element strides
    vt_i64 oy, ox, oc;      // output element strides
    int ny, nx, TH, TW;    // tile grid and (scaled) tile size
    int OH, OW, C;         // (scaled) output size and channels
    int in_kind, out_kind;  // VT_KIND_*
    int pad_;
};
VT_AT(VtBlend, tk, 48);
VT_AT(VtBlend, oy, 80);
VT_AT(VtBlend, ny, 104);
VT_AT(VtBlend, OH, 120);
VT_AT(VtBlend, in_kind, 132);
VT_SIZE(VtBlend, 144);

VT_DEV float vt_load_px(const float* p) { return vt_ldg(p); }
VT_DEV float vt_load_px(const vt_u16* p) { return vt_h2f(vt_ldg(p)); }
VT_DEV float vt_load_px(const vt_u8* p) { return (float)vt_ldg(p); }
VT_DEV void vt_store_px(float* p, float v) { *p = v; }
VT_DEV void vt_store_px(vt_u16* p, float v) { *p = vt_f2h(v); }
VT_DEV void vt_store_px(vt_u8* p, float v) { *p = vt_to_u8(v); }

// Number of entries of the non-decreasing a[0 .. n-1] that are <= v.
VT_DEV int vt_count_le(const int* a, int n, int v) {
    int lo = 0, hi = n;
    while (lo < hi) {
        const int mid = (lo + hi) >> 1;
        if (vt_ldg(a + mid) <= v) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// The tiles covering output column X (or row): origins o[k] with o[k] <= X < o[k] + len form
// the contiguous range first .. last of the sorted origins (empty when last < first).
VT_DEV void vt_cover(const int* o, int n, int len, int X, int* first, int* last) {
    *first = vt_count_le(o, n, X - len);
    *last = vt_count_le(o, n, X) - 1;
}

// Thread: output column X, rows Ya .. Yb - 1. Only the (usually 1 to 4) tiles that cover a
// pixel are visited, in row-major tile order as the CPU: the column's tile range is found
// once, the row's is found for the first row and then walked along (warp-uniform).
template <typename TI, typename TO>
VT_DEV void vt_blend(const VtBlend& b, int X, int Ya, int Yb) {
    const TI* tiles = (const TI*)b.tiles;
    TO* out = (TO*)b.out;
    int j0, j1, i0, i1;
    vt_cover(b.xs, b.nx, b.TW, X, &j0, &j1);
    vt_cover(b.ys, b.ny, b.TH, Ya, &i0, &i1);
    for (int Y = Ya; Y < Yb; ++Y) {
        // the row range only moves forward with Y (the same counts as vt_cover)
        while (i1 + 1 < b.ny && vt_ldg(b.ys + i1 + 1) <= Y) ++i1;
        while (i0 < b.ny && vt_ldg(b.ys + i0) <= Y - b.TH) ++i0;
        for (int c0 = 0; c0 < b.C; c0 += 4) {  // up to 4 channels per pass over the tiles
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            float wsum = 0.0f;
            for (int i = i0; i <= i1; ++i) {
                const int yy = Y - vt_ldg(b.ys + i);
                const float wyv = vt_ldg(b.wy + (vt_i64)i * b.TH + yy);
                for (int j = j0; j <= j1; ++j) {
                    const int xx = X - vt_ldg(b.xs + j);
                    const float wv = wyv * vt_ldg(b.wx + (vt_i64)j * b.TW + xx);
                    const TI* t = tiles + (vt_i64)(i * b.nx + j) * b.tk + (vt_i64)yy * b.ty +
                                  (vt_i64)xx * b.tx + (vt_i64)c0 * b.tc;
                    VT_UNROLL
                    for (int k = 0; k < 4; ++k) {
                        if (c0 + k < b.C) acc[k] = acc[k] + vt_load_px(t + k * b.tc) * wv;
                    }
                    wsum = wsum + wv;
                }
            }
            TO* o = out + (vt_i64)Y * b.oy + (vt_i64)X * b.ox + (vt_i64)c0 * b.oc;
            VT_UNROLL
            for (int k = 0; k < 4; ++k) {
                if (c0 + k < b.C) vt_store_px(o + k * b.oc, acc[k] / wsum);
            }
        }
    }
}

template <typename TI>
VT_DEV void vt_blend_out(const VtBlend& b, int X, int Ya, int Yb) {
    if (b.out_kind == VT_KIND_F32) {
        vt_blend<TI, float>(b, X, Ya, Yb);
    } else if (b.out_kind == VT_KIND_F16) {
        vt_blend<TI, vt_u16>(b, X, Ya, Yb);
    } else {
        vt_blend<TI, vt_u8>(b, X, Ya, Yb);
    }
}

extern "C" __global__ void vt_tile_blend(const VtBlend b) {
    const int X = blockIdx.x * blockDim.x + threadIdx.x;
    const int rows = vt_rows_per_thread(b.OH);
    const int Ya = (int)(blockIdx.y * blockDim.y + threadIdx.y) * rows;
    if (X >= b.OW || Ya >= b.OH) return;
    const int Yb = vt_imin(Ya + rows, b.OH);
    if (b.in_kind == VT_KIND_F32) {
        vt_blend_out<float>(b, X, Ya, Yb);
    } else if (b.in_kind == VT_KIND_F16) {
        vt_blend_out<vt_u16>(b, X, Ya, Yb);
    } else {
        vt_blend_out<vt_u8>(b, X, Ya, Yb);
    }
}
