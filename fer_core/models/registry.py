"""The model registry: name -> builder + metadata. The CLI, the app and the tests discover models here.

Specs name their builder as "module:function" inside fer_core.models and import it on the first build,
so reading the registry (listing models, validating a checkpoint's meta.json) never imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..input_spec import InputSpec

if TYPE_CHECKING:
    from torch import nn


# The ablation knobs of the FER studies, taken by the custom CNNs (custom.Style); the defaults are the published nets.
ACTIVATIONS = ("relu", "elu", "leaky_relu", "gelu", "silu")
NORMS = ("batch", "group", "none")
STYLE_DEFAULTS: dict[str, Any] = {"activation": "relu", "norm": "batch", "dropout": None, "blur_pool": False}


# Any timm architecture by name: "timm:<name>", or "timm:<name>@<pixels>" for one that needs faces upsampled.
TIMM_PREFIX = "timm:"


def timm_name(arch: str, size: int = 48) -> str:
    """How a timm architecture is asked for: "timm:convnext_atto", "timm:inception_resnet_v2@75" (faces upsampled)."""
    return f"{TIMM_PREFIX}{arch}" + ("" if size == 48 else f"@{size}")


class PretrainedUnavailable(RuntimeError):
    """ImageNet weights could not be obtained (offline, or a bad local file)."""


def pretrained_file(pretrained: bool | str) -> Path | None:
    """The local weights file `pretrained` names; None where it asks for the library's own ImageNet weights."""
    if isinstance(pretrained, str) and pretrained.lower() not in ("imagenet", "true", "1"):
        return Path(pretrained).expanduser()
    return None


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    name: str
    family: str  # "custom", the torchvision or timm family ("resnet", "vgg", ...), or "timm" for a model asked by name
    builder: str  # "module:function" in fer_core.models; function(num_classes, [pretrained], **options) -> nn.Module
    input: InputSpec
    gradcam_layer: str  # dotted module name whose activations Grad-CAM weighs
    reference: str  # the published design it follows
    description: str
    parameters_m: float  # millions of weights with 7 classes (tests/test_models.py checks it against the built model)
    preset: str  # its training recipe (fer_core.training.presets.PRESETS); "finetune" replaces it with ImageNet weights
    supports_pretrained: bool = False
    head: str = "classifier"  # dotted name of the classification head: what stays trainable with a frozen backbone
    options: tuple[tuple[str, Any], ...] = ()  # keyword arguments for the builder (the variants of a family)
    ablations: bool = False  # takes activation, norm, dropout and blur_pool (custom.Style)

    def style_options(self, knobs: dict[str, Any]) -> list[str]:
        """The ablation knobs set away from their defaults; a one-line ValueError naming them where the model takes
        none (only the custom FER CNNs do)."""
        changed = [k for k, v in knobs.items() if v != STYLE_DEFAULTS[k]]
        if changed and not self.ablations:
            raise ValueError(f"{self.name} takes no {', '.join(changed)} option (only the custom FER CNNs do)")
        return changed

    def build(
        self,
        num_classes: int,
        pretrained: bool | str = False,
        activation: str = "relu",
        norm: str = "batch",
        dropout: float | None = None,
        blur_pool: bool = False,
    ) -> nn.Module:
        if pretrained and not self.supports_pretrained:
            raise ValueError(f"{self.name} has no ImageNet weights (only torchvision and timm families do)")
        knobs = dict(activation=activation, norm=norm, dropout=dropout, blur_pool=blur_pool)
        changed = self.style_options(knobs)
        module, function = self.builder.split(":")
        builder = getattr(importlib.import_module(f"{__package__}.{module}"), function)
        kwargs = dict(self.options) | ({"pretrained": pretrained} if self.supports_pretrained else {})
        if changed:
            kwargs["style"] = importlib.import_module(f"{__package__}.custom").Style(**knobs)
        model = builder(num_classes, **kwargs)
        model.get_submodule(self.gradcam_layer)  # fail at build time, not in the Explain page
        model.get_submodule(self.head)
        return model


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    """A registered model, or any timm architecture asked as "timm:<name>[@<pixels>]" (which imports timm and torch).

    KeyError for a name neither knows; ValueError for a timm model that cannot take the faces at that size."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith(TIMM_PREFIX):
        return importlib.import_module(f"{__package__}.timm_zoo").timm_spec(name)
    raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}, or timm:<name> for any timm model")


def list_models() -> list[ModelSpec]:
    """The registered models (timm's zoo by name is open-ended: `timm_zoo.timm_names`)."""
    return list(_REGISTRY.values())


def build_model(name: str, num_classes: int, pretrained: bool | str = False) -> nn.Module:
    return get_spec(name).build(num_classes, pretrained)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def spec_parameters(spec: ModelSpec, num_classes: int = 7) -> int:
    """Parameter count without allocating or initialising weights (built on the meta device)."""
    import torch

    with torch.device("meta"):
        return count_parameters(spec.build(num_classes))
