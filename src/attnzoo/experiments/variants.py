"""The variants a comparison trains, by name: the default set and the presets.

A variant is a :class:`~attnzoo.models.spec.ModelSpec` written as its label — ``se``,
``self_attn@3``, ``cbam:variant=paper``, ``cbam@34:kernel_size=3+aff`` — parsed by
:func:`~attnzoo.models.spec.parse_variant`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ..models.spec import ModelSpec, parse_variant

# The seed modules of the user's documents: SE, CBAM, SAGAN self-attention (in the last stage,
# where H·W is small, as SAGAN and non-local networks place it), AFF and iAFF, HA-CNN soft attention.
DEFAULT_VARIANTS = ("plain", "se", "cbam", "self_attn@3", "aff", "iaff", "ha_soft")

# Sweeps that put the source posts' claims to the test (docs/results/ablations/): each group is
# compared with plain in one run, so one Holm correction covers all of them.
ABLATION_GROUPS: dict[str, tuple[str, ...]] = {
    # min_hidden=1: with ResNet-8's 16-64 channels the default floor of 8 would make r = 8, 16 and 32
    # the same network; without it the hidden width is C // r (1-16 here), as in the paper.
    "SE reduction r": tuple(f"se:reduction={r},min_hidden=1" for r in (4, 8, 16, 32)),
    "CBAM channel pooling": ("cbam:pools=avg", "cbam"),
    "CBAM spatial kernel": ("cbam:kernel_size=3", "cbam"),
    "CBAM spatial gate: authors' code (BN) vs printed equation": ("cbam", "cbam:variant=paper"),
    "CBAM halves": ("cbam_channel", "cbam_spatial", "cbam"),
    "MS-CAM branches": ("mscam", "mscam:branches=global_global", "mscam:branches=local_local"),
    "fusion": ("aff", "iaff"),
    "HA soft attention and its halves": ("ha_soft", "ha_spatial", "ha_channel"),
}

# Fashion-MNIST (issue 27): the seed modules, ECA, and the ablations the seeds' claims rest on — CBAM's
# halves against the whole, and add (plain's residual sum) against AFF and iAFF.
FASHION_VARIANTS = (*DEFAULT_VARIANTS[:3], "eca", *DEFAULT_VARIANTS[3:], "cbam_channel", "cbam_spatial")

# A preset is variants, seeds, and TrainConfig fields (flat names, as on the command line); a flag
# given on the command line overrides the preset's value.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {"variants": DEFAULT_VARIANTS},
    "ablations": {"variants": ("plain", *dict.fromkeys(v for group in ABLATION_GROUPS.values() for v in group)), "seeds": 5},
    "long": {"variants": ("plain", "se", "cbam"), "seeds": 5, "model": "cifar_resnet20", "epochs": 10},
    # The CPU budget (80 min for 5 seeds on 2 cores, docs/results/fashion/): a 5,000-image subset drawn
    # by --data-seed, 5 epochs, the full 10,000-image test set.
    "fashion": {"variants": FASHION_VARIANTS, "seeds": 5, "dataset": "fashion-mnist", "model": "cifar_resnet20",
                "train_size": 5000, "epochs": 5},
    # The full budget, for a GPU: all 60,000 training images, 30 epochs at batch 128 (peak lr 0.2 by
    # the recipe's linear rule).
    "fashion-full": {"variants": FASHION_VARIANTS, "seeds": 5, "dataset": "fashion-mnist", "model": "cifar_resnet20",
                     "epochs": 30, "batch_size": 128},
}
# What a preset may set besides TrainConfig fields.
PRESET_KEYS = ("variants", "seeds")


def parse_variants(texts: Sequence[str], model: str, model_options: Optional[dict[str, Any]] = None, reference: str = "plain") -> list[ModelSpec]:
    """Specs for ``texts`` on ``model``, plain first (added if missing), duplicates refused."""
    specs = [parse_variant(t, model, model_options) for t in texts]
    labels = [s.label for s in specs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"--variants names {', '.join(repeated)} more than once")
    if reference not in labels:
        specs.insert(0, parse_variant(reference, model, model_options))
    return specs
