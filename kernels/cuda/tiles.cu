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

// One output pixel (Y, X), channels c0 .. c0 + 3 (those < C), over tile rows i0 .. i1 and
// tile columns j0 .. j1: the general loop, for plans whose tiles overlap three deep.
template <typename TI, typename TO>
VT_DEV void vt_blend_any(const VtBlend& b, int X, int Y, int i0, int i1, int j0, int j1, int c0) {
    const TI* tiles = (const TI*)b.tiles;
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
    TO* o = (TO*)b.out + (vt_i64)Y * b.oy + (vt_i64)X * b.ox + (vt_i64)c0 * b.oc;
    VT_UNROLL
    for (int k = 0; k < 4; ++k) {
        if (c0 + k < b.C) vt_store_px(o + k * b.oc, acc[k] / wsum);
    }
}

// Thread: output column X, rows Ya .. Yb - 1. Only the tiles that cover a pixel are visited,
// in row-major tile order as the CPU. The column's tiles (at most two in a plan whose overlap
// is under half a tile) and their x weights are found once; the row's tile range is found for
// the first row and then walked along (warp-uniform), and the two tile rows' element and
// weight pointers step by one row per output row. Per row, the loads of all (up to 2 x 2)
// covering tiles are unconditional (an absent second tile reads the first one's address) and
// issue together, for RGB those of two rows at once where the next row has the same tiles; the sums keep the CPU's order, (i0, j0), (i0, j1), (i1, j0), (i1, j1), and
// add absent tiles' terms not at all (selected away, not multiplied by 0, so that NaN and inf
// stay where the CPU has them). NC: the channel count (3), or 0 for any (b.C).
template <typename TI, typename TO, int NC>
VT_DEV void vt_blend(const VtBlend& b, int X, int Ya, int Yb) {
    const TI* tiles = (const TI*)b.tiles;
    const int C = NC > 0 ? NC : b.C;
    int j0, j1, i0, i1;
    vt_cover(b.xs, b.nx, b.TW, X, &j0, &j1);
    vt_cover(b.ys, b.ny, b.TH, Ya, &i0, &i1);
    const bool cols_ok = j0 <= j1 && j1 - j0 <= 1;  // else every row takes the general loop
    const bool two_x = cols_ok && j1 > j0;
    // per covering tile column: x weight and the element offset of column X in the tile
    const int xxa = cols_ok ? X - vt_ldg(b.xs + j0) : 0;
    const int xxb = two_x ? X - vt_ldg(b.xs + j0 + 1) : 0;
    const float wxa = cols_ok ? vt_ldg(b.wx + (vt_i64)j0 * b.TW + xxa) : 0.0f;
    const float wxb = two_x ? vt_ldg(b.wx + (vt_i64)(j0 + 1) * b.TW + xxb) : 0.0f;
    const vt_i64 cb = two_x ? b.tk + (vt_i64)(xxb - xxa) * b.tx : 0;  // tile (.., j0 + 1) - (.., j0)
    TO* o = (TO*)b.out + (vt_i64)Ya * b.oy + (vt_i64)X * b.ox;
    // the current tile rows: where the range moves next, and per tile row the element of
    // (row Y, column X) and the y weight of row Y
    int next_in = 0, ys0 = 0;
    bool two_y = false;
    const TI *ta = tiles, *tb = tiles;
    const float *pya = b.wy, *pyb = b.wy;
    bool moved = true;
    // (the pointers step with every row, also one the general loop takes: a row range that
    // becomes usable again has moved, and recomputes them)
    for (int Y = Ya; Y < Yb; ++Y, o += b.oy, ta += b.ty, tb += b.ty, ++pya, ++pyb) {
        if (!moved && (Y >= next_in || Y - b.TH >= ys0)) {
            // the row range only moves forward with Y (the same counts as vt_cover)
            while (i1 + 1 < b.ny && vt_ldg(b.ys + i1 + 1) <= Y) ++i1;
            while (i0 < b.ny && vt_ldg(b.ys + i0) <= Y - b.TH) ++i0;
            moved = true;
        }
        if (moved) {
            moved = false;
            next_in = i1 + 1 < b.ny ? vt_ldg(b.ys + i1 + 1) : b.OH;
            ys0 = i0 < b.ny ? vt_ldg(b.ys + i0) : b.OH;
            const int ys1 = i1 >= 0 ? vt_ldg(b.ys + i1) : 0;
            two_y = i1 > i0;
            if (cols_ok && i0 <= i1 && i1 - i0 <= 1) {
                const int ia = i0, ib = two_y ? i1 : i0, yya = Y - ys0, yyb = two_y ? Y - ys1 : yya;
                ta = tiles + ((vt_i64)ia * b.nx + j0) * b.tk + (vt_i64)yya * b.ty + (vt_i64)xxa * b.tx;
                tb = tiles + ((vt_i64)ib * b.nx + j0) * b.tk + (vt_i64)yyb * b.ty + (vt_i64)xxa * b.tx;
                pya = b.wy + (vt_i64)ia * b.TH + yya;
                pyb = b.wy + (vt_i64)ib * b.TH + yyb;
            }
        }
        if (!cols_ok || i1 < i0 || i1 - i0 > 1) {  // three tiles deep (or none): general loop
            for (int c0 = 0; c0 < b.C; c0 += 4) vt_blend_any<TI, TO>(b, X, Y, i0, i1, j0, j1, c0);
            continue;
        }
        if (NC > 0) {
            // two rows at once where the next row has the same tiles: all their loads first
            const int R = Y + 1 < Yb && Y + 1 < next_in && Y + 1 - b.TH < ys0 ? 2 : 1;
            float wgt[2][4], v[2][NC > 0 ? NC : 1][4];
            VT_UNROLL
            for (int r = 0; r < 2; ++r) {
                if (r >= R) break;
                const float wya = vt_ldg(pya + r), wyb = vt_ldg(pyb + r);
                wgt[r][0] = wya * wxa;
                wgt[r][1] = wya * wxb;
                wgt[r][2] = wyb * wxa;
                wgt[r][3] = wyb * wxb;
                VT_UNROLL
                for (int k = 0; k < NC; ++k) {
                    const vt_i64 e = (vt_i64)k * b.tc + r * b.ty;
                    v[r][k][0] = vt_load_px(ta + e);
                    v[r][k][1] = vt_load_px(ta + cb + e);
                    v[r][k][2] = vt_load_px(tb + e);
                    v[r][k][3] = vt_load_px(tb + cb + e);
                }
            }
            VT_UNROLL
            for (int r = 0; r < 2; ++r) {
                if (r >= R) break;
                // the products and their sum in the CPU's order (absent tiles add nothing)
                const float w00 = wgt[r][0], w01 = wgt[r][1], w10 = wgt[r][2], w11 = wgt[r][3];
                float wsum = 0.0f + w00;
                wsum = two_x ? wsum + w01 : wsum;
                wsum = two_y ? wsum + w10 : wsum;
                wsum = two_x && two_y ? wsum + w11 : wsum;
                VT_UNROLL
                for (int k = 0; k < NC; ++k) {
                    float acc = 0.0f + v[r][k][0] * w00;
                    acc = two_x ? acc + v[r][k][1] * w01 : acc;
                    acc = two_y ? acc + v[r][k][2] * w10 : acc;
                    acc = two_x && two_y ? acc + v[r][k][3] * w11 : acc;
                    vt_store_px(o + r * b.oy + (vt_i64)k * b.oc, acc / wsum);
                }
            }
            if (R == 2) {  // the second row is done too: step past it
                ++Y;
                o += b.oy;
                ta += b.ty;
                tb += b.ty;
                ++pya;
                ++pyb;
            }
            continue;
        }
        const float wya = vt_ldg(pya), wyb = vt_ldg(pyb);
        // the products and their sum in the CPU's order (absent tiles add nothing)
        const float w00 = wya * wxa, w01 = wya * wxb, w10 = wyb * wxa, w11 = wyb * wxb;
        float wsum = 0.0f + w00;
        wsum = two_x ? wsum + w01 : wsum;
        wsum = two_y ? wsum + w10 : wsum;
        wsum = two_x && two_y ? wsum + w11 : wsum;
        for (int k = 0; k < C; ++k) {
            const vt_i64 e = (vt_i64)k * b.tc;
            const float v00 = vt_load_px(ta + e), v01 = vt_load_px(ta + cb + e);
            const float v10 = vt_load_px(tb + e), v11 = vt_load_px(tb + cb + e);
            float acc = 0.0f + v00 * w00;
            acc = two_x ? acc + v01 * w01 : acc;
            acc = two_y ? acc + v10 * w10 : acc;
            acc = two_x && two_y ? acc + v11 * w11 : acc;
            vt_store_px(o + (vt_i64)k * b.oc, acc / wsum);
        }
    }
}

