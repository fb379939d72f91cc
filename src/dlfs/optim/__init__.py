"""Topic 03: optimisers (SGD, momentum, Nesterov, RMSprop, Adam, AdamW), learning-rate
schedules and gradient clipping.

``dlfs.optim.optimizers`` holds the update rules, ``dlfs.optim.schedules`` the learning-rate
schedules and ``clip_grad_norm``. A parameter is any object with ``.data`` (an ``np.ndarray``
the optimiser updates in place) and ``.grad`` (an array of the same shape, or ``None`` when
the parameter received no gradient). An optimiser's ``state_dict()`` / ``load_state_dict()``
save and restore its state, so training can resume from a checkpoint.

Public names are imported on first use: ``from dlfs.optim import AdamW, CosineWithWarmup``.
"""

from dlfs.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "dlfs.optim.optimizers": ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW"],
    "dlfs.optim.schedules": ["LRScheduler", "StepLR", "CosineWithWarmup", "Triangular", "clip_grad_norm"],
})
