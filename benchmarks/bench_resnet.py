"""Module 2 benchmarks: one ResNet-20 and one ResNet-9 training step on a CIFAR-sized batch."""

from __future__ import annotations

import numpy as np

from benchmarks.harness import compare, our_step, torch_step, try_torch


def _torch_resnet(torch, blocks_per_stage=3, widths=(16, 32, 64), num_classes=10):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.shortcut = nn.Sequential()
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

        def forward(self, x):
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(out + self.shortcut(x))

    layers = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    c = widths[0]
    for stage, w in enumerate(widths):
        for b in range(blocks_per_stage):
            layers.append(Block(c, w, 2 if stage > 0 and b == 0 else 1))
            c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)


def torch_resnet9(torch, width=32, num_classes=10, image_size=32):
    """``dlfs.conv.resnet9.ResNet9`` in PyTorch, built from its specification (parameters in the
    same order as ours; the tests of ResNet9 compare the two)."""
    nn = torch.nn

    def cbr(c_in, c_out, pool=False):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), *([nn.MaxPool2d(2)] if pool else []),
                nn.BatchNorm2d(c_out), nn.ReLU()]

    class Residual(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.body = nn.Sequential(*cbr(c, c), *cbr(c, c))

        def forward(self, x):
            return x + self.body(x)

    class Scale(nn.Module):
        def forward(self, x):
            return x * 0.125

    c = width
    return nn.Sequential(*cbr(3, c), *cbr(c, 2 * c, True), Residual(2 * c), *cbr(2 * c, 4 * c, True),
                         *cbr(4 * c, 8 * c, True), Residual(8 * c), nn.MaxPool2d(image_size // 8),
                         nn.Flatten(), nn.Linear(8 * c, num_classes), Scale())


def _sgd_step_pair(name, model, make_torch_model, batch, macs, goal=""):
    """Time our model's training step (label-smoothed cross-entropy, SGD with Nesterov momentum
    and weight decay) against the same step of the torch model, on one random batch."""
    from dlfs.nn.losses import CrossEntropyLoss
    from dlfs.optim.optimizers import SGD

    torch = try_torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    ours = our_step(model, CrossEntropyLoss(label_smoothing=0.1), opt, x, y)
    theirs = None
    if torch:
        tmodel = make_torch_model(torch)
        topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        theirs = torch_step(torch, tmodel, topt, x, y, label_smoothing=0.1)
    return compare(name, ours, theirs, repeats=7, warmup=2, flops=3 * 2 * macs * batch, goal=goal)


def resnet20_step(batch: int = 128):
    """Forward + backward + SGD (Nesterov, weight decay) with label-smoothed cross-entropy."""
    from dlfs.conv.resnet import resnet20

    macs = 40.8e6        # ResNet-20 forward multiply-adds per 32x32 image (1x1 projection shortcuts)
    return _sgd_step_pair(f"ResNet-20 training step, batch {batch}", resnet20(rng=0), _torch_resnet,
                          batch, macs, goal="ratio <= 2.0")


def resnet9_step(batch: int = 128):
    """The same step for Milestone 17's ResNet-9 (base width 32)."""
    from dlfs.conv.resnet9 import ResNet9

    # forward multiply-adds per 32x32 image: 3x3 convs 3->32 @32^2, 32->64 @32^2, 2x 64->64 @16^2,
    # 64->128 @16^2, 128->256 @8^2, 2x 256->256 @4^2, and the Linear layer
    macs = 9 * (3 * 32 * 1024 + 32 * 64 * 1024 + 2 * 64 * 64 * 256 + 64 * 128 * 256
                + 128 * 256 * 64 + 2 * 256 * 256 * 16) + 256 * 10
    return _sgd_step_pair(f"ResNet-9 (width 32) training step, batch {batch}", ResNet9(32, rng=0),
                          torch_resnet9, batch, macs)


def torch_airbench(torch, widths=(32, 128, 128), num_classes=10, gelu="tanh"):
    """``dlfs.conv.airbench.AirbenchNet`` in PyTorch (the tests of AirbenchNet compare the two);
    as in ours and airbench's, the BatchNorms' scales are not trained."""
    nn = torch.nn

    def group(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c_out),
                nn.GELU(approximate=gelu), nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out), nn.GELU(approximate=gelu)]

    class Scale(nn.Module):
        def forward(self, x):
            return x / 9

    w1, w2, w3 = widths
    net = nn.Sequential(nn.Conv2d(3, 24, 2), nn.GELU(approximate=gelu), *group(24, w1), *group(w1, w2),
                        *group(w2, w3), nn.MaxPool2d(3), nn.Flatten(), nn.Linear(w3, num_classes, bias=False),
                        Scale())
    for layer in net:
        if isinstance(layer, nn.BatchNorm2d):
            layer.weight.requires_grad_(False)
    return net


def airbench_step(batch: int = 512, widths=(32, 128, 128)):
    """The training step of the airbench network, widths (32, 128, 128) by default (between the
    15- and 45-minute presets of Milestone 17; the BatchNorm scales are frozen in both, the
    whitening filters are frozen in ours and trained in torch's, a 1.7 k-parameter difference)."""
    from dlfs.conv.airbench import AirbenchNet

    w1, w2, w3 = widths
    # forward multiply-adds per 32x32 image: whitening 2x2 3->24 @31^2, then per block a 3x3 conv
    # at the block's input size and one at half of it (31 -> 15 -> 7 -> 3)
    macs = (31 * 31 * 3 * 4 * 24 + 9 * (31 * 31 * 24 * w1 + 15 * 15 * w1 * w1 + 15 * 15 * w1 * w2
                                        + 7 * 7 * w2 * w2 + 7 * 7 * w2 * w3 + 3 * 3 * w3 * w3) + w3 * 10)
    # input_grad=False: neither side computes the gradient of the images (torch's input needs none)
    return _sgd_step_pair(f"airbench {widths} training step, batch {batch}",
                          AirbenchNet(widths, rng=0, input_grad=False),
                          lambda torch: torch_airbench(torch, widths), batch, macs)


def airbench_full_step(batch: int = 512):
    """The training step of airbench's own widths (64, 256, 256), the network of the
    ``airbench-45min`` and ``airbench-2h`` presets."""
    return airbench_step(batch, (64, 256, 256))


BENCHMARKS = [resnet20_step, resnet9_step, airbench_step, airbench_full_step]
