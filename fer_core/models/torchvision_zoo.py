"""torchvision families adapted to 48x48 grayscale faces.

Adaptation keeps every pretrained kernel usable: stems lose their stride (a 48x48 face would
otherwise shrink to 1x1 before the last stage), the first convolution is folded from RGB to one
channel (ImageNet normalisation folded into its weights and a bias), and the head is replaced.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision.models as tvm
from safetensors.torch import load_file
from torch import nn

from ..input_spec import MEAN, STD
from .registry import PretrainedUnavailable, pretrained_file

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def fold_rgb_conv(conv: nn.Conv2d, stride: int | None = None) -> nn.Conv2d:
    """A 1-channel conv equal to `conv` applied to a grey image replicated to RGB and ImageNet-normalised.

    Our input is z = (x - MEAN) / STD for grey x; ImageNet's is (x - m_c) / s_c per channel, which is
    linear in z: the weights scale by STD / s_c and the offsets sum into a bias.
    """
    w = conv.weight.detach()
    std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
    mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
    new_w = (w * STD / std).sum(dim=1, keepdim=True)
    bias = (w * (MEAN - mean) / std).sum(dim=(1, 2, 3))
    if conv.bias is not None:
        bias = bias + conv.bias.detach()
    kh, kw = conv.kernel_size[0], conv.kernel_size[-1]
    sh, sw = (conv.stride[0], conv.stride[-1]) if stride is None else (stride, stride)
    new = nn.Conv2d(1, conv.out_channels, (kh, kw), stride=(sh, sw), padding=(kh // 2, kw // 2), bias=True)
    assert new.bias is not None
    with torch.no_grad():
        new.weight.copy_(new_w)
        new.bias.copy_(bias)
    return new


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise PretrainedUnavailable(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PretrainedUnavailable(f"{path}: not a readable weights file ({exc})") from exc
    return state.get("state_dict", state) if isinstance(state, dict) else state


def imagenet_backbone(arch: str, pretrained: bool | str, **kwargs) -> nn.Module:
    """The unmodified torchvision model, with ImageNet weights from torchvision's weights API or a local file."""
    if not pretrained:
        return tvm.get_model(arch, weights=None, **kwargs)
    model = tvm.get_model(arch, weights=None, **kwargs)
    if (path := pretrained_file(pretrained)) is not None:
        state = _read_state_dict(path)
    else:
        try:
            state = tvm.get_model_weights(arch).DEFAULT.get_state_dict(progress=False)
        except Exception as exc:
            raise PretrainedUnavailable(
                f"ImageNet weights for {arch} are unavailable ({type(exc).__name__}: {exc}); "
                "train from scratch, or download them once and pass the file as --pretrained PATH"
            ) from exc
    missing, unexpected = model.load_state_dict(state, strict=False)
    relevant = [k for k in missing if "num_batches_tracked" not in k]
    if relevant or unexpected:
        raise PretrainedUnavailable(f"weights do not fit {arch}: missing {relevant[:3]}, unexpected {list(unexpected)[:3]}")
    return model


def _linear_head(in_features: int, num_classes: int, hidden: int, dropout: float = 0.5) -> nn.Sequential:
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


def _fold_stem(m: nn.Module, name: str, stride: int | None = None) -> None:
    """Replace the RGB convolution `name` by its folded grayscale twin."""
    conv = m.get_submodule(name)
    assert isinstance(conv, nn.Conv2d), f"{name} is not a convolution"
    m.set_submodule(name, fold_rgb_conv(conv, stride))


def _new_head(m: nn.Module, name: str, num_classes: int) -> None:
    """Replace the linear layer `name` by a fresh one with `num_classes` outputs."""
    linear = m.get_submodule(name)
    assert isinstance(linear, nn.Linear), f"{name} is not a linear layer"
    m.set_submodule(name, nn.Linear(linear.in_features, num_classes))


def build_alexnet(num_classes: int, pretrained: bool | str = False) -> nn.Module:
    m = imagenet_backbone("alexnet", pretrained)
    _fold_stem(m, "features.0", stride=1)  # 48 -> 48 -> pools -> 5x5
    m.avgpool = nn.AdaptiveAvgPool2d(1)
    m.classifier = _linear_head(256, num_classes, 1024)
    return m


def build_vgg(num_classes: int, pretrained: bool | str = False, *, arch: str) -> nn.Module:
    m = imagenet_backbone(arch, pretrained)
    _fold_stem(m, "features.0")
    m.avgpool = nn.AdaptiveAvgPool2d(1)  # 48 / 32 = 1x1 after the fifth pool; no 25088-wide FC
    m.classifier = _linear_head(512, num_classes, 512)
    return m


def build_folded(num_classes: int, pretrained: bool | str = False, *, arch: str, stem: str, linear: str) -> nn.Module:
    """The families that need only their stem at stride 1 in grayscale and a new last linear layer (ResNet,
    MobileNetV2, EfficientNet, ShuffleNetV2, DenseNet, MnasNet): `stem` and `linear` name those two modules."""
    m = imagenet_backbone(arch, pretrained)
    _fold_stem(m, stem, stride=1)
    _new_head(m, linear, num_classes)
    return m


def build_inception_v3(num_classes: int, pretrained: bool | str = False) -> nn.Module:
    # Inception-v3 needs at least 75x75: faces are upsampled to that by to_model_input.
    m = imagenet_backbone("inception_v3", pretrained, aux_logits=bool(pretrained), init_weights=not pretrained)
    m.aux_logits = False  # type: ignore[assignment]  # a plain attribute of torchvision's Inception3
    m.AuxLogits = None  # type: ignore[assignment]
    m.transform_input = False  # type: ignore[assignment]  # normalisation is folded into the first conv instead
    _fold_stem(m, "Conv2d_1a_3x3.conv")
    _new_head(m, "fc", num_classes)
    return m
