// vetrina CUDA kernels: resampling of one output sample, exactly as the CPU kernels do it.
//
// Separable modes (VT_M_LINEAR, VT_M_AREA) compute the taps of each axis per output index with
// the CPU's formulas (kernels/_cpu.pyx: _linear_taps, _area_taps), then sum in the CPU's
// order: along x for each tap row (a = p0*w0; a = a + pk*wk), then along y
// (v = h0*w0; v = v + hj*wj); for bilinear this is (p00*gx + p01*fx)*gy + (p10*gx + p11*fx)*fy.
// VT_M_BOX (area with integer factors) and VT_M_U8/VT_M_U8_2X (OpenCV's 8-bit bilinear) are
// the CPU's integer paths for uint8 sources.
//
// A sampler P has `float at(int y, int x) const` returning the source value at a row and
// column of the full source plane; the axis windows (VtAxis.s0) are added here. The kernels'
// fast paths use the same operations through VtWin (x) and a row loop mirroring vt_sample (y).
#pragma once
#include "common.cuh"

// Per-image resampling modes (the launcher picks one per image, as the CPU does).
#define VT_M_LINEAR 0  // float taps, bilinear
#define VT_M_AREA 1    // float taps, OpenCV INTER_AREA per axis (box down, 2-tap formula up)
#define VT_M_BOX 2     // uint8: integer sum of a kx x ky block times q (area, integer factors)
#define VT_M_U8 3      // uint8: OpenCV INTER_LINEAR 8U, 11-bit fixed-point weights
#define VT_M_U8_2X 4   // uint8: OpenCV's exact 2x INTER_LINEAR, (2x2 sum + 2) >> 2

VT_DEV int vt_rint(float f) {
#ifdef __CUDA_ARCH__
    return __float2int_rn(f);
#else
    return (int)__builtin_lrintf(f);
#endif
}

// The taps of one output index along one axis (window-relative source indices).
struct VtTaps {
    // two taps (bilinear, or area upscale): i0 with weight g, i1 with weight f; f == 0 means
    // a single tap (i1 == i0 then)
    int i0, i1;
    float f, g;
    // area downscale (first >= 0): taps first .. last - 1, weight wa for `first` when head,
    // wb for `last - 1` when tail, wm for the others (OpenCV's computeResizeAreaTab)
    int first, last, head, tail;
    float wa, wm, wb;
};

// The constants of one axis' tap formulas. The CPU's divisions (src / dst, dst / src, 1 / that)
// depend only on the axis, so each thread computes them once (the same double operations, so
// the same values) instead of once per sample: double division is slow on the GPU.
struct VtAxisK {
    int s0, S, o0, D;   // VtAxis: window start and length, content start and length
    double lin;         // (double)S / (double)D: bilinear (vt_linear_taps)
    double inv, scale;  // (double)D / (double)S and 1.0 / inv: area, OpenCV 8-bit bilinear
    float wfull;        // (float)(1.0 / scale): area downscale weight of a full cell
};

// Only the constants that `mode` (VT_M_*) uses are computed (the others are 0).
VT_DEV VtAxisK vt_axis_k(const VtAxis& a, int mode) {
    VtAxisK k;
    k.s0 = a.s0;
    k.S = a.slen;
    k.o0 = a.o0;
    k.D = a.olen;
    k.lin = k.inv = k.scale = 0.0;
    k.wfull = 0.0f;
    if (mode == VT_M_LINEAR) {
        k.lin = (double)a.slen / (double)a.olen;
    } else if (mode == VT_M_AREA || mode == VT_M_U8) {
        k.inv = (double)a.olen / (double)a.slen;
        k.scale = 1.0 / k.inv;
        if (mode == VT_M_AREA && a.slen >= a.olen) k.wfull = (float)(1.0 / k.scale);
    }
    return k;
}

// Source index s and the next one, weights 1 - f and f (f == 0: s alone, the next never read).
VT_DEV void vt_two_taps(VtTaps* t, int s, float f) {
    t->i0 = s;
    t->i1 = f != 0.0f ? s + 1 : s;
    t->f = f;
    t->g = 1.0f - f;
    t->first = -1;
}

// OpenCV INTER_LINEAR pixel-centre taps of virtual index v, exactly as the CPU's _axis_table:
// f = (float)((v + 0.5) * (src / dst) - 0.5) in double, s = floor(f), f -= s in float32,
// clamps at both ends (floorf of a float is exact: the same as floor((double)f)). Taps i0 with
// weight g = 1 - f and i1 with weight f.
VT_DEV void vt_linear_taps(const VtAxisK& k, int v, VtTaps* t) {
    float ff = (float)(((double)v + 0.5) * k.lin - 0.5);
    const float fl = floorf(ff);
    int s = (int)fl;
    ff = ff - fl;
    if (s < 0) {
        s = 0;
        ff = 0.0f;
    }
    if (s >= k.S - 1) {
        s = k.S - 1;
        ff = 0.0f;
    }
    vt_two_taps(t, s, ff);  // s + 1 <= S - 1 whenever ff != 0
}

