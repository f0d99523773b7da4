"""Distillation settings, kept free of torch so the command line can show their defaults cheaply."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from deploy.errors import UserError

KD_TERMS = ("response", "feature", "relation")


def parse_terms(text: str) -> tuple[str, ...]:
    """`--kd` as given on the command line: 'response,feature', or 'none' for no distillation."""
    if text.strip() == "none":
        return ()
    return tuple(t.strip() for t in text.split(",") if t.strip())


@dataclass
class KdConfig:
    """Which terms, and their weights.

    The defaults put each term at roughly 2-20% of the detection loss (about 2.4 per image)
    at the start of distilling the bundled yolov8n from the yolov8s teacher at 320 px,
    where the raw terms measured: class 0.04, box 0.7, foreground 5.0 (random adapters),
    background 0.6, relation 0.02.
    """

    terms: tuple[str, ...] = KD_TERMS
    temperature: float = 2.0
    cls: float = 1.0  # response: class scores
    box: float = 0.25  # response: box distributions
    foreground: float = 0.1
    background: float = 0.1
    relation: float = 5.0
    angle: float = 1.0  # response: the angle of an oriented-box model (ignored for upright ones)

    def __post_init__(self):
        unknown = [t for t in self.terms if t not in KD_TERMS]
        if unknown:
            raise UserError(f"--kd {','.join(unknown)}: unknown term; choose from {', '.join(KD_TERMS)}")
        if self.temperature <= 0:
            raise UserError(f"--temperature must be positive, got {self.temperature}")

    def to_dict(self) -> dict:
        return asdict(self)
