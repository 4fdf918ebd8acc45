# cython: language_level=3
"""CPU image kernels of vetrina: fused bilinear resize + channel mapping + affine map.

Private module: call it through ``vetrina.kernels``, which validates every argument. The checks
here only guard memory safety (shapes, channel counts) and are not meant as user-facing errors.

Numerics (see docs/kernels.md): coordinates follow OpenCV INTER_LINEAR (pixel centres, mapping in
double, weights in float32); all pixel arithmetic is float32 in a fixed order, and the build uses
-ffp-contract=off so the results equal the numpy references in tests/kernels/reference.py bit for
bit. Every float constant below is a typed ``float`` variable so that C never promotes to double.

Parallelism: the coordinate tables of every image are computed first (once per image and axis),
then ONE OpenMP region runs over all output rows of the whole batch with a dynamic schedule, so
a call pays a single fork/join and a core taken by another process only slows its own chunks.
"""

cimport cython
cimport openmp
from cython.parallel cimport prange
from libc.math cimport floor
from libc.stdlib cimport free, malloc

ctypedef const unsigned char* cbytes

# Work per dynamic chunk, in output values (rows per chunk = this / (row width * channels)).
cdef enum:
    CHUNK_VALUES = 16384


cdef inline int _threads(int num_threads) noexcept nogil:
    if num_threads > 0:
        return num_threads
    return openmp.omp_get_max_threads()


cdef inline Py_ssize_t _chunk(Py_ssize_t row_values) noexcept nogil:
    if row_values >= CHUNK_VALUES:
        return 1
    return CHUNK_VALUES // row_values


cdef void _axis_table(Py_ssize_t src, Py_ssize_t dst, Py_ssize_t stride,
                      Py_ssize_t* off0, Py_ssize_t* off1, float* w1, float* w0) noexcept nogil:
    """Source byte offsets of the two taps and their weights for every output index.

    Pixel-centre convention of OpenCV INTER_LINEAR:
      f = (float)((d + 0.5) * (src / dst) - 0.5)  (double, then rounded to float32)
      s = floor(f); f -= s                         (float32)
      s < 0        -> s = 0,       f = 0
      s >= src - 1 -> s = src - 1, f = 0
      taps s and min(s + 1, src - 1); weights (1 - f) and f in float32.
    """
    cdef double scale = <double>src / <double>dst
    cdef Py_ssize_t d, s, s1
    cdef float f
    cdef float one = 1
    cdef float zero = 0
    for d in range(dst):
        f = <float>((<double>d + 0.5) * scale - 0.5)
        s = <Py_ssize_t>floor(f)
        f = f - <float>s
        if s < 0:
            s = 0
            f = zero
        if s >= src - 1:
            s = src - 1
            f = zero
        s1 = s + 1
        if s1 > src - 1:
            s1 = src - 1
        off0[d] = s * stride
        off1[d] = s1 * stride
        w1[d] = f
        w0[d] = one - f


cdef struct Tables:
    # x taps: byte offsets and weights, per output column (of every image, concatenated)
    Py_ssize_t* x0
    Py_ssize_t* x1
    float* fx
    float* gx
    # y taps: byte offsets and weights, per output row (of every image, concatenated)
    Py_ssize_t* y0
    Py_ssize_t* y1
    float* fy
    float* gy


cdef int _tables_alloc(Tables* t, Py_ssize_t nx, Py_ssize_t ny) except -1:
    t.x0 = <Py_ssize_t*>malloc(nx * sizeof(Py_ssize_t))
    t.x1 = <Py_ssize_t*>malloc(nx * sizeof(Py_ssize_t))
    t.fx = <float*>malloc(nx * sizeof(float))
    t.gx = <float*>malloc(nx * sizeof(float))
    t.y0 = <Py_ssize_t*>malloc(ny * sizeof(Py_ssize_t))
    t.y1 = <Py_ssize_t*>malloc(ny * sizeof(Py_ssize_t))
    t.fy = <float*>malloc(ny * sizeof(float))
    t.gy = <float*>malloc(ny * sizeof(float))
    if (t.x0 == NULL or t.x1 == NULL or t.fx == NULL or t.gx == NULL
            or t.y0 == NULL or t.y1 == NULL or t.fy == NULL or t.gy == NULL):
        _tables_free(t)
        raise MemoryError("vetrina.kernels: cannot allocate resize tables")
    return 0


