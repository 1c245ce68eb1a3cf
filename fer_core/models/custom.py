"""CNNs designed for 48x48 FER2013 faces in the literature, rebuilt in PyTorch.

Each takes the ablation knobs of the published studies (`Style`: activation, normalisation, dropout) and
anti-aliased downsampling (Zhang, ICML 2019, "Making convolutional networks shift-invariant again": blur before
every subsampling); the defaults build exactly the published networks (and the shipped checkpoints' layers).
Blur-pooling adds no weights, so a blur-pooled variant loads its parent's state dict (`--init-from`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kornia.filters import BlurPool2D, MaxBlurPool2D
from torch import nn

from .registry import ACTIVATIONS, NORMS

GROUPS = 8  # group normalisation's groups: every width here is a multiple of 8


@dataclass(frozen=True)
class Style:
    activation: str = "relu"  # one of registry.ACTIVATIONS
    norm: str = "batch"  # one of registry.NORMS
    dropout: float | None = None  # every dropout layer's rate; None: the architecture's own rates
    blur_pool: bool = False  # anti-aliased downsampling: a 3x3 binomial blur before every stride of 2

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS or self.norm not in NORMS:
            raise ValueError(f"activation must be one of {ACTIVATIONS} and norm one of {NORMS}")

    def act(self) -> nn.Module:
        return {
            "relu": lambda: nn.ReLU(inplace=True),
            "elu": lambda: nn.ELU(inplace=True),
            "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
            "gelu": nn.GELU,
            "silu": lambda: nn.SiLU(inplace=True),
        }[self.activation]()

    def norm_layer(self, channels: int, dims: int = 2) -> nn.Module:
        if self.norm == "batch":
            return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
        return nn.GroupNorm(GROUPS, channels) if self.norm == "group" else nn.Identity()

    def drop(self, rate: float) -> nn.Dropout:
        return nn.Dropout(rate if self.dropout is None else self.dropout)

    def max_pool(self, kernel: int = 2, padding: int = 0) -> nn.Module:
        """Max-pooling with stride 2; blur-pooled, the max is taken densely (stride 1) and the blur subsamples."""
        if not self.blur_pool:
            return nn.MaxPool2d(kernel, 2, padding)
        if (kernel, padding) == (2, 0):
            return MaxBlurPool2D(3, stride=2, max_pool_size=2)
        return nn.Sequential(nn.MaxPool2d(kernel, 1, padding), BlurPool2D(3, stride=2))

    def avg_pool(self) -> nn.Module:
        """2x2 average pooling with stride 2, or dense 2x2 averaging followed by a blurred subsampling."""
        return nn.Sequential(nn.AvgPool2d(2, 1), BlurPool2D(3, stride=2)) if self.blur_pool else nn.AvgPool2d(2)


DEFAULT = Style()


def conv_bn(cin: int, cout: int, kernel: int = 3, padding: str | int = "same", style: Style = DEFAULT) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, kernel, padding=padding, bias=style.norm == "none")
    return nn.Sequential(conv, style.norm_layer(cout), style.act())


class FourConvFourFC(nn.Module):
    """4 conv blocks (64-128-256-512, BN, max-pool, dropout 0.2) and 4 fully connected layers."""

    def __init__(self, num_classes: int, style: Style = DEFAULT) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        cin = 1
        for cout in (64, 128, 256, 512):
            blocks += [conv_bn(cin, cout, style=style), style.max_pool(), style.drop(0.2)]
            cin = cout
        self.features = nn.Sequential(*blocks)
        head: list[nn.Module] = [nn.Flatten()]
        for a, b in ((512 * 3 * 3, 512), (512, 256), (256, 128)):
            head += [nn.Linear(a, b), style.norm_layer(b, dims=1), style.act(), style.drop(0.2)]
        self.classifier = nn.Sequential(*head, nn.Linear(128, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class KerasCNN(nn.Module):
    """The Keras tutorial CNN: blocks of two convs + BN, pooling, dropout 0.25; dense 256, dropout 0.5.

    The published ablations vary one thing at a time: pooling type, width, kernel, depth, padding.
    """

    def __init__(
        self,
        num_classes: int,
        widths: tuple[int, ...] = (32, 64, 128),
        kernel: int = 3,
        avg_pool_from_block: int | None = None,
        valid_second_conv: bool = False,
        style: Style = DEFAULT,
    ) -> None:
        super().__init__()
        layers, cin, side = [], 1, 48
        for i, w in enumerate(widths):
            second_padding = 0 if valid_second_conv else "same"
            pool = style.avg_pool() if avg_pool_from_block is not None and i >= avg_pool_from_block else style.max_pool()
            layers.append(
                nn.Sequential(
                    conv_bn(cin, w, kernel, style=style), conv_bn(w, w, kernel, second_padding, style), pool, style.drop(0.25)
                )
            )
            if valid_second_conv:
                side -= kernel - 1
            side //= 2
            cin = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cin * side * side, 256),
            style.norm_layer(256, dims=1),
            style.act(),
            style.drop(0.5),
            nn.Linear(256, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class ResidualCNN(nn.Module):
    """The ~6.5M-parameter 'ResNet-9' style FER net: conv 64, 128 / res 128, 128 / 256 / 512 / res 512, 512."""

    def __init__(self, num_classes: int, style: Style = DEFAULT) -> None:
        super().__init__()

        def block(a: int, b: int) -> nn.Sequential:
            return conv_bn(a, b, style=style)

        self.features = nn.Sequential(
            block(1, 64),
            block(64, 128),
            style.max_pool(),  # 24
            Residual(nn.Sequential(block(128, 128), block(128, 128))),
            block(128, 256),
            style.max_pool(),  # 12
            block(256, 512),
            style.max_pool(),  # 6
            Residual(nn.Sequential(block(512, 512), block(512, 512))),
        )
        self.classifier = nn.Sequential(nn.MaxPool2d(6), nn.Flatten(), style.drop(0.2), nn.Linear(512, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class SeparableBlock(nn.Module):
    """Xception residual module: two depthwise-separable convs + max-pool, with a strided 1x1 shortcut."""

    def __init__(self, cin: int, cout: int, style: Style = DEFAULT) -> None:
        super().__init__()
        bias = style.norm == "none"

        def separable(a: int, b: int) -> list[nn.Module]:
            return [nn.Conv2d(a, a, 3, padding=1, groups=a, bias=False), nn.Conv2d(a, b, 1, bias=bias), style.norm_layer(b)]

        body = [*separable(cin, cout), style.act(), *separable(cout, cout), style.max_pool(3, padding=1)]
        self.body = nn.Sequential(*body)
        if style.blur_pool:  # the 1x1 conv and its norm are per-pixel: blurring after them equals blurring first,
            # and the state dict keeps the plain network's keys
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=bias), style.norm_layer(cout), BlurPool2D(3, stride=2))
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=bias), style.norm_layer(cout))

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


class XceptionFER(nn.Module):
    """Mini-Xception (Arriaga et al. 2017) widened to 32 -> 512: separable residual blocks and global average pooling."""

    def __init__(self, num_classes: int, style: Style = DEFAULT) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(1, 32, style=style),
            conv_bn(32, 32, style=style),
            *(SeparableBlock(a, b, style) for a, b in ((32, 64), (64, 128), (128, 256), (256, 512))),
            style.act(),
        )
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), style.drop(0.3), nn.Linear(512, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class VggFER(nn.Module):
    """Khaireddin & Chen 2021 ('Facial Emotion Recognition: State of the Art Performance on FER2013', 73.28%):
    four VGG stages 64 -> 512 with BN, trained on random 40x40 crops; two FC layers with dropout."""

    def __init__(self, num_classes: int, style: Style = DEFAULT) -> None:
        super().__init__()
        stages, cin = [], 1
        for w in (64, 128, 256, 512):
            stages.append(nn.Sequential(conv_bn(cin, w, style=style), conv_bn(w, w, style=style), style.max_pool()))
            cin = w
        self.features = nn.Sequential(*stages)  # 40 -> 2x2x512
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(512 * 2 * 2, 1024),
            style.act(),
            style.drop(0.2),
            nn.Linear(1024, 1024),
            style.act(),
            style.drop(0.2),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
