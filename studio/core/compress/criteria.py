"""Channel-importance criteria for structured pruning, as torch-pruning importance objects.

- l1, l2: magnitude of each channel's weights across its dependency group (filter norms);
- bn: |gamma| of the BatchNorm after each conv (Network Slimming; meaningful after a
  sparse-training phase that pushes unneeded gammas toward zero);
- taylor: first-order Taylor, |weight * grad| summed per channel (needs gradients of
  the training loss, which the pruning job computes on a few batches);
- energy: how much of the layer's dominant structure a filter carries. With the filter
  matrix W = U S V^T (one row per filter), filter i scores sum_j (U_ij S_j)^2 * S_j^2 / sum_k S_k^2:
  its energy along each singular direction, weighted by that direction's share of the
  layer's energy. The plain sum over j would be the squared L2 norm; the weighting is what
  ranks a filter that lives in the layer's minor directions (noise) below one of equal
  norm that lies in the directions most filters share.
"""
from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function

from studio.core.compress.options import CRITERIA

NEEDS_GRADIENTS = ("taylor",)


class EnergyImportance(tp.importance.GroupMagnitudeImportance):
    """Scores output channels of the group's convs by the SVD energy they carry (see the module docstring)."""

    def __init__(self):
        super().__init__(p=2, group_reduction="mean", normalizer="mean", target_types=[nn.modules.conv._ConvNd])

    @staticmethod
    def filter_energy(weight: torch.Tensor) -> torch.Tensor:
        """Per-filter energy of a (out, ...) weight, weighted by each singular direction's share."""
        w = weight.detach().flatten(1).double()
        u, s, _ = torch.linalg.svd(w, full_matrices=False)
        share = s**2 / (s**2).sum().clamp_min(1e-30)
        return ((u * s) ** 2 * share).sum(1).float()

    @torch.no_grad()
    def __call__(self, group):
        scores, roots = [], []
        for i, (dep, idxs) in enumerate(group):
            layer = dep.target.module
            if dep.handler != function.prune_conv_out_channels or not isinstance(layer, nn.modules.conv._ConvNd):
                continue
            scores.append(self.filter_energy(layer.weight)[idxs])
            roots.append(group[i].root_idxs)
        if not scores:
            return None
        return self._normalize(self._reduce(scores, roots), self.normalizer)


class Finite(tp.importance.Importance):
    """Wraps a criterion so a group whose scores are all zero (normalised to 0/0) ranks lowest instead of NaN.

    A NaN in the global ranking stops the pruner from removing anything; a group with no
    gradient (Taylor) or silenced gammas (BN) is exactly the one that may go.
    """

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, group):
        scores = self.inner(group)
        return None if scores is None else torch.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)


def make_importance(criterion: str):
    """The torch-pruning importance for a criterion name of CRITERIA (NaN-safe)."""
    return Finite(_importance(criterion))


def _importance(criterion: str):
    if criterion == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if criterion == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if criterion == "bn":
        return tp.importance.BNScaleImportance()
    if criterion == "taylor":
        return tp.importance.GroupTaylorImportance()
    if criterion == "energy":
        return EnergyImportance()
    raise ValueError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