cdef void _tables_free(Tables* t) noexcept:
    free(t.x0)
    free(t.x1)
    free(t.fx)
    free(t.gx)
    free(t.y0)
    free(t.y1)
    free(t.fy)
    free(t.gy)
    t.x0 = t.x1 = t.y0 = t.y1 = NULL
    t.fx = t.gx = t.fy = t.gy = NULL


# --------------------------------------------------------------------------------------------
# preprocess: uint8 HxWxC (any strides) -> float32 NCHW batch
# --------------------------------------------------------------------------------------------

cdef struct PreSrc:
    cbytes base          # &img[0, 0, 0]
    Py_ssize_t c0        # byte offset of the source channel of output channel 0
    Py_ssize_t c1
    Py_ssize_t c2


cdef inline float _pre_px(cbytes r0, cbytes r1, Py_ssize_t a, Py_ssize_t b, float fx,
                          float gx, float fy, float gy, float sc, float of) noexcept nogil:
    cdef float v = ((<float>r0[a] * gx + <float>r0[b] * fx) * gy
                    + (<float>r1[a] * gx + <float>r1[b] * fx) * fy)
    return v * sc + of


cdef inline void _pre_row(cbytes r0, cbytes r1, const Py_ssize_t* x0, const Py_ssize_t* x1,
                          const float* fxt, const float* gxt, float fy, float gy,
                          Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t c2,
                          float sc0, float sc1, float sc2, float of0, float of1, float of2,
                          float* o, Py_ssize_t plane, Py_ssize_t W) noexcept nogil:
    # Pixel-major: the taps and weights are loaded once for the 3 channels, and the source
    # bytes of one pixel are adjacent; the 3 output planes are written sequentially.
    cdef Py_ssize_t dx, a, b
    cdef float fx, gx
    cdef float* o1 = o + plane
    cdef float* o2 = o + 2 * plane
    for dx in range(W):
        fx = fxt[dx]
        gx = gxt[dx]
        a = x0[dx]
        b = x1[dx]
        o[dx] = _pre_px(r0 + c0, r1 + c0, a, b, fx, gx, fy, gy, sc0, of0)
        o1[dx] = _pre_px(r0 + c1, r1 + c1, a, b, fx, gx, fy, gy, sc1, of1)
        o2[dx] = _pre_px(r0 + c2, r1 + c2, a, b, fx, gx, fy, gy, sc2, of2)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _pre_rows(const PreSrc* srcs, Tables* t, float* obase, Py_ssize_t n,
                    Py_ssize_t H, Py_ssize_t W, const float* scale, const float* offset,
                    int nthreads) noexcept nogil:
    # Table pointers and constants in locals: no reload after each store.
    cdef const Py_ssize_t* x0 = t.x0
    cdef const Py_ssize_t* x1 = t.x1
    cdef const float* fx = t.fx
    cdef const float* gx = t.gx
    cdef const Py_ssize_t* y0 = t.y0
    cdef const Py_ssize_t* y1 = t.y1
    cdef const float* fyt = t.fy
    cdef const float* gyt = t.gy
    cdef float sc0 = scale[0], sc1 = scale[1], sc2 = scale[2]
    cdef float of0 = offset[0], of1 = offset[1], of2 = offset[2]
    cdef Py_ssize_t plane = H * W, chunk = _chunk(3 * W)
    cdef Py_ssize_t r, i, xo
    cdef cbytes r0
    cdef cbytes r1
    cdef float* o
    for r in prange(n * H, nogil=True, num_threads=nthreads, schedule="dynamic",
                    chunksize=chunk):
        i = r // H
        xo = i * W
        r0 = srcs[i].base + y0[r]
        r1 = srcs[i].base + y1[r]
        # out[i, c, dy] starts at ((i * 3 + c) * H + dy) * W = (r + (2 * i + c) * H) * W
        o = obase + (r + 2 * i * H) * W
        _pre_row(r0, r1, x0 + xo, x1 + xo, fx + xo, gx + xo, fyt[r], gyt[r],
                 srcs[i].c0, srcs[i].c1, srcs[i].c2, sc0, sc1, sc2, of0, of1, of2,
                 o, plane, W)


