// vetrina mask: the clean stage's defect mask on the GPU, the twin of kernels.defect_mask
// (kernels/composite.py) that engine/stages.py's CleanStage runs between its detector and its
// inpainter: threshold the detector's probability map, grow the defects by r pixels with
// OpenCV's elliptical structuring element (cv2.dilate, the border does not grow the mask),
// and write the inpainter's mask values.
//
// Two passes over a C-contiguous float32 (N, 1, H, W) probability map; grid (x over W, y over
// H, z over the N maps), a thread per pixel:
//   vt_mask_rows:   dist[y][x] = the smallest d <= r such that x - d or x + d is a pixel of
//                   row y with prob >= level; r + 1 when there is none (uint8, r <= 64)
//   vt_mask_dilate: out[y][x] = on if some row y + dy (|dy| <= r, inside the map) has
//                   dist[y + dy][x] <= half[dy + r], else off
// half[] holds the half-width of each row of the structuring element (the launcher reads it
// from cv2.getStructuringElement, whose rows are symmetric intervals), so a pixel is on exactly
// when a thresholded pixel lies inside the element centred on it: cv2.dilate's rule.
// The comparison prob >= level is NumPy's (float32, level rounded to float32 by the launcher):
// NaN is never a defect. No float arithmetic: on and off are the launcher's float32 values.
#include "common.cuh"

#define VT_MASK_MAX_RADIUS 64

struct VtMask {
    vt_i64 planes;                          // N
    int h, w;                               // map size
    int r;                                  // dilation radius, 0..64
    float level;                            // prob >= level is a defect
    float on, off;                          // mask values written
    int half[2 * VT_MASK_MAX_RADIUS + 1];   // half-width of row dy + r of the element
};
VT_AT(VtMask, h, 8);
VT_AT(VtMask, w, 12);
VT_AT(VtMask, r, 16);
VT_AT(VtMask, level, 20);
VT_AT(VtMask, on, 24);
VT_AT(VtMask, off, 28);
VT_AT(VtMask, half, 32);
VT_SIZE(VtMask, 552);

extern "C" __global__ void vt_mask_rows(const VtMask a, const float* prob, vt_u8* dist) {
    const int x = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    const int y = (int)(blockIdx.y * blockDim.y + threadIdx.y);
    if (x >= a.w || y >= a.h) return;
    for (vt_i64 p = blockIdx.z; p < a.planes; p += gridDim.z) {
        const vt_i64 row = (p * a.h + y) * (vt_i64)a.w;
        const float* src = prob + row;
        int d = 0;
        for (; d <= a.r; ++d) {
            if ((x - d >= 0 && src[x - d] >= a.level) || (x + d < a.w && src[x + d] >= a.level)) {
                break;
            }
        }
        dist[row + x] = (vt_u8)d;  // r + 1 when the loop ran out
    }
}

extern "C" __global__ void vt_mask_dilate(const VtMask a, const vt_u8* dist, float* out) {
    const int x = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    const int y = (int)(blockIdx.y * blockDim.y + threadIdx.y);
    if (x >= a.w || y >= a.h) return;
    const int y0 = y - a.r < 0 ? 0 : y - a.r;
    const int y1 = y + a.r >= a.h ? a.h - 1 : y + a.r;
    for (vt_i64 p = blockIdx.z; p < a.planes; p += gridDim.z) {
        const vt_u8* plane = dist + p * a.h * (vt_i64)a.w;
        bool set = false;
        for (int yy = y0; yy <= y1 && !set; ++yy) {
            set = plane[(vt_i64)yy * a.w + x] <= a.half[yy - y + a.r];
        }
        out[(p * a.h + y) * (vt_i64)a.w + x] = set ? a.on : a.off;
    }
}
