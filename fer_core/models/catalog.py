"""Every registered model: name, builder ("module:function" in this package), training recipe and metadata.

One table, free of torch: the app's Overview and `fer_core checkpoints` validate checkpoints against it
without importing torch or torchvision (the builders are imported on the first build).
"""

from __future__ import annotations

from typing import Any

from ..input_spec import InputSpec
from .registry import ModelSpec, register

_NATIVE = InputSpec(size=48, channels=1)


def _custom(
    name: str,
    builder: str,
    gradcam_layer: str,
    reference: str,
    description: str,
    parameters_m: float,
    preset: str = "custom",
    input: InputSpec = _NATIVE,
    **options: Any,
) -> None:
    register(
        ModelSpec(
            name=name,
            family="custom",
            builder=f"custom:{builder}",
            input=input,
            gradcam_layer=gradcam_layer,
            reference=reference,
            description=description,
            parameters_m=parameters_m,
            preset=preset,
            options=tuple(options.items()),
            ablations=True,
        )
    )


def _keras(name: str, description: str, parameters_m: float, gradcam_layer: str = "features.2.1", **options: Any) -> None:
    reference = "Keras-style 3-block CNN for FER2013 and its ablations"
    _custom(name, "KerasCNN", gradcam_layer, reference, description, parameters_m, **options)


# CNNs designed for 48x48 FER2013 faces in the literature (custom.py)
_custom(
    "cnn_4conv_4fc",
    "FourConvFourFC",
    gradcam_layer="features.9",
    reference="4 conv + 4 FC CNN with batch norm and dropout 0.2 (common FER2013 baseline)",
    description="Four conv blocks and four dense layers; the classic small FER baseline.",
    parameters_m=4.08,
)
_keras("keras_cnn", "3 blocks 32-32/64-64/128-128, BN, max-pool, dropout 0.25, dense 256, dropout 0.5.", parameters_m=1.47)
_keras("keras_cnn_avgpool", "Variant: average pooling in blocks 2-3.", avg_pool_from_block=1, parameters_m=1.47)
_keras("keras_cnn_wide", "Variant: doubled filters (64/128/256).", widths=(64, 128, 256), parameters_m=3.51)
_keras("keras_cnn_5x5", "Variant: 5x5 kernels.", kernel=5, parameters_m=1.98)
_keras(
    "keras_cnn_4block",
    "Variant: a fourth block of 256 filters.",
    gradcam_layer="features.3.1",
    widths=(32, 64, 128, 256),
    parameters_m=1.77,
)
_keras(
    "keras_cnn_valid",
    "Variant: 'valid' padding in the second conv of each block (half the convs).",
    valid_second_conv=True,
    parameters_m=0.81,
)
_custom(
    "residual_cnn",
    "ResidualCNN",
    gradcam_layer="features.8",
    reference="ResNet-9-style FER CNN (~6.5M parameters)",
    description="conv 64, 128 / residual 128, 128 / 256 / 512 / residual 512, 512 with max-pools.",
    parameters_m=6.57,
)
_custom(
    "xception_fer",
    "XceptionFER",
    gradcam_layer="features.5",
    reference="mini-Xception (Arriaga, Ploger & Valdenegro 2017), widened",
    description="Depthwise-separable residual blocks 32 -> 512 and global average pooling.",
    parameters_m=0.73,
)
_custom(
    "vgg_fer",
    "VggFER",
    gradcam_layer="features.3.1",
    reference="Khaireddin & Chen 2021, VGGNet for FER2013 (73.28%)",
    description="Four VGG stages 64 -> 512 with BN; trains on random 40x40 crops, predicts on the centre crop.",
    parameters_m=7.84,
    preset="vgg_fer",
    input=InputSpec(size=40, channels=1, fit="crop"),
)


def _zoo_family(
    name: str,
    family: str,
    builder: str,
    gradcam_layer: str,
    reference: str,
    description: str,
    parameters_m: float,
    head: str,
    size: int = 48,
    zoo: str = "torchvision_zoo",
    **options: Any,
) -> None:
    """A family from an ImageNet zoo (torchvision_zoo.py, timm_zoo.py): its own recipe, ImageNet weights on request."""
    register(
        ModelSpec(
            name=name,
            family=family,
            builder=f"{zoo}:{builder}",
            input=_NATIVE if size == 48 else InputSpec(size=size, channels=1),
            gradcam_layer=gradcam_layer,
            reference=reference,
            description=description,
            parameters_m=parameters_m,
            preset="torchvision",
            supports_pretrained=True,
            head=head,
            options=tuple(options.items()),
        )
    )


# torchvision families adapted to 48x48 grayscale faces (torchvision_zoo.py)
_zoo_family(
    "alexnet",
    "alexnet",
    "build_alexnet",
    gradcam_layer="features.11",
    reference="AlexNet (Krizhevsky et al. 2012), torchvision",
    description="11x11 stem at stride 1 and a 1024-wide head, so 48x48 faces survive the three pools.",
    parameters_m=2.72,
    head="classifier",
)
for _arch, _layer, _ref, _size in (("vgg16_bn", "features.42", "VGG-16", 14.99), ("vgg19_bn", "features.51", "VGG-19", 20.3)):
    _zoo_family(
        _arch,
        "vgg",
        "build_vgg",
        gradcam_layer=_layer,
        reference=f"{_ref} with BN (Simonyan & Zisserman 2015), torchvision",
        description="Global pooling after the fifth stage and a 512-wide head instead of 25088 -> 4096.",
        parameters_m=_size,
        head="classifier",
        arch=_arch,
    )