def preprocess_batch(list images, float[:, :, :, ::1] out, const float[::1] scale,
                     const float[::1] offset, bint swap, int num_threads):
    """Fill ``out`` (N, 3, H, W) from ``images`` (N uint8 arrays of shape (h, w, 1|3|4)).

    ``scale``/``offset``: float32[3] per output channel. ``swap``: output channel c reads source
    channel 2 - c (RGB <-> BGR) for 3/4-channel images. ``num_threads`` <= 0: OpenMP default.
    """
    cdef Py_ssize_t n = out.shape[0], H = out.shape[2], W = out.shape[3], i, nch, cs
    cdef const unsigned char[:, :, :] src
    cdef PreSrc* srcs
    cdef Tables t
    cdef int nthreads = _threads(num_threads)
    cdef list keep = []  # the acquired buffers stay acquired until the loop is done
    if len(images) != n or n < 1 or out.shape[1] != 3 or H < 1 or W < 1:
        raise ValueError("preprocess_batch: out shape does not match the images")
    if scale.shape[0] != 3 or offset.shape[0] != 3:
        raise ValueError("preprocess_batch: scale and offset need 3 values")
    srcs = <PreSrc*>malloc(n * sizeof(PreSrc))
    if srcs == NULL:
        raise MemoryError("vetrina.kernels: cannot allocate image table")
    try:
        _tables_alloc(&t, n * W, n * H)
        try:
            for i in range(n):
                src = images[i]
                keep.append(src)
                nch = src.shape[2]
                if (src.shape[0] < 1 or src.shape[1] < 1
                        or not (nch == 1 or nch == 3 or nch == 4)):
                    raise ValueError(f"preprocess_batch: bad image shape at index {i}")
                cs = 0 if nch == 1 else src.strides[2]
                srcs[i].base = <cbytes>&src[0, 0, 0]
                srcs[i].c0 = 2 * cs if swap else 0
                srcs[i].c1 = cs
                srcs[i].c2 = 0 if swap else 2 * cs
                _axis_table(src.shape[1], W, src.strides[1],
                            t.x0 + i * W, t.x1 + i * W, t.fx + i * W, t.gx + i * W)
                _axis_table(src.shape[0], H, src.strides[0],
                            t.y0 + i * H, t.y1 + i * H, t.fy + i * H, t.gy + i * H)
            with nogil:
                _pre_rows(srcs, &t, &out[0, 0, 0, 0], n, H, W, &scale[0], &offset[0], nthreads)
        finally:
            _tables_free(&t)
    finally:
        free(srcs)
    return out


# --------------------------------------------------------------------------------------------
# postprocess: float32 (N, 3, H, W) (any strides) -> uint8 hxwx(3|4) images, C-contiguous
# --------------------------------------------------------------------------------------------

cdef struct PostDst:
    unsigned char* base  # &out_i[0, 0, 0]
    Py_ssize_t w
    Py_ssize_t nout      # 3 or 4
    Py_ssize_t xt        # first entry of this image in the x tables
    cbytes abase         # &alpha_i[0, 0] or NULL
    Py_ssize_t as0
    Py_ssize_t as1


