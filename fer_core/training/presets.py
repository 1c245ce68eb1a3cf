"""Named training recipes per model family; CLI and UI start from these and override single knobs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..models import get_spec
from .config import TrainConfig

# Recipes follow the published setups: small custom CNNs with Adam; torchvision families and the
# FER VGG with SGD + Nesterov and a long cosine schedule (Khaireddin & Chen 2021 use SGD, 300 epochs).
PRESETS: dict[str, dict] = {
    "custom": dict(
        epochs=60,
        batch_size=128,
        optimizer="adam",
        lr=1e-3,
        weight_decay=1e-4,
        scheduler="cosine",
        warmup_epochs=2,
        augment="light",
        label_smoothing=0.05,
    ),
    "vgg_fer": dict(
        epochs=150,
        batch_size=64,
        optimizer="sgd",
        lr=0.01,
        weight_decay=5e-4,
        scheduler="cosine",
        warmup_epochs=3,
        augment="strong",
        label_smoothing=0.0,
    ),
    "torchvision": dict(
        epochs=80,
        batch_size=128,
        optimizer="sgd",
        lr=0.05,
        weight_decay=5e-4,
        scheduler="cosine",
        warmup_epochs=3,
        augment="strong",
        label_smoothing=0.05,
    ),
    # timm's modern networks (ConvNeXt, EfficientNetV2, ViT, ... asked as timm:<name>) train with AdamW, as timm's own
    # recipes do; SGD at the torchvision recipe's 0.05 diverges on their layer norms.
    "timm": dict(
        epochs=80,
        batch_size=128,
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.05,
        scheduler="cosine",
        warmup_epochs=3,
        augment="strong",
        label_smoothing=0.05,
    ),
    "finetune": dict(
        epochs=30,
        batch_size=128,
        optimizer="adamw",
        lr=3e-4,
        weight_decay=0.05,
        scheduler="cosine",
        warmup_epochs=2,
        augment="strong",
        label_smoothing=0.05,
    ),
    "quick": dict(epochs=3, batch_size=128, optimizer="adam", lr=1e-3, scheduler="cosine", warmup_epochs=0, augment="light"),
}


def preset_for(model: str, pretrained: bool | str = False) -> str:
    """The default recipe name for a registered model: its own, or fine-tuning when it starts from ImageNet."""
    return "finetune" if pretrained else get_spec(model).preset


def make_config(model: str, preset: str | None = None, **overrides) -> TrainConfig:
    """A TrainConfig from the model's recipe (or a named one), with any non-None overrides applied (config_from)."""
    name = preset or preset_for(model, overrides.get("pretrained") or False)
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return config_from(TrainConfig(model=model, **PRESETS[name]), **{k: v for k, v in overrides.items() if v is not None})


def config_from(start: TrainConfig, **changes: Any) -> TrainConfig:
    """A run's config from a starting one (a recipe's, or a previous run's to run again) with `changes`, None
    included (a cleared time budget is None).

    Other epochs than the start's keep its share of warm-up unless the warm-up is given: 3 of 80 epochs is none in a
    2-epoch run, which otherwise never left its warm-up (a time budget keeps the start's, its epochs being only a
    bound)."""
    if "epochs" in changes and "warmup_epochs" not in changes and not changes.get("time_budget_min"):
        changes["warmup_epochs"] = start.warmup_epochs * changes["epochs"] // start.epochs
    return replace(start, **changes)
