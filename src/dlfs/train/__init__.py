"""Training: the loop, evaluation and metrics (``dlfs.train.loop``, Topic 10) and the complete,
resumable CNN recipe with checkpoints (``dlfs.train.recipe``, Topic 17)."""
