"""State-space models (Module 5, Topic 38): the discretised diagonal SSM, the selective scan and
the Mamba block.

- ``dlfs.ssm.discretize``: zero-order hold (ZOH) and the simplified B̄ ≈ ΔB of Mamba.
- ``dlfs.ssm.scan``: the linear recurrence ``h_t = a_t·h_{t-1} + b_t`` run sequentially and as a
  parallel (Hillis–Steele, log-depth) scan, its backward (a reverse scan), and the selective
  scan of Mamba with input-dependent Δ, B and C, forward and backward.
- ``dlfs.ssm.mamba``: softplus, the short causal depthwise convolution, the Mamba block (and
  its time-invariant, S4-like variant).

Public names are imported on first use: ``from dlfs.ssm import MambaBlock, selective_scan``.
"""

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.ssm.discretize": ["discretize_zoh", "discretize_simplified"],
    "dlfs.ssm.scan": ["scan_combine", "linear_recurrence", "parallel_linear_recurrence",
                      "linear_recurrence_backward", "selective_scan", "selective_scan_backward"],
    "dlfs.ssm.mamba": ["softplus", "softplus_backward", "causal_conv1d", "causal_conv1d_backward",
                       "MambaBlock"],
})
