"""Why the milestone networks use im2col: two other ways to compute a 3×3 stride-1 convolution,
timed against it on the layers of the CIFAR-10 networks.

    python -m benchmarks.conv_algorithms              # ResNet-9 and airbench layers, batch 128
    python -m benchmarks.conv_algorithms --repeats 7

- **im2col** (``dlfs.conv.fast``, Topic 12's method on whole chunks): copy the 3×3 windows into
  a (C_in·9, B·H·W) matrix, then one product. The table splits its forward into the copy and
  the product: the time of the first chunk's copy, and of its product with its columns in the
  cache, times the number of chunks (the forward also transposes each result into the output).
- **Winograd F(2×2, 3×3)** (Lavin & Gray, 2015): each 2×2 block of outputs from the 4×4 input
  tile around it, ``Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A``. The sum over input channels becomes 16
  products ``M[a, b] = U[a, b] @ V[a, b]`` (U: (C_out, C_in), V: (C_in, tiles)), 4 multiply-adds
  per output pixel instead of 9; the transforms are additions of rows and columns over arrays
  4× the input (V) and 4× the output (M). Forward and backward.
- **Shifted views** ("implicit GEMM"): with the zero-padded input flattened to (C_in, B·Hp·Wp),
  the tap (p, q) of every output pixel is the same matrix shifted by p·Wp + q columns, so the
  convolution is 9 products of (C_out, C_in) by a view, with no copy; the outputs on the
  padding are computed and dropped. Forward only.

Every figure is the CPU time of the process on one thread (one BLAS thread, one worker),
the best of ``repeats`` calls, so that other jobs on the machine inflate it little; with
PyTorch installed, ``torch.nn.functional.conv2d`` (oneDNN's direct convolution) is timed the
same way. The float32 error column is the largest difference from the float64 result over the
largest float64 output.

These kernels are here to be measured; ``tests/test_benchmarks.py`` checks them against
``dlfs.conv.fast`` in float64.

Shapes: x (N, C_in, H, W); w (C_out, C_in, 3, 3); out (N, C_out, H_out, W_out).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dlfs.conv.fast import (
    _chunk_size,
    cols_batched,
    conv2d_backward_batched,
    conv2d_forward_batched,
)
from dlfs.parallel import limit_workers, map_chunks

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def _geometry(H: int, W: int, padding: tuple[int, int]):
    """Output size, tile counts and the size of the zero-padded input the tiles cover."""
    ph, pw = padding
    Ho, Wo = H + 2 * ph - 2, W + 2 * pw - 2
    if Ho < 1 or Wo < 1:
        raise ValueError(f"a 3x3 convolution with padding {padding} needs an input of at least "
                         f"{3 - 2 * ph}x{3 - 2 * pw}, got {H}x{W}")
    Th, Tw = -(-Ho // 2), -(-Wo // 2)
    return Ho, Wo, Th, Tw, 2 * Th + 2, 2 * Tw + 2


def transform_weights(w: np.ndarray) -> np.ndarray:
    """U = G g Gᵀ for every (output, input) channel pair: w (C_out, C_in, 3, 3) -> (16, C_out, C_in)."""
    G = _G.astype(w.dtype)
    C_out, C_in = w.shape[:2]
    return np.einsum("ap,kcpq,bq->abkc", G, w, G, optimize=True).reshape(16, C_out, C_in)


def _input_tiles(x: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    """V = Bᵀ d B for every 4×4 input tile: x (B, C, H, W) -> (16, C, B·Th·Tw)."""
    B, C, H, W = x.shape
    ph, pw = padding
    _, _, Th, Tw, Hp, Wp = _geometry(H, W, padding)
    xp = np.zeros((C, B, Hp, Wp), dtype=x.dtype)
    xp[:, :, ph:ph + H, pw:pw + W] = x.transpose(1, 0, 2, 3)
    V = np.empty((4, 4, C, B, Th, Tw), dtype=x.dtype)
    r = [xp[:, :, k:k + 2 * Th:2] for k in range(4)]                # rows 2i + k: (C, B, Th, Wp)
    t = np.empty((C, B, Th, Wp), dtype=x.dtype)
    for a, (p, q, sign) in enumerate(((0, 2, -1), (1, 2, 1), (2, 1, -1), (1, 3, -1))):
        np.add(r[p], r[q], out=t) if sign > 0 else np.subtract(r[p], r[q], out=t)
        c = [t[..., k:k + 2 * Tw:2] for k in range(4)]               # columns 2j + k
        np.subtract(c[0], c[2], out=V[a, 0])
        np.add(c[1], c[2], out=V[a, 1])
        np.subtract(c[2], c[1], out=V[a, 2])
        np.subtract(c[1], c[3], out=V[a, 3])
    return V.reshape(16, C, B * Th * Tw)


def _output_tiles(M: np.ndarray, out: np.ndarray, Th: int, Tw: int) -> None:
    """Y = Aᵀ m A for every tile, written into out (B, C_out, H_out, W_out).
    M: (16, C_out, B·Th·Tw)."""
    B, C_out, Ho, Wo = out.shape
    M6 = M.reshape(4, 4, C_out, B, Th, Tw)
    s = np.empty((2, 4, C_out, B, Th, Tw), dtype=M.dtype)
    np.add(M6[0], M6[1], out=s[0])
    s[0] += M6[2]
    np.subtract(M6[1], M6[2], out=s[1])
    s[1] -= M6[3]
    y = np.empty((C_out, B, Th, Tw), dtype=M.dtype)
    for r in range(2):
        for c in range(2):
            if c == 0:
                np.add(s[r, 0], s[r, 1], out=y)
                y += s[r, 2]
            else:
                np.subtract(s[r, 1], s[r, 2], out=y)
                y -= s[r, 3]
            dst = out[:, :, r:Ho:2, c:Wo:2]                           # (B, C_out, ≤Th, ≤Tw)
            dst[...] = y[:, :, :dst.shape[2], :dst.shape[3]].transpose(1, 0, 2, 3)


def conv3x3_forward_winograd(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                             padding=(1, 1)) -> np.ndarray:
    """``dlfs.conv.fast.conv2d_forward_batched`` for a 3×3 kernel, by F(2×2, 3×3)."""
    dtype = np.result_type(x, w)
    x, w = np.asarray(x, dtype=dtype), np.asarray(w, dtype=dtype)
    N, C_in, H, W = x.shape
    C_out = w.shape[0]
    if w.shape[1:] != (C_in, 3, 3):
        raise ValueError(f"expected weights (C_out, {C_in}, 3, 3), got {w.shape}")
    Ho, Wo, Th, Tw, _, _ = _geometry(H, W, padding)
    U = transform_weights(w)
    out = np.empty((N, C_out, Ho, Wo), dtype=dtype)

    def chunk(lo, hi):
        V = _input_tiles(x[lo:hi], padding)
        _output_tiles(np.matmul(U, V), out[lo:hi], Th, Tw)

    map_chunks(chunk, N, _chunk_size(N, 16 * max(C_in, C_out) * Th * Tw * dtype.itemsize))
    if b is not None:
        out += np.asarray(b, dtype=dtype)[:, None, None]
    return out


def _output_tiles_adjoint(dout: np.ndarray, Th: int, Tw: int) -> np.ndarray:
    """dM = A dY Aᵀ for every tile: dout (B, C_out, H_out, W_out) -> (16, C_out, B·Th·Tw)."""
    B, C_out, Ho, Wo = dout.shape
    dy = np.zeros((C_out, B, 2 * Th, 2 * Tw), dtype=dout.dtype)
    dy[:, :, :Ho, :Wo] = dout.transpose(1, 0, 2, 3)
    dM = np.empty((4, 4, C_out, B, Th, Tw), dtype=dout.dtype)
    y0, y1 = dy[:, :, 0::2], dy[:, :, 1::2]                          # (C_out, B, Th, 2Tw)
    e = np.empty((C_out, B, Th, 2 * Tw), dtype=dout.dtype)
    for a in range(4):
        if a == 0:
            e[...] = y0
        elif a == 1:
            np.add(y0, y1, out=e)
        elif a == 2:
            np.subtract(y0, y1, out=e)
        else:
            np.negative(y1, out=e)
        z0, z1 = e[..., 0::2], e[..., 1::2]
        dM[a, 0] = z0
        np.add(z0, z1, out=dM[a, 1])
        np.subtract(z0, z1, out=dM[a, 2])
        np.negative(z1, out=dM[a, 3])
    return dM.reshape(16, C_out, B * Th * Tw)


def _input_tiles_adjoint(dV: np.ndarray, x_shape, padding: tuple[int, int]) -> np.ndarray:
    """dd = B dV Bᵀ for every tile, added onto the input pixels the tile covers.
    dV: (16, C, B·Th·Tw) -> dx (B, C, H, W) (the padding dropped)."""
    B, C, H, W = x_shape
    ph, pw = padding
    _, _, Th, Tw, Hp, Wp = _geometry(H, W, padding)
    dV6 = dV.reshape(4, 4, C, B, Th, Tw)
    # Bᵀ's adjoint maps (v0, v1, v2, v3) to (v0, v1 - v2 + v3, -v0 + v1 + v2, -v3)
    g = np.zeros((4, C, B, Th, Wp), dtype=dV.dtype)                 # columns done, per tile row a
    u = np.empty((C, B, Th, Tw), dtype=dV.dtype)
    for a in range(4):
        v = dV6[a]
        ga = g[a]
        ga[..., 0:2 * Tw:2] += v[0]
        np.subtract(v[1], v[2], out=u)
        u += v[3]
        ga[..., 1:1 + 2 * Tw:2] += u
        np.add(v[1], v[2], out=u)
        u -= v[0]
        ga[..., 2:2 + 2 * Tw:2] += u
        ga[..., 3:3 + 2 * Tw:2] -= v[3]
    dxp = np.zeros((C, B, Hp, Wp), dtype=dV.dtype)
    h = np.empty((C, B, Th, Wp), dtype=dV.dtype)
    dxp[:, :, 0:2 * Th:2] += g[0]
    np.subtract(g[1], g[2], out=h)
    h += g[3]
    dxp[:, :, 1:1 + 2 * Th:2] += h
    np.add(g[1], g[2], out=h)
    h -= g[0]
    dxp[:, :, 2:2 + 2 * Th:2] += h
    dxp[:, :, 3:3 + 2 * Th:2] -= g[3]
    return dxp[:, :, ph:ph + H, pw:pw + W].transpose(1, 0, 2, 3)


def conv3x3_backward_winograd(dout: np.ndarray, x: np.ndarray, w: np.ndarray, padding=(1, 1),
                              need_dx: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv3x3_forward_winograd`: ``(dx, dw, db)`` shaped like x, w and
    (C_out,); dx is None when not ``need_dx``. The input tiles V are recomputed from x."""
    dtype = np.result_type(dout, x, w)
    dout = np.asarray(dout, dtype=dtype)
    x = np.asarray(x, dtype=dtype)
    w = np.asarray(w, dtype=dtype)
    N, C_in, H, W = x.shape
    C_out = w.shape[0]
    Ho, Wo, Th, Tw, _, _ = _geometry(H, W, padding)
    if dout.shape != (N, C_out, Ho, Wo):
        raise ValueError(f"dout must be {(N, C_out, Ho, Wo)}, got {dout.shape}")
    Ut = transform_weights(w).transpose(0, 2, 1) if need_dx else None    # (16, C_in, C_out)
    dx = np.empty(x.shape, dtype=dtype) if need_dx else None

    def chunk(lo, hi):
        dM = _output_tiles_adjoint(dout[lo:hi], Th, Tw)
        V = _input_tiles(x[lo:hi], padding)
        dU_part = np.matmul(dM, V.transpose(0, 2, 1))                 # (16, C_out, C_in)
        if need_dx:
            np.matmul(Ut, dM, out=V)                                  # dV, reusing the buffer
            dx[lo:hi] = _input_tiles_adjoint(V, x[lo:hi].shape, padding)
        return dU_part

    dU = np.zeros((16, C_out, C_in), dtype=dtype)
    for part in map_chunks(chunk, N, _chunk_size(N, 16 * max(C_in, C_out) * Th * Tw * dtype.itemsize)):
        dU += part
    G = _G.astype(dtype)
    dw = np.einsum("ap,abkc,bq->kcpq", G, dU.reshape(4, 4, C_out, C_in), G, optimize=True)
    return dx, np.ascontiguousarray(dw), dout.sum(axis=(0, 2, 3))