cdef inline unsigned char _post_px(cbytes r0, cbytes r1, Py_ssize_t a, Py_ssize_t b,
                                   float fx, float gx, float fy, float gy,
                                   float sc, float of) noexcept nogil:
    """One output value. A tap whose weight is exactly 0 is not read, so a non-finite
    neighbour never leaks into an exactly sampled pixel (for finite input this equals the
    plain formula bit for bit). Then v*scale + offset, NaN -> 0, clamp, floor(v + 0.5)."""
    cdef float zero = 0
    cdef float top = 255
    cdef float half = 0.5
    cdef float v, h1
    if fx == zero:
        v = (<const float*>(r0 + a))[0]
    else:
        v = (<const float*>(r0 + a))[0] * gx + (<const float*>(r0 + b))[0] * fx
    if fy != zero:
        if fx == zero:
            h1 = (<const float*>(r1 + a))[0]
        else:
            h1 = (<const float*>(r1 + a))[0] * gx + (<const float*>(r1 + b))[0] * fx
        v = v * gy + h1 * fy
    v = v * sc + of
    if not (v >= zero):  # NaN and negatives
        v = zero
    elif v > top:
        v = top
    return <unsigned char>(v + half)  # v + 0.5 >= 0.5, so truncation == floor


cdef inline void _post_row(cbytes r0, cbytes r1, const Py_ssize_t* x0, const Py_ssize_t* x1,
                           const float* fxt, const float* gxt, float fy, float gy,
                           Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t c2,
                           float sc0, float sc1, float sc2, float of0, float of1, float of2,
                           unsigned char* o, Py_ssize_t w, Py_ssize_t nout,
                           cbytes ar, Py_ssize_t as1) noexcept nogil:
    # Everything the loop reads is in locals/arguments: uint8 stores may alias any memory.
    cdef Py_ssize_t dx, a, b
    cdef float fx, gx
    for dx in range(w):
        fx = fxt[dx]
        gx = gxt[dx]
        a = x0[dx]
        b = x1[dx]
        o[0] = _post_px(r0 + c0, r1 + c0, a, b, fx, gx, fy, gy, sc0, of0)
        o[1] = _post_px(r0 + c1, r1 + c1, a, b, fx, gx, fy, gy, sc1, of1)
        o[2] = _post_px(r0 + c2, r1 + c2, a, b, fx, gx, fy, gy, sc2, of2)
        if ar != NULL:
            o[3] = ar[dx * as1]
        o += nout


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _post_rows(cbytes bbase, Py_ssize_t bs0, const Py_ssize_t* coff,
                     const PostDst* dsts, const Py_ssize_t* rimg, const Py_ssize_t* rdy,
                     Tables* t, Py_ssize_t rows, Py_ssize_t chunk,
                     const float* scale, const float* offset, int nthreads) noexcept nogil:
    cdef const Py_ssize_t* x0 = t.x0
    cdef const Py_ssize_t* x1 = t.x1
    cdef const float* fxt = t.fx
    cdef const float* gxt = t.gx
    cdef const Py_ssize_t* y0 = t.y0
    cdef const Py_ssize_t* y1 = t.y1
    cdef const float* fyt = t.fy
    cdef const float* gyt = t.gy
    cdef Py_ssize_t c0 = coff[0], c1 = coff[1], c2 = coff[2]
    cdef float sc0 = scale[0], sc1 = scale[1], sc2 = scale[2]
    cdef float of0 = offset[0], of1 = offset[1], of2 = offset[2]
    cdef Py_ssize_t r, i, xo
    cdef cbytes pb
    cdef cbytes ar
    for r in prange(rows, nogil=True, num_threads=nthreads, schedule="dynamic",
                    chunksize=chunk):
        i = rimg[r]
        xo = dsts[i].xt
        pb = bbase + i * bs0
        ar = NULL
        if dsts[i].abase != NULL:
            ar = dsts[i].abase + rdy[r] * dsts[i].as0
        _post_row(pb + y0[r], pb + y1[r], x0 + xo, x1 + xo, fxt + xo, gxt + xo, fyt[r], gyt[r],
                  c0, c1, c2, sc0, sc1, sc2, of0, of1, of2,
                  dsts[i].base + rdy[r] * dsts[i].w * dsts[i].nout, dsts[i].w, dsts[i].nout,
                  ar, dsts[i].as1)


