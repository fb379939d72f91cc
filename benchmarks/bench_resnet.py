"""Module 2 benchmark: one ResNet-20 training step on a CIFAR-sized batch."""

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


def resnet20_step(batch: int = 128):
    """Forward + backward + SGD (Nesterov, weight decay) with label-smoothed cross-entropy."""
    from dlfs.conv.resnet import resnet20
    from dlfs.nn.losses import CrossEntropyLoss
    from dlfs.optim.optimizers import SGD

    torch = try_torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    model = resnet20(rng=0)
    loss_fn = CrossEntropyLoss(label_smoothing=0.1)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)

    ours = our_step(model, loss_fn, opt, x, y)

    theirs = None
    if torch:
        tmodel = _torch_resnet(torch)
        topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        theirs = torch_step(torch, tmodel, topt, x, y, label_smoothing=0.1)

    macs = 40.8e6        # ResNet-20 forward multiply-adds per 32x32 image (1x1 projection shortcuts)
    return compare(f"ResNet-20 training step, batch {batch}", ours, theirs, repeats=7, warmup=2,
                   flops=3 * 2 * macs * batch, goal="ratio <= 2.0")


BENCHMARKS = [resnet20_step]
