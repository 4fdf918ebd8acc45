// vetrina tiles: seamless blending of processed tiles back into one image (CPU:
// vetrina.kernels.TilePlan.blend). One thread per output pixel, all channels; one launch.
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

VT_DEV float vt_load_kind(const void* base, vt_i64 at, int kind) {
    if (kind == VT_KIND_F32) return ((const float*)base)[at];
    if (kind == VT_KIND_F16) return vt_h2f(((const vt_u16*)base)[at]);
    return (float)((const vt_u8*)base)[at];
}

VT_DEV void vt_store_kind(void* base, vt_i64 at, int kind, float v) {
    if (kind == VT_KIND_F32) {
        ((float*)base)[at] = v;
    } else if (kind == VT_KIND_F16) {
        ((vt_u16*)base)[at] = vt_f2h(v);
    } else {
        ((vt_u8*)base)[at] = vt_to_u8(v);
    }
}

extern "C" __global__ void vt_tile_blend(const VtBlend b) {
    const int X = blockIdx.x * blockDim.x + threadIdx.x;
    const int Y = blockIdx.y * blockDim.y + threadIdx.y;
    if (X >= b.OW || Y >= b.OH) return;
    for (int c = 0; c < b.C; ++c) {
        float acc = 0.0f, wsum = 0.0f;
        for (int i = 0; i < b.ny; ++i) {
            const int yy = Y - b.ys[i];
            if (yy < 0 || yy >= b.TH) continue;
            const float wyv = b.wy[(vt_i64)i * b.TH + yy];
            for (int j = 0; j < b.nx; ++j) {
                const int xx = X - b.xs[j];
                if (xx < 0 || xx >= b.TW) continue;
                const float w = wyv * b.wx[(vt_i64)j * b.TW + xx];
                const vt_i64 at = (vt_i64)(i * b.nx + j) * b.tk + (vt_i64)yy * b.ty +
                                  (vt_i64)xx * b.tx + (vt_i64)c * b.tc;
                acc = acc + vt_load_kind(b.tiles, at, b.in_kind) * w;
                wsum = wsum + w;
            }
        }
        vt_store_kind(b.out, (vt_i64)Y * b.oy + (vt_i64)X * b.ox + (vt_i64)c * b.oc, b.out_kind,
                      acc / wsum);
    }
}
