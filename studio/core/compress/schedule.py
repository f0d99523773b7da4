"""A training run's schedule: its learning rate and mosaic by epoch, and when an until-flat run stops.

A fixed run warms up, follows a cosine from lr to lr * final_lr over its epochs and trains its
last close_mosaic epochs without mosaic. An until-flat run follows the same schedule until its
best val mAP50-95 goes flat (convergence.py). Stopping there would skip what a schedule's end
gives — the rate falling to its floor and the last epochs on whole images, worth a point or more —
so it ends the way a fixed run does, only sooner: close_mosaic epochs without mosaic while the
rate falls on a cosine to its floor, then on at the floor until flat again. A run that goes flat
in its own final phase stops at once, as `epochs` (always the most it trains) is near anyway.

Everything is worked out from the history of val scores, so a resumed run takes the same path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from studio.core.convergence import WINDOW, convergence


def flat(history: list[dict]) -> bool:
    """Has the best val mAP50-95 stopped rising by the full-budget rule?"""
    return bool(convergence([h["map50_95"] for h in history])["flat"])


@dataclass(frozen=True)
class Schedule:
    cfg: object  # the run's LoopConfig: epochs, lr, final_lr (the floor, as a share of lr), warm-up, close_mosaic
    cool_from: int  # the epoch the final phase starts: epochs - close_mosaic, or sooner where the run went flat

    @classmethod
    def of(cls, cfg, history: list[dict]) -> Schedule:
        """The schedule of a run of `cfg` given its epochs so far."""
        natural = max(cfg.epochs - cfg.close_mosaic, 0)
        cool_from = natural
        if cfg.until_flat:
            cool_from = next((e for e in range(WINDOW + 1, min(len(history), natural - 1) + 1)
                              if flat(history[:e])), natural)
        return cls(cfg, cool_from)

    @property
    def cooled_early(self) -> bool:
        return self.cool_from < self.cfg.epochs - self.cfg.close_mosaic

    def rate(self, progress: float) -> float:
        """The learning rate at `progress` epochs (fractional)."""
        if not self.cooled_early or progress < self.cool_from:
            return self._cosine(progress)
        start, floor = self._cosine(self.cool_from), self.cfg.lr * self.cfg.final_lr
        u = min((progress - self.cool_from) / max(self.cfg.close_mosaic, 1), 1.0)
        return floor + (start - floor) * 0.5 * (1 + math.cos(math.pi * u))

    def mosaic(self, epoch: int) -> bool:
        return epoch < self.cool_from

    def done(self, history: list[dict]) -> bool:
        """Stop before the next epoch: an until-flat run that is flat (after its cool-down, where it had one)."""
        if not self.cfg.until_flat or not flat(history):
            return False
        return not self.cooled_early or len(history) >= self.cool_from + self.cfg.close_mosaic

    def _cosine(self, progress: float) -> float:
        """Linear warm-up, then cosine from lr to lr * final_lr over the epochs."""
        cfg = self.cfg
        warmup = min(cfg.warmup_epochs, max(cfg.epochs - 1, 0))
        if progress < warmup:
            return cfg.lr * (0.1 + 0.9 * progress / warmup)
        t = (progress - warmup) / max(cfg.epochs - warmup, 1e-9)
        return cfg.lr * (cfg.final_lr + (1 - cfg.final_lr) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))