// OpenCV INTER_AREA taps of output index v for one axis (CPU: _area_taps). Downscale
// (S >= D): the overlap of [v*scale, (v+1)*scale) with each source pixel over the cell width
// (slivers under 1e-3 dropped). Upscale: sx = floor(v*scale), fx = (v+1) - (sx+1)*inv,
// fx = fx <= 0 ? 0 : fx - floor(fx), clamped at the last pixel; taps sx (1-fx), sx+1 (fx).
// The edge weights wa (head) and wb (tail) are only computed where they are used; a full cell
// (cell == scale) takes the precomputed 1 / scale.
VT_DEV void vt_area_taps(const VtAxisK& k, int v, VtTaps* t) {
    const int S = k.S;
    const double scale = k.scale;
    if (S >= k.D) {
        const double fsx1 = (double)v * scale;
        const double fsx2 = fsx1 + scale;
        const double rest = (double)S - fsx1;
        const double cell = rest < scale ? rest : scale;
        int sx1 = (int)ceil(fsx1), sx2 = (int)floor(fsx2);
        sx2 = sx2 < S - 1 ? sx2 : S - 1;
        sx1 = sx1 < sx2 ? sx1 : sx2;
        t->head = sx1 - fsx1 > 1e-3;
        t->tail = fsx2 - sx2 > 1e-3;
        t->first = t->head ? sx1 - 1 : sx1;
        t->last = t->tail ? sx2 + 1 : sx2;
        t->wa = t->head ? (float)(((double)sx1 - fsx1) / cell) : 0.0f;
        t->wm = cell == scale ? k.wfull : (float)(1.0 / cell);
        if (t->tail) {
            double tail = fsx2 - (double)sx2;
            tail = tail < 1.0 ? tail : 1.0;
            tail = tail < cell ? tail : cell;
            t->wb = (float)(tail / cell);
        } else {
            t->wb = 0.0f;
        }
        if (t->last <= t->first) {  // cannot happen (a cell is >= 1 pixel); as the CPU
            t->first = sx1 < S - 1 ? sx1 : S - 1;
            t->last = t->first + 1;
            t->head = t->tail = 0;
            t->wm = 1.0f;
        }
        return;
    }
    int sx = (int)floor((double)v * scale);
    float fx = (float)((double)(v + 1) - (double)(sx + 1) * k.inv);
    if (fx <= 0.0f) {
        fx = 0.0f;
    } else {
        fx = fx - floorf(fx);
    }
    if (sx >= S - 1) {
        sx = S - 1;
        fx = 0.0f;
    }
    vt_two_taps(t, sx, fx);
}

VT_DEV void vt_taps(int mode, const VtAxisK& k, int v, VtTaps* t) {
    if (mode == VT_M_AREA) {
        vt_area_taps(k, v, t);
    } else {
        vt_linear_taps(k, v, t);
    }
}

VT_DEV float vt_area_weight(const VtTaps& t, int k) {
    if (t.head && k == t.first) return t.wa;
    if (t.tail && k == t.last - 1) return t.wb;
    return t.wm;
}

// The x-resampled value of absolute source row y. SKIP: a tap of weight 0 is not read
// (float sources: NaN/inf never leak into a neighbour); uint8 sources read both taps, which
// is the same value.
template <bool SKIP, class P>
VT_DEV float vt_row(const P& p, int y, const VtAxisK& ax, const VtTaps& tx) {
    if (tx.first < 0) {
        const int x0 = ax.s0 + tx.i0;
        if (SKIP && tx.f == 0.0f) return p.at(y, x0) * tx.g;
        return p.at(y, x0) * tx.g + p.at(y, ax.s0 + tx.i1) * tx.f;
    }
    float s = p.at(y, ax.s0 + tx.first) * vt_area_weight(tx, tx.first);
    for (int k = tx.first + 1; k < tx.last; ++k) s = s + p.at(y, ax.s0 + k) * vt_area_weight(tx, k);
    return s;
}

// The resampled value at window-relative taps ty (rows) and tx (columns).
template <bool SKIP, class P>
VT_DEV float vt_sample(const P& p, const VtAxisK& ay, const VtTaps& ty, const VtAxisK& ax,
                       const VtTaps& tx) {
    if (ty.first < 0) {
        const float h0 = vt_row<SKIP>(p, ay.s0 + ty.i0, ax, tx);
        if (ty.f == 0.0f) return h0;  // one tap of weight 1: h0 * 1 == h0
        return h0 * ty.g + vt_row<SKIP>(p, ay.s0 + ty.i1, ax, tx) * ty.f;
    }
    float s = vt_row<SKIP>(p, ay.s0 + ty.first, ax, tx) * vt_area_weight(ty, ty.first);
    for (int k = ty.first + 1; k < ty.last; ++k) {
        s = s + vt_row<SKIP>(p, ay.s0 + k, ax, tx) * vt_area_weight(ty, k);
    }
    return s;
}

// The taps of one output column as a window of adjacent source columns: first .. first + n - 1
// (window-relative) with weights w[0 .. n-1], summed as s = p0*w0; s = s + pk*wk -- exactly
// vt_row's operations for both tap forms: two taps (p0*g + p1*f, or p0*g alone when f == 0,
// where i1 == i0 + 1 whenever f != 0) and area downscale (vt_area_weight per column).
// MAXP: the most columns a window may hold (the launcher's mode choice guarantees n <= MAXP).
template <int MAXP>
struct VtWin {
    int first, n;
    float w[MAXP];
};

template <int MAXP>
VT_DEV void vt_win(const VtTaps& t, VtWin<MAXP>* o) {
    static_assert(MAXP >= 2, "a window holds at least the two bilinear taps");
    VT_UNROLL
    for (int p = 0; p < MAXP; ++p) o->w[p] = 0.0f;
    if (t.first < 0) {
        o->first = t.i0;
        o->n = t.f != 0.0f ? 2 : 1;
        o->w[0] = t.g;
        o->w[1] = t.f;
        return;
    }
    o->first = t.first;
    o->n = t.last - t.first;
    VT_UNROLL
    for (int p = 0; p < MAXP; ++p) o->w[p] = vt_area_weight(t, t.first + p);
}

// Largest area downscale factor whose windows fit 8 columns: a cell of `scale` columns spans
// fewer than scale + 2 of them.
#define VT_AREA_MAX8 7
