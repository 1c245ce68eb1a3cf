"""CNNs designed for 48x48 FER2013 faces in the literature, rebuilt in PyTorch."""

from __future__ import annotations

from torch import nn


def conv_bn(cin: int, cout: int, kernel: int = 3, padding: str | int = "same") -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FourConvFourFC(nn.Module):
    """4 conv blocks (64-128-256-512, BN, max-pool, dropout 0.2) and 4 fully connected layers."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        blocks, cin = [], 1
        for cout in (64, 128, 256, 512):
            blocks += [conv_bn(cin, cout), nn.MaxPool2d(2), nn.Dropout(0.2)]
            cin = cout
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(512 * 3 * 3, 512),
            nn.BatchNorm1d(512),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(512, 256),
            nn.BatchNorm1d(256),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(256, 128),
            nn.BatchNorm1d(128),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(128, num_classes),
        )

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
    ) -> None:
        super().__init__()
        layers, cin, side = [], 1, 48
        for i, w in enumerate(widths):
            second_padding = 0 if valid_second_conv else "same"
            pool = nn.AvgPool2d(2) if avg_pool_from_block is not None and i >= avg_pool_from_block else nn.MaxPool2d(2)
            layers.append(nn.Sequential(conv_bn(cin, w, kernel), conv_bn(w, w, kernel, second_padding), pool, nn.Dropout(0.25)))
            if valid_second_conv:
                side -= kernel - 1
            side //= 2
            cin = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cin * side * side, 256),
            nn.BatchNorm1d(256),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
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

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(1, 64),
            conv_bn(64, 128),
            nn.MaxPool2d(2),  # 24
            Residual(nn.Sequential(conv_bn(128, 128), conv_bn(128, 128))),
            conv_bn(128, 256),
            nn.MaxPool2d(2),  # 12
            conv_bn(256, 512),
            nn.MaxPool2d(2),  # 6
            Residual(nn.Sequential(conv_bn(512, 512), conv_bn(512, 512))),
        )
        self.classifier = nn.Sequential(nn.MaxPool2d(6), nn.Flatten(), nn.Dropout(0.2), nn.Linear(512, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class SeparableBlock(nn.Module):
    """Xception residual module: two depthwise-separable convs + max-pool, with a strided 1x1 shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()

        def separable(a: int, b: int) -> list[nn.Module]:
            return [nn.Conv2d(a, a, 3, padding=1, groups=a, bias=False), nn.Conv2d(a, b, 1, bias=False), nn.BatchNorm2d(b)]

        self.body = nn.Sequential(*separable(cin, cout), nn.ReLU(inplace=True), *separable(cout, cout), nn.MaxPool2d(3, 2, 1))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


class XceptionFER(nn.Module):
    """Mini-Xception (Arriaga et al. 2017) widened to 32 -> 512: separable residual blocks and global average pooling."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(1, 32),
            conv_bn(32, 32),
            SeparableBlock(32, 64),
            SeparableBlock(64, 128),
            SeparableBlock(128, 256),
            SeparableBlock(256, 512),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(512, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class VggFER(nn.Module):
    """Khaireddin & Chen 2021 ('Facial Emotion Recognition: State of the Art Performance on FER2013', 73.28%):
    four VGG stages 64 -> 512 with BN, trained on random 40x40 crops; two FC layers with dropout."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        stages, cin = [], 1
        for w in (64, 128, 256, 512):
            stages.append(nn.Sequential(conv_bn(cin, w), conv_bn(w, w), nn.MaxPool2d(2)))
            cin = w
        self.features = nn.Sequential(*stages)  # 40 -> 2x2x512
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(512 * 2 * 2, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(1024, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
