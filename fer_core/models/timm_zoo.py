"""timm architectures for 48x48 grayscale faces: the registered seed networks, and any timm model by name.

timm (PyTorch Image Models) builds one-channel stems itself (`in_chans=1`; with ImageNet weights it sums the RGB
kernels), any class count, and for the transformers any image size (`img_size`), so nothing here re-implements a
network. A model asked by name is "timm:<name>", or "timm:<name>@<pixels>" where it needs the faces upsampled; the
name is all that a checkpoint records of it (with timm's version), and it is rebuilt from the name on load.
"""

from __future__ import annotations

import difflib
import functools
import re
from typing import Any, cast

import timm
import torch
from torch import nn

from ..input_spec import InputSpec
from .registry import TIMM_PREFIX, ModelSpec, PretrainedUnavailable, pretrained_file, timm_name

FACE_SIZE = 48
SIZE_RANGE = (32, 512)  # below: too little face to convolve; above: upsampling a 48 px face only costs time
_NAME = re.compile(rf"^{TIMM_PREFIX}([A-Za-z0-9_.]+?)(?:@(\d+))?$")


def create(arch: str, num_classes: int, pretrained: bool | str = False, **kwargs: Any) -> nn.Module:
    """`timm.create_model` with one input channel. ImageNet weights only when asked: from a local file, or from the
    Hugging Face hub on a machine with network access; failing either is a PretrainedUnavailable, never a silent
    random start."""
    if not pretrained:
        return timm.create_model(arch, num_classes=num_classes, in_chans=1, **kwargs)
    path = pretrained_file(pretrained)
    if path is not None and not path.is_file():
        raise PretrainedUnavailable(f"{path}: no such weights file")
    overlay = {"file": str(path)} if path is not None else {}
    try:
        return timm.create_model(
            arch, pretrained=True, pretrained_cfg_overlay=overlay, num_classes=num_classes, in_chans=1, **kwargs
        )
    except Exception as exc:  # timm raises OSError, RuntimeError or hub errors: say which weights and why
        where = f"{path}: not usable weights for {arch}" if path else f"ImageNet weights for {arch} are unavailable"
        raise PretrainedUnavailable(
            f"{where} ({type(exc).__name__}: {str(exc)[:200]}); train from scratch, or pass a weights file as --pretrained PATH"
        ) from exc


def build_timm(num_classes: int, pretrained: bool | str = False, *, arch: str, **kwargs: Any) -> nn.Module:
    return create(arch, num_classes, pretrained, **kwargs)


def build_resnetv2(num_classes: int, pretrained: bool | str = False, *, arch: str) -> nn.Module:
    """Pre-activation ResNet with its stem at stride 1, as the torchvision ResNets here: stages at 24, 12, 6, 3 px."""
    m = create(arch, num_classes, pretrained)
    stem = m.get_submodule("stem.conv")
    assert isinstance(stem, nn.Conv2d), "timm's ResNetV2 stem is a convolution"
    stem.stride = (1, 1)
    return m


def parse_name(name: str) -> tuple[str, int]:
    """("convnext_atto", 96) from "timm:convnext_atto@96"; the size defaults to the faces' own 48 px."""
    match = _NAME.match(name)
    if match is None:
        raise KeyError(f"{name!r}: write timm:<name>, or timm:<name>@<pixels> for an input size")
    size = int(match[2] or FACE_SIZE)
    if not SIZE_RANGE[0] <= size <= SIZE_RANGE[1]:
        raise ValueError(f"{name}: an input size from {SIZE_RANGE[0]} to {SIZE_RANGE[1]} px, not {size}")
    return match[1], size


@functools.cache
def timm_names() -> tuple[str, ...]:
    """Every architecture this timm builds (about 1,400 names): what the sidebar's search field offers."""
    return tuple(timm.list_models())


def _on_meta(arch: str, options: dict[str, Any]) -> nn.Module:
    """The model without memory or initialisation (meta device): enough to read its shapes and layer names."""
    with torch.device("meta"):
        return timm.create_model(arch, num_classes=7, in_chans=1, **options).eval()


def _runs_at(arch: str, size: int, options: dict[str, Any]) -> bool:
    try:
        _on_meta(arch, options)(torch.empty(2, 1, size, size, device="meta"))
    except Exception:  # each network fails its own way on a too-small input (conv, pool, assert, reshape)
        return False
    return True


def _fitting_options(arch: str, size: int) -> dict[str, Any]:
    """{} when the network takes `size` px as built, {"img_size": size} when it takes it once told; else a ValueError
    that names the smallest size it takes (bisected between `size` and its ImageNet size)."""
    for options in ({}, {"img_size": size}):
        if _runs_at(arch, size, options):
            return options
    imagenet = timm.models.get_pretrained_cfg_value(arch, "input_size") or (3, 224, 224)
    low, high = size, max(size, int(imagenet[-1]))
    if not _runs_at(arch, high, {}):
        raise ValueError(f"{TIMM_PREFIX}{arch} does not run on one-channel faces at {size} or {high} px")
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if _runs_at(arch, mid, {}) else (mid, high)
    raise ValueError(
        f"{TIMM_PREFIX}{arch} cannot take {size} px faces: it needs at least {high} px; "
        f"ask for {timm_name(arch, high)} (--input-size {high})"
    )


def _spatial_layer(model: nn.Module, size: int) -> str:
    """Grad-CAM's layer: the deepest of timm's feature stages whose map (N, C, H, W) is at least 2x2 at this input size
    (at 48 px a 32x-downsampling network's last stage is 1x1: one cell, no where), else the last convolution that
    makes such a map (a transformer's stages output tokens: its patch embedding is the last map it makes)."""
    maps: list[str] = []

    def seen(name: str, module: nn.Module, out: Any) -> None:
        if getattr(out, "ndim", 0) == 4 and min(out.shape[-2:]) >= 2 and (name in stages or isinstance(module, nn.Conv2d)):
            maps.append(name)

    stages = {info["module"] for info in getattr(model, "feature_info", [])}
    hooks = [
        module.register_forward_hook(lambda m, _i, out, name=name: seen(name, m, out))
        for name, module in model.named_modules()
        if name
    ]
    model(torch.empty(2, 1, size, size, device="meta"))
    for hook in hooks:
        hook.remove()
    return next((name for name in reversed(maps) if name in stages), maps[-1])


@functools.cache
def timm_spec(name: str) -> ModelSpec:
    """The ModelSpec of a timm architecture asked by name: its Grad-CAM layer, head and size read off the model built
    on the meta device (no weights made, nothing downloaded)."""
    arch, size = parse_name(name)
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm_names(), n=3, cutoff=0.7)
        raise KeyError(f"timm {timm.__version__} has no model {arch!r}" + (f"; close: {', '.join(close)}" if close else ""))
    options = _fitting_options(arch, size)
    model = _on_meta(arch, options)
    head = cast(dict[str, Any], model.pretrained_cfg).get("classifier") or "head"
    upsampled = f", faces upsampled to {size} px" if size != FACE_SIZE else ""
    return ModelSpec(
        name=name,
        family="timm",
        builder="timm_zoo:build_timm",
        input=InputSpec(size=size, channels=1),
        gradcam_layer=_spatial_layer(model, size),
        reference=f"{arch} from timm {timm.__version__}",
        description=f"timm's {arch} as timm builds it for one input channel{upsampled}.",
        parameters_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        preset="timm",
        supports_pretrained=True,
        head=head if isinstance(head, str) else head[0],
        options=(("arch", arch), *options.items()),
    )