// One kernel per storage type of the tiles and the output (the same type: kernels/gpu.py
// picks by name; in_kind and out_kind say which). Capped at 80 registers (3 blocks of 256
// threads per SM), which two RGB rows' loads in flight need without spilling.
template <typename T>
VT_DEV void vt_tile_blend(const VtBlend& b) {
    const int X = blockIdx.x * blockDim.x + threadIdx.x;
    const int rows = vt_rows_per_thread(b.OH);
    const int Ya = (int)(blockIdx.y * blockDim.y + threadIdx.y) * rows;
    if (X >= b.OW || Ya >= b.OH) return;
    const int Yb = vt_imin(Ya + rows, b.OH);
    if (b.C == 3) {  // RGB: the channel loop unrolled
        vt_blend<T, T, 3>(b, X, Ya, Yb);
    } else {
        vt_blend<T, T, 0>(b, X, Ya, Yb);
    }
}

extern "C" __launch_bounds__(256, 3) __global__ void vt_tile_blend_f32(const VtBlend b);
extern "C" __launch_bounds__(256, 3) __global__ void vt_tile_blend_f16(const VtBlend b);
extern "C" __launch_bounds__(256, 3) __global__ void vt_tile_blend_u8(const VtBlend b);

extern "C" __global__ void vt_tile_blend_f32(const VtBlend b) { vt_tile_blend<float>(b); }
extern "C" __global__ void vt_tile_blend_f16(const VtBlend b) { vt_tile_blend<vt_u16>(b); }
extern "C" __global__ void vt_tile_blend_u8(const VtBlend b) { vt_tile_blend<vt_u8>(b); }
