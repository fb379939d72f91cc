"""Shared by Topic 14's tests: PyTorch versions of the block and the network, built from the
*specification* (channels, stride, depth) and loaded with the NumPy model's weights by name, so
that a wrong layout fails instead of being copied."""

from __future__ import annotations

import numpy as np
import pytest


class Mirror:
    """Builds torch modules and the name map ``numpy parameter name -> torch parameter``."""

    def __init__(self, torch):
        self.torch = torch
        nn = torch.nn

        class Block(nn.Module):
            def __init__(self, cin, cout, stride, residual):
                super().__init__()
                self.residual = residual
                self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
                self.bn1 = nn.BatchNorm2d(cout)
                self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
                self.bn2 = nn.BatchNorm2d(cout)
                self.shortcut = None
                if residual and (stride != 1 or cin != cout):
                    self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                  nn.BatchNorm2d(cout))

            def forward(self, x):
                out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
                if self.residual:
                    out = out + (x if self.shortcut is None else self.shortcut(x))
                return torch.relu(out)

        class GlobalAvgPool(nn.Module):
            def forward(self, x):
                return x.mean(dim=(2, 3))

        self.Block = Block
        self.GlobalAvgPool = GlobalAvgPool

    # -- construction from the specification ---------------------------------------------
    def block(self, cin, cout, stride=1, residual=True):
        return self.Block(cin, cout, stride, residual).double()

    def resnet(self, blocks_per_stage, widths, num_classes, in_channels, residual=True):
        nn = self.torch.nn
        layers = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
        c = widths[0]
        for stage, w in enumerate(widths):
            for b in range(blocks_per_stage):
                layers.append(self.Block(c, w, 2 if stage > 0 and b == 0 else 1, residual))
                c = w
        layers += [self.GlobalAvgPool(), nn.Linear(c, num_classes)]
        return nn.Sequential(*layers).double()

    # -- names ---------------------------------------------------------------------------
    def _names(self, module, prefix):
        """Yield (numpy name, torch tensor, transposed, is_buffer) for ``module``."""
        nn = self.torch.nn
        if isinstance(module, nn.Conv2d):
            yield f"{prefix}W", module.weight, False, False
        elif isinstance(module, nn.BatchNorm2d):
            yield f"{prefix}gamma", module.weight, False, False
            yield f"{prefix}beta", module.bias, False, False
            yield f"{prefix}running_mean", module.running_mean, False, True
            yield f"{prefix}running_var", module.running_var, False, True
        elif isinstance(module, nn.Linear):
            yield f"{prefix}W", module.weight, True, False
            yield f"{prefix}b", module.bias, False, False
        elif isinstance(module, self.Block):
            for sub in ("conv1", "bn1", "conv2", "bn2"):
                yield from self._names(getattr(module, sub), f"{prefix}{sub}.")
            if module.shortcut is not None:
                yield from self._names(module.shortcut[0], f"{prefix}shortcut.layers.0.")
                yield from self._names(module.shortcut[1], f"{prefix}shortcut.layers.1.")
        elif isinstance(module, nn.Sequential):
            for i, sub in enumerate(module):
                yield from self._names(sub, f"{prefix}layers.{i}.")

    def load(self, tmodule, model, prefix: str = "") -> list[tuple[str, object, object, bool]]:
        """Copy ``model``'s parameters and BatchNorm statistics into ``tmodule`` by name.

        Returns the parameter pairs ``(name, numpy Parameter, torch tensor, transposed)``.
        Fails (naming the parameter) when the NumPy model's layout is not the expected one."""
        torch = self.torch
        params = dict(model.named_parameters())
        state = model.state_dict()
        pairs, expected = [], set()
        for name, t, transposed, is_buffer in self._names(tmodule, prefix):
            if name not in state:
                raise AssertionError(f"expected the model to have '{name}' (shape {tuple(t.shape)}); "
                                     f"it has {sorted(state)}")
            value = state[name].T if transposed else state[name]
            if tuple(value.shape) != tuple(t.shape):
                raise AssertionError(f"'{name}': expected shape {tuple(t.shape)}, got {value.shape}")
            with torch.no_grad():
                t.copy_(torch.as_tensor(np.asarray(value, dtype=np.float64)))
            if not is_buffer:
                expected.add(name)
                pairs.append((name, params[name], t, transposed))
        extra = sorted(set(params) - expected)
        if extra:
            raise AssertionError(f"the model has parameters the design does not: {extra}")
        return pairs


@pytest.fixture
def mirror():
    from torch_oracle import torch_or_skip

    return Mirror(torch_or_skip())
