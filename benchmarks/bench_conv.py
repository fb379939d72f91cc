"""Module 2 benchmarks: the Conv2d layer (Topic 12) against PyTorch's CPU convolution.

The headline case is the workhorse of a CIFAR-10 ResNet: 3×3, 64 → 64 channels, 32×32, batch
128, padding 1, float32, forward + backward (dx, dW, db). A convolution of x (N, C_in, H, W) with
w (C_out, C_in, kh, kw) costs ``2·N·C_out·H_out·W_out·C_in·kh·kw`` flops forward and twice that
backward (dx and dW). Goal: at least half the machine's float32 matmul GFLOP/s (the
``matmul`` line of the ``mlp`` suite), and a ratio to PyTorch as small as possible.
"""

from __future__ import annotations

import numpy as np

from benchmarks.harness import compare, try_torch


def _conv_case(name: str, n: int, c_in: int, c_out: int, size: int, k: int, stride: int,
               padding: int, *, backward: bool, repeats: int = 10, goal: str = ""):
    from dlfs.conv.im2col import Conv2d

    torch = try_torch()
    rng = np.random.default_rng(0)
    layer = Conv2d(c_in, c_out, k, stride=stride, padding=padding, rng=rng)
    x = rng.standard_normal((n, c_in, size, size), dtype=np.float32)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    h_out, w_out = y.shape[2:]
    flops = 2.0 * n * c_out * h_out * w_out * c_in * k * k * (3 if backward else 1)

    def ours():
        out = layer.forward(x)
        if backward:
            layer.backward(dy)
        return out

    theirs = None
    if torch:
        conv = torch.nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(layer.W.data))
            conv.bias.copy_(torch.from_numpy(layer.b.data))
        tx = torch.from_numpy(x).requires_grad_(backward)
        tdy = torch.from_numpy(dy)

        def torch_step():
            if backward:
                conv.zero_grad()
                tx.grad = None
                out = conv(tx)
                out.backward(tdy)
                return out
            with torch.no_grad():
                return conv(tx)

        theirs = torch_step

    what = "fwd+bwd" if backward else "fwd"
    title = f"{name} {what}"
    return compare(title, ours, theirs, repeats=repeats, warmup=2, flops=flops, goal=goal)


def conv_fwd_bwd():
    """3×3, 64→64, 32×32, batch 128, padding 1: forward + backward (the ResNet workhorse)."""
    return _conv_case("conv3x3 64->64 32x32 b128", 128, 64, 64, 32, 3, 1, 1, backward=True,
                      goal=">= 50% of matmul GFLOP/s; ratio as low as possible")


def conv_fwd():
    """The same layer, forward only (inference)."""
    return _conv_case("conv3x3 64->64 32x32 b128", 128, 64, 64, 32, 3, 1, 1, backward=False)


def conv_stride2_fwd_bwd():
    """A ResNet down-sampling convolution: 3×3, stride 2, 64→128, 32×32 -> 16×16 (col2im backward)."""
    return _conv_case("conv3x3/2 64->128 32x32 b128", 128, 64, 128, 32, 3, 2, 1, backward=True)


def conv_stem_fwd_bwd():
    """The network's first layer: 3×3, 3→16 channels, 32×32 (small K: memory-bound)."""
    return _conv_case("conv3x3 3->16 32x32 b128", 128, 3, 16, 32, 3, 1, 1, backward=True)


BENCHMARKS = [conv_fwd_bwd, conv_fwd, conv_stride2_fwd_bwd, conv_stem_fwd_bwd]


if __name__ == "__main__":
    for bench in BENCHMARKS:
        print(bench().line(), flush=True)
