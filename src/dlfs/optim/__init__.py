"""Topic 03: optimisers (SGD, momentum, Nesterov, RMSprop, Adam, AdamW), learning-rate
schedules and gradient clipping.

``dlfs.optim.optimizers`` holds the update rules, ``dlfs.optim.schedules`` the learning-rate
schedules and ``clip_grad_norm``. A parameter is any object with ``.data`` (an ``np.ndarray``
the optimiser updates in place) and ``.grad`` (an array of the same shape, or ``None`` when
the parameter received no gradient).
"""