def postprocess_batch(const float[:, :, :, :] batch, list outs, list alphas,
                      const float[::1] scale, const float[::1] offset, bint swap,
                      int num_threads):
    """Fill ``outs[i]`` (uint8 (h, w, 3|4), C-contiguous) from ``batch[i]`` (float32 3xHxW).

    ``scale``/``offset``: float32[3] per batch channel. ``swap``: output channel k comes from
    batch channel 2 - k. ``alphas[i]``: None or uint8 (h, w) written as the 4th channel.
    """
    cdef Py_ssize_t n = batch.shape[0], H = batch.shape[2], W = batch.shape[3]
    cdef Py_ssize_t i, k, bc, h, w, nout, rows = 0, cols = 0, values = 0, r, dy
    cdef unsigned char[:, :, ::1] dst
    cdef const unsigned char[:, :] alpha
    cdef Py_ssize_t coff[3]
    cdef float sc[3]
    cdef float of[3]
    cdef PostDst* dsts = NULL
    cdef Py_ssize_t* rimg = NULL
    cdef Py_ssize_t* rdy = NULL
    cdef Tables t
    cdef int nthreads = _threads(num_threads)
    cdef list keep = []  # the acquired buffers stay acquired until the loop is done
    if (len(outs) != n or len(alphas) != n or n < 1 or batch.shape[1] != 3
            or H < 1 or W < 1):
        raise ValueError("postprocess_batch: outs/alphas do not match the batch")
    if scale.shape[0] != 3 or offset.shape[0] != 3:
        raise ValueError("postprocess_batch: scale and offset need 3 values")
    for k in range(3):
        bc = 2 - k if swap else k
        coff[k] = bc * batch.strides[1]
        sc[k] = scale[bc]
        of[k] = offset[bc]
    try:
        dsts = <PostDst*>malloc(n * sizeof(PostDst))
        if dsts == NULL:
            raise MemoryError("vetrina.kernels: cannot allocate image table")
        for i in range(n):
            dst = outs[i]
            keep.append(dst)
            h = dst.shape[0]
            w = dst.shape[1]
            nout = dst.shape[2]
            if h < 1 or w < 1 or not (nout == 3 or nout == 4):
                raise ValueError(f"postprocess_batch: bad output shape at index {i}")
            dsts[i].base = &dst[0, 0, 0]
            dsts[i].w = w
            dsts[i].nout = nout
            dsts[i].xt = cols
            dsts[i].abase = NULL
            dsts[i].as0 = dsts[i].as1 = 0
            if nout == 4:
                if alphas[i] is None:
                    raise ValueError(f"postprocess_batch: output {i} has 4 channels, no alpha")
                alpha = alphas[i]
                keep.append(alpha)
                if alpha.shape[0] != h or alpha.shape[1] != w:
                    raise ValueError(f"postprocess_batch: alpha {i} shape does not match")
                dsts[i].abase = &alpha[0, 0]
                dsts[i].as0 = alpha.strides[0]
                dsts[i].as1 = alpha.strides[1]
            rows += h
            cols += w
            values += h * w * 3
        rimg = <Py_ssize_t*>malloc(rows * sizeof(Py_ssize_t))
        rdy = <Py_ssize_t*>malloc(rows * sizeof(Py_ssize_t))
        if rimg == NULL or rdy == NULL:
            raise MemoryError("vetrina.kernels: cannot allocate row table")
        _tables_alloc(&t, cols, rows)
        try:
            r = 0
            for i in range(n):
                h = outs[i].shape[0]
                w = dsts[i].w
                _axis_table(W, w, batch.strides[3], t.x0 + dsts[i].xt, t.x1 + dsts[i].xt,
                            t.fx + dsts[i].xt, t.gx + dsts[i].xt)
                _axis_table(H, h, batch.strides[2], t.y0 + r, t.y1 + r, t.fy + r, t.gy + r)
                for dy in range(h):
                    rimg[r + dy] = i
                    rdy[r + dy] = dy
                r += h
            with nogil:
                _post_rows(<cbytes>&batch[0, 0, 0, 0], batch.strides[0], coff, dsts, rimg, rdy,
                           &t, rows, _chunk(values // rows), sc, of, nthreads)
        finally:
            _tables_free(&t)
    finally:
        free(dsts)
        free(rimg)
        free(rdy)
    return outs