def conv3x3_forward_shifted(x: np.ndarray, w: np.ndarray, padding=(1, 1)) -> np.ndarray:
    """Stride-1 3×3 convolution as 9 products of (C_out, C_in) weights by shifted views of the
    flattened, zero-padded input (no im2col copy). x: (N, C_in, H, W) -> (N, C_out, H_out, W_out)."""
    dtype = np.result_type(x, w)
    N, C_in, H, W = x.shape
    C_out = w.shape[0]
    ph, pw = padding
    Hp, Wp = H + 2 * ph, W + 2 * pw
    Ho, Wo = Hp - 2, Wp - 2
    out = np.empty((N, C_out, Ho, Wo), dtype=dtype)

    def chunk(lo, hi):
        B = hi - lo
        L = B * Hp * Wp
        xp = np.zeros((C_in, L + 2 * Wp + 2), dtype=dtype)       # margin: the last shifts stay inside
        xp[:, :L].reshape(C_in, B, Hp, Wp)[:, :, ph:ph + H, pw:pw + W] = x[lo:hi].transpose(1, 0, 2, 3)
        acc = np.empty((C_out, L), dtype=dtype)
        tmp = np.empty((C_out, L), dtype=dtype)
        for t in range(9):
            p, q = divmod(t, 3)
            off = p * Wp + q                                      # output (i, j) reads (i + p, j + q)
            np.matmul(w[:, :, p, q], xp[:, off:off + L], out=acc if t == 0 else tmp)
            if t:
                acc += tmp
        out[lo:hi] = acc.reshape(C_out, B, Hp, Wp)[:, :, :Ho, :Wo].transpose(1, 0, 2, 3)

    map_chunks(chunk, N, _chunk_size(N, C_in * Hp * Wp * dtype.itemsize * 4))
    return out


