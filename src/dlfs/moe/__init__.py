"""Mixture of experts (Module 5, Topic 37): a router chooses k of E expert MLPs per token.

- ``dlfs.moe.router``: top-k gating from the router's softmax (optionally noisy), its backward,
  the Switch Transformer load-balancing loss and the router z-loss.
- ``dlfs.moe.dispatch``: expert capacity, token dispatch with dropped-token accounting.
- ``dlfs.moe.layer``: the MoE layer (router, dispatch, Topic 28's FeedForward as experts,
  combine) with its backward, including the router's gradient.

Public names are imported on first use: ``from dlfs.moe import MoELayer``.
"""

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.moe.router": ["top_k_gates", "top_k_gates_backward", "load_balancing_loss",
                        "load_balancing_loss_backward", "router_z_loss", "router_z_loss_backward"],
    "dlfs.moe.dispatch": ["expert_capacity", "dispatch"],
    "dlfs.moe.layer": ["MoELayer"],
})
