"""C2f with its split made explicit, so structured pruning can follow every channel.

Ultralytics' C2f computes one 1x1 conv and `chunk`s its output in two halves. DepGraph
cannot trace a chunk to the convs on each side, so before pruning each C2f becomes a
`C2fSplit` with two 1x1 convs holding the two halves of the same weights: the output is
identical and each half can then lose channels independently (the halves may end up
with different widths, which a chunk could not express). Pruned checkpoints therefore
refer to this class; they load wherever the studio is installed.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class C2fSplit(nn.Module):
    """C2f whose first 1x1 conv is two convs: `cv0` feeds cv2 directly, `cv1` feeds the bottlenecks."""

    def __init__(self, cv0: nn.Module, cv1: nn.Module, cv2: nn.Module, m: nn.ModuleList):
        super().__init__()
        self.cv0, self.cv1, self.cv2, self.m = cv0, cv1, cv2, m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv0(x), self.cv1(x)]
        y.extend(block(y[-1]) for block in self.m)
        return self.cv2(torch.cat(y, 1))


def _half(conv: nn.Module, rows: slice) -> nn.Module:
    """A copy of an ultralytics Conv (conv + BN + act) keeping only the output channels in `rows`."""
    half = copy.deepcopy(conv)
    w = conv.conv.weight.data[rows]
    half.conv = nn.Conv2d(conv.conv.in_channels, w.shape[0], conv.conv.kernel_size, conv.conv.stride,
                          conv.conv.padding, conv.conv.dilation, conv.conv.groups, bias=conv.conv.bias is not None)
    half.conv.weight.data.copy_(w)
    if conv.conv.bias is not None:
        half.conv.bias.data.copy_(conv.conv.bias.data[rows])
    bn = conv.bn
    half.bn = nn.BatchNorm2d(w.shape[0], eps=bn.eps, momentum=bn.momentum)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(half.bn, name).data.copy_(getattr(bn, name).data[rows])
    half.bn.num_batches_tracked.copy_(bn.num_batches_tracked)
    return half


def split_c2f(model: nn.Module) -> int:
    """Replace every C2f inside `model` by an equivalent C2fSplit, in place; returns how many."""
    from ultralytics.nn.modules.block import C2f

    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not C2f:  # subclasses (C3k2, ...) compute differently
                continue
            c = child.c
            split = C2fSplit(_half(child.cv1, slice(0, c)), _half(child.cv1, slice(c, 2 * c)), child.cv2, child.m)
            for attr in ("i", "f", "type", "np"):  # ultralytics' routing attributes on each layer
                if hasattr(child, attr):
                    setattr(split, attr, getattr(child, attr))
            split.train(child.training)
            setattr(parent, name, split)
            count += 1
    return count
