"""The compression stages' options, declared once: recipe keys and checks, `studio prune|distill|qat` options,
the stages' request defaults and the wizard's choices all come from these tables.

Free of torch, so `--help` and recipe checks stay quick.
"""
from __future__ import annotations

from pathlib import Path

from deploy.convert.rknn_convert import ALGORITHMS, PLATFORMS
from deploy.runtime.options import Option, Options
from studio.core.compress.kd_config import KD_TERMS, KdConfig, parse_terms

CRITERIA = ("l1", "l2", "bn", "taylor", "energy")
QAT_TERMS = ("response", "feature")
# recipe key -> KdConfig field: the distillation weights of the distill and qat sections
KD_WEIGHTS = {"w_cls": "cls", "w_box": "box", "w_fg": "foreground", "w_bg": "background", "w_relation": "relation",
              "w_angle": "angle"}


def terms(value) -> tuple[str, ...]:
    """'response,feature', a list of terms, or 'none' as a tuple of known terms."""
    found = parse_terms(value) if isinstance(value, str) else tuple(value)
    if any(term not in KD_TERMS for term in found):
        raise ValueError(value)
    return found


def whole_numbers(value) -> tuple[int, ...]:
    """'0,1,9', [0, 1, 9] or 9 as a tuple of whole numbers."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    numbers = []
    for item in (item for item in items if str(item).strip()):
        if isinstance(item, bool) or float(item) != int(float(item)):
            raise ValueError(item)
        numbers.append(int(float(item)))
    return tuple(numbers)


def bit_schedule(value) -> list[int]:
    """A bit-width schedule: widths in 2..16 ending at 8, e.g. '16,8' or [16, 8]."""
    widths = list(whole_numbers(value))
    if not widths or widths[-1] != 8 or any(not 2 <= b <= 16 for b in widths):
        raise ValueError(value)
    return widths


def algorithms(value) -> list[str]:
    """PTQ calibration algorithms as a list ([] for none)."""
    if not isinstance(value, (list, tuple)) or any(a not in ALGORITHMS for a in value):
        raise ValueError(value)
    return list(value)


def _terms(default: tuple[str, ...]) -> Option:
    return Option("kd", terms, ",".join(default), "Distillation terms: response, feature, relation; 'none' for none.",
                  kind=f"known terms: {', '.join(KD_TERMS)}, or none")


def _epochs(default: int, help: str) -> Option:
    return Option("epochs", int, default, help, low=1)


BATCH = Option("batch", int, 16, "Images per step.", low=1)
VAL_LIMIT = Option("val_limit", int, None, "Validate on the first N val images only (faster).", low=1, empty=True)
TEMPERATURE = Option("temperature", float, KdConfig.temperature, "Softening temperature of the response terms.",
                     positive=True)
WEIGHTS = tuple(Option(key, float, getattr(KdConfig, field), f"Weight of the {what} term.", low=0)
                for (key, field), what in zip(KD_WEIGHTS.items(), ("class-score response", "box-distribution response",
                                                                   "foreground feature", "background feature",
                                                                   "relation", "angle response (oriented boxes)")))
IMGSZ = Option("imgsz", int, 320, "Training image size (a multiple of 32).", low=32)
SEED = Option("seed", int, 0, "Seed of the shuffling and augmentation; rerun with another to see the run-to-run "
                              "spread.", low=0)
UNTIL_FLAT = Option("until_flat", bool, False, "End before --epochs once the best val mAP50-95 rose by under "
                                               "0.3 points over the last 10 epochs: first the schedule's end (10 "
                                               "epochs without mosaic, the rate falling to its floor), then on "
                                               "until flat again (--epochs stays the schedule's length and the "
                                               "most).")

PRUNE = Options(
    Option("target_flops", float, None, "Share of the GFLOPs to keep, e.g. 0.5.", low=0, high=1, positive=True),
    Option("target_params", float, None, "Share of the parameters to keep (instead of GFLOPs).", low=0, high=1,
           positive=True),
    Option("criterion", str, "l1", "Channel ranking: " + " | ".join(CRITERIA) + ".", choices=CRITERIA),
    Option("scope", str, "global", "global: rank channels across layers; layer: same ratio everywhere.",
           choices=("global", "layer")),
    Option("protect", whole_numbers, (), "Layer indices never pruned, e.g. 0,1 (see `studio models inspect --layers`).",
           low=0, empty=True, kind="layer indices like 0,1,9"),
    Option("steps", int, 1, "Progressive pruning: prune in N steps, fine-tuning after each.", low=1),
    Option("schedule_k", float, 3.0, "Schedule exponent k of p_i = p_f(1-(1-i/n)^k).", positive=True),
    Option("finetune_epochs", int, 0, "Fine-tuning epochs after each step (needs --data).", low=0),
    Option("sparsity_epochs", int, 0, "bn criterion: epochs with an L1 penalty on BN gammas first.", low=0),
    Option("bn_l1", float, 1e-3, "Weight of that L1 penalty.", low=0),
    _terms(KD_TERMS),
    BATCH,
    Option("round_to", int, 8, "Keep channel counts multiples of this (0: any count).", low=0, empty=True),
    VAL_LIMIT,
)
DISTILL = Options(
    _epochs(10, "Training epochs."), _terms(KD_TERMS), TEMPERATURE, *WEIGHTS, BATCH,
    Option("lr", float, 0.001, "Peak learning rate (AdamW, cosine decay).", positive=True), VAL_LIMIT, SEED,
    UNTIL_FLAT,
)
QAT = Options(
    _epochs(5, "Training epochs over all bit-width stages."),
    Option("bits", bit_schedule, (8,), "Bit-width schedule ending at 8, e.g. 16,8: train at each width in turn.",
           kind="a schedule of whole numbers in 2..16 that ends at 8 (the NPU's int8), e.g. 16,8"),
    _terms(QAT_TERMS),
    Option("teacher", Path, None, "Float teacher .pt; default: the model's own float self.", empty=True,
           kind="a file path"),
    TEMPERATURE, *WEIGHTS,
    Option("learn_scales", bool, True, "Train the grids' scales (LSQ) or keep the calibrated ones.",
           off="--frozen-scales"),
    Option("inner_grids", bool, False, "Also round inside each conv + SiLU in training (its pre-activation sum "
                                       "and sigmoid), as the exported int8 graph does; by default those grids "
                                       "only track their range and round in the export."),
    Option("tune_teacher", bool, False, "Fine-tune the teacher toward what the int8 student can learn "
                                        "(a MAML-style inner/outer loop; slower)."),
    Option("tune_every", int, 10, "With --tune-teacher: training steps between teacher updates.", low=1),
    Option("calib_batches", int, 8, "Training batches whose ranges place the initial grids.", low=1),
    BATCH,
    Option("lr", float, 1e-4, "Peak learning rate (AdamW, cosine decay).", positive=True),
    VAL_LIMIT, SEED, UNTIL_FLAT,
)
EXPORT = Options(
    Option("platform", str, "rk3588", "Target NPU.", choices=PLATFORMS),
    Option("ptq", algorithms, ("normal", "kl_divergence"), "Post-training int8 variants, one per algorithm.",
           kind=f"a list of {', '.join(ALGORITHMS)} (or [] for none)"),
    Option("calib_count", int, 100, "Calibration images for post-training int8 (0: all).", low=0),
)
VERIFY = Options(Option("limit", int, None, "Images for the simulator's mAP (default: all).", low=1, empty=True),
                 Option("split", str, "val", "Split every variant is scored on: val, or test held back from "
                                             "choosing the best epoch too.", choices=("val", "test")),
                 Option("original", bool, False, "Also score the recipe's model as it came in (before pruning and "
                                                 "training), as the first row: the reference every Δ is taken from."))
FINETUNE = Options(
    _epochs(10, "Epochs that fit a model of other classes (or an architecture) to the data's classes; a teacher "
                "that needs it is trained with the same budget."),
    BATCH, Option("lr", float, 0.001, "Peak learning rate (AdamW, cosine decay).", positive=True), VAL_LIMIT,
)
SECTIONS = {"finetune": FINETUNE, "prune": PRUNE, "distill": DISTILL, "qat": QAT, "export": EXPORT,
            "verify": VERIFY}
