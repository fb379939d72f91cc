"""A stand-in model for the test-time-augmentation tests: logits are a fixed linear map of the
flattened image, so every augmented view's logits can be computed by hand."""


class LinearModel:
    """Logits = a fixed linear map of the flattened image (``eval()`` is a no-op).
    W: (C·H·W, K); forward: x (N, C, H, W) -> (N, K)."""

    def __init__(self, W):
        self.W = W

    def eval(self):
        pass

    def forward(self, x):
        return x.reshape(len(x), -1) @ self.W