for _depth, _size in ((18, 11.17), (34, 21.28), (50, 23.52), (101, 42.51)):
    _zoo_family(
        f"resnet{_depth}",
        "resnet",
        "build_folded",
        gradcam_layer="layer4",
        reference=f"ResNet-{_depth} (He et al. 2016), torchvision",
        description="Stem at stride 1 (max-pool kept): stages run at 24, 12, 6 and 3 pixels.",
        parameters_m=_size,
        head="fc",
        arch=f"resnet{_depth}",
        stem="conv1",
        linear="fc",
    )
_zoo_family(
    "mobilenet_v2",
    "mobilenet",
    "build_folded",
    gradcam_layer="features.18",
    reference="MobileNetV2 (Sandler et al. 2018), torchvision",
    description="Stem at stride 1: final features are 3x3.",
    parameters_m=2.23,
    head="classifier",
    arch="mobilenet_v2",
    stem="features.0.0",
    linear="classifier.1",
)
_zoo_family(
    "shufflenet_v2",
    "shufflenet",
    "build_folded",
    gradcam_layer="conv5",
    reference="ShuffleNetV2 x1.0 (Ma et al. 2018), torchvision",
    description="Stem at stride 1 (max-pool kept): final features are 3x3.",
    parameters_m=1.26,
    head="fc",
    arch="shufflenet_v2_x1_0",
    stem="conv1.0",
    linear="fc",
)
for _variant, _size in (("b0", 4.02), ("b5", 28.35)):
    _zoo_family(
        f"efficientnet_{_variant}",
        "efficientnet",
        "build_folded",
        gradcam_layer="features.8",
        reference=f"EfficientNet-{_variant.upper()} (Tan & Le 2019), torchvision",
        description="Stem at stride 1: final features are 3x3.",
        parameters_m=_size,
        head="classifier",
        arch=f"efficientnet_{_variant}",
        stem="features.0.0",
        linear="classifier.1",
    )
for _depth, _size in ((121, 6.95), (169, 12.49)):
    _zoo_family(
        f"densenet{_depth}",
        "densenet",
        "build_folded",
        gradcam_layer="features.denseblock4",
        reference=f"DenseNet-{_depth} (Huang et al. 2017), torchvision",
        description="Stem at stride 1 (pool kept): final features are 3x3.",
        parameters_m=_size,
        head="classifier",
        arch=f"densenet{_depth}",
        stem="features.conv0",
        linear="classifier",
    )
_zoo_family(
    "mnasnet1_0",
    "mnasnet",
    "build_folded",
    gradcam_layer="layers.16",
    reference="MnasNet-A1 1.0 (Tan et al. 2019), torchvision; stands in for NASNet-A Mobile",
    description="The maintained mobile network found by architecture search. Stem at stride 1: final features are 3x3.",
    parameters_m=3.11,
    head="classifier",
    arch="mnasnet1_0",
    stem="layers.0",
    linear="classifier.1",
)
_zoo_family(
    "inception_v3",
    "inception",
    "build_inception_v3",
    gradcam_layer="Mixed_6e",
    reference="Inception-v3 (Szegedy et al. 2016), torchvision",
    description="Faces upsampled to its minimum input of 75x75; Grad-CAM on Mixed_6e, the last 3x3 map (the 8x8 "
    "blocks are 1x1 at this size).",
    parameters_m=21.8,
    head="fc",
    size=75,
)


# timm families of the FER literature that torchvision lacks (timm_zoo.py)
for _depth, _size in ((50, 23.51), (101, 42.5)):
    _zoo_family(
        f"resnetv2_{_depth}",
        "resnetv2",
        "build_resnetv2",
        gradcam_layer="norm",
        reference=f"ResNet-{_depth} V2, pre-activation (He et al. 2016, Identity Mappings), timm",
        description="Stem at stride 1 (max-pool kept): stages run at 24, 12, 6 and 3 pixels; Grad-CAM after the final BN-ReLU.",
        parameters_m=_size,
        head="head.fc",
        zoo="timm_zoo",
        arch=f"resnetv2_{_depth}",
    )
_zoo_family(
    "inception_resnet_v2",
    "inception",
    "build_timm",
    gradcam_layer="repeat_1",
    reference="Inception-ResNet-v2 (Szegedy et al. 2017), timm",
    description="Faces upsampled to its minimum input of 75x75; Grad-CAM on repeat_1, the last 3x3 map (the final "
    "blocks are 1x1 at this size).",
    parameters_m=54.32,
    head="classif",
    size=75,
    zoo="timm_zoo",
    arch="inception_resnet_v2",
)

# Seed architectures of the FER studies that no maintained library implements, and what stands in for them.
NOT_REGISTERED: dict[str, str] = {
    "NASNet-A Mobile": "no maintained implementation: torchvision never added it (pytorch/vision#454), timm ships only "
    "NASNet-A Large and PNASNet-5 Large (as timm:nasnetalarge and timm:pnasnet5large, 85 and 82 M weights), and "
    "Cadene's pretrainedmodels, the last to ship the mobile one, has had no release since 2018. mnasnet1_0 stands in: "
    "the maintained mobile-sized network found by architecture search (MnasNet, from the same Google Brain line of "
    "search as NASNet; 3.1 M weights here against NASNet-A Mobile's 5.3 M)",
}