# (name, N, C_in, C_out, H): the 3×3 convolutions of ResNet-9 (base width 32) and of airbench's
# (64, 256, 256) network, at batch 128
LAYERS = [("resnet9 32→64", 128, 32, 64, 32), ("resnet9 64→64", 128, 64, 64, 16),
          ("resnet9 64→128", 128, 64, 128, 16), ("resnet9 128→256", 128, 128, 256, 8),
          ("resnet9 256→256", 128, 256, 256, 4), ("airbench 24→64", 128, 24, 64, 31),
          ("airbench 64→256", 128, 64, 256, 15), ("airbench 256→256", 128, 256, 256, 7),
          ("airbench 256→256", 128, 256, 256, 3)]


def cpu_ms(fn, repeats: int) -> float:
    """The best CPU time of ``repeats`` calls after one warm-up, in ms."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return 1e3 * best


def measure(name: str, N: int, C_in: int, C_out: int, H: int, repeats: int, torch=None) -> dict:
    """One layer's row: forward and backward times of each method, float32, one thread."""
    rng = np.random.default_rng(0)
    x64 = rng.standard_normal((N, C_in, H, H))
    w64 = rng.standard_normal((C_out, C_in, 3, 3)) / np.sqrt(9 * C_in)
    x, w = x64.astype(np.float32), w64.astype(np.float32)
    exact = conv2d_forward_batched(x64, w64, None, (1, 1))
    dout = rng.standard_normal(exact.shape).astype(np.float32)
    scale = np.abs(exact).max()
    w2 = w.reshape(C_out, -1)
    step = _chunk_size(N, C_in * 9 * H * H * 4)                  # the forward's chunks
    n_chunks = -(-N // step)
    cols = cols_batched(x[:step], 3, 3, (1, 1))
    row = {"layer": name, "input": [N, C_in, H, H], "C_out": C_out,
           "im2col_fwd_ms": cpu_ms(lambda: conv2d_forward_batched(x, w, None, (1, 1)), repeats),
           "im2col_copy_ms": n_chunks * cpu_ms(lambda: cols_batched(x[:step], 3, 3, (1, 1)), repeats),
           "im2col_product_ms": n_chunks * cpu_ms(lambda: w2 @ cols, repeats),
           "im2col_bwd_ms": cpu_ms(lambda: conv2d_backward_batched(dout, x, w, (1, 1)), repeats),
           "winograd_fwd_ms": cpu_ms(lambda: conv3x3_forward_winograd(x, w, None, (1, 1)), repeats),
           "winograd_bwd_ms": cpu_ms(lambda: conv3x3_backward_winograd(dout, x, w, (1, 1)), repeats),
           "shifted_fwd_ms": cpu_ms(lambda: conv3x3_forward_shifted(x, w, (1, 1)), repeats),
           "im2col_error": float(np.abs(conv2d_forward_batched(x, w, None, (1, 1)) - exact).max() / scale),
           "winograd_error": float(np.abs(conv3x3_forward_winograd(x, w, None, (1, 1)) - exact).max() / scale),
           "shifted_error": float(np.abs(conv3x3_forward_shifted(x, w, (1, 1)) - exact).max() / scale)}
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_()
        tw = torch.from_numpy(w).requires_grad_()
        tdout = torch.from_numpy(dout)

        def fwd():
            with torch.no_grad():
                torch.nn.functional.conv2d(tx, tw, padding=1)

        def fwd_bwd():
            torch.nn.functional.conv2d(tx, tw, padding=1).backward(tdout)

        row["torch_fwd_ms"] = cpu_ms(fwd, repeats)
        row["torch_bwd_ms"] = cpu_ms(fwd_bwd, repeats) - row["torch_fwd_ms"]
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conv_algorithms", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per kernel (the best is kept)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    from threadpoolctl import threadpool_limits

    from benchmarks.harness import try_torch

    torch = try_torch()
    if torch is not None:
        torch.set_num_threads(1)
    rows = []
    head = (f"{'layer':<18} {'input':<16} {'im2col fwd (copy + product)':>28} {'Winograd fwd':>12} "
            f"{'shifted fwd':>11} {'im2col bwd':>10} {'Winograd bwd':>12} {'torch fwd/bwd':>14}  float32 error")
    print("ms of CPU time, one thread, best of", args.repeats)
    print(head)
    with threadpool_limits(1), limit_workers(1):
        for name, N, C_in, C_out, H in LAYERS:
            r = measure(name, N, C_in, C_out, H, args.repeats, torch)
            rows.append(r)
            t = f"{r['torch_fwd_ms']:.1f}/{r['torch_bwd_ms']:.1f}" if torch is not None else "-"
            print(f"{name:<18} {f'{N}×{C_in}×{H}×{H}':<16} "
                  f"{r['im2col_fwd_ms']:>8.1f} ({r['im2col_copy_ms']:.1f} + {r['im2col_product_ms']:.1f}){'':>6} "
                  f"{r['winograd_fwd_ms']:>12.1f} {r['shifted_fwd_ms']:>11.1f} {r['im2col_bwd_ms']:>10.1f} "
                  f"{r['winograd_bwd_ms']:>12.1f} {t:>14}  {r['im2col_error']:.0e} / {r['winograd_error']:.0e} "
                  f"/ {r['shifted_error']:.0e}", flush=True)
    return rows


if __name__ == "__main__":
    main()
