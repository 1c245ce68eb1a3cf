"""Every registered model: name, builder ("module:function" in this package) and metadata.

One table, free of torch: the app's Overview and `fer_core checkpoints` validate checkpoints against it
without importing torch or torchvision (the builders are imported on the first build).
"""

from __future__ import annotations

from ..input_spec import InputSpec
from .registry import ModelSpec, register

_NATIVE = InputSpec(size=48, channels=1)
_KERAS_REF = "Keras-style 3-block CNN for FER2013 and its ablations"


def _keras(name: str, description: str, gradcam: str = "features.2.1", **options) -> None:
    register(ModelSpec(name, "custom", "custom:KerasCNN", _NATIVE, gradcam, _KERAS_REF, description, tags=("keras",),
                       options=tuple(options.items())))


# CNNs designed for 48x48 FER2013 faces in the literature (custom.py)
register(ModelSpec("cnn_4conv_4fc", "custom", "custom:FourConvFourFC", _NATIVE, "features.9",
                   "4 conv + 4 FC CNN with batch norm and dropout 0.2 (common FER2013 baseline)",
                   "Four conv blocks and four dense layers; the classic small FER baseline."))
_keras("keras_cnn", "3 blocks 32-32/64-64/128-128, BN, max-pool, dropout 0.25, dense 256, dropout 0.5.")
_keras("keras_cnn_avgpool", "Variant: average pooling in blocks 2-3.", avg_pool_from_block=1)
_keras("keras_cnn_wide", "Variant: doubled filters (64/128/256).", widths=(64, 128, 256))
_keras("keras_cnn_5x5", "Variant: 5x5 kernels.", kernel=5)
_keras("keras_cnn_4block", "Variant: a fourth block of 256 filters.", "features.3.1", widths=(32, 64, 128, 256))
_keras("keras_cnn_valid", "Variant: 'valid' padding in the second conv of each block (half the convs).", valid_second_conv=True)
register(ModelSpec("residual_cnn", "custom", "custom:ResidualCNN", _NATIVE, "features.8",
                   "ResNet-9-style FER CNN (~6.5M parameters)",
                   "conv 64, 128 / residual 128, 128 / 256 / 512 / residual 512, 512 with max-pools."))
register(ModelSpec("xception_fer", "custom", "custom:XceptionFER", _NATIVE, "features.5",
                   "mini-Xception (Arriaga, Ploger & Valdenegro 2017), widened",
                   "Depthwise-separable residual blocks 32 -> 512 and global average pooling."))
register(ModelSpec("vgg_fer", "custom", "custom:VggFER", InputSpec(size=40, channels=1, fit="crop"), "features.3.1",
                   "Khaireddin & Chen 2021, VGGNet for FER2013 (73.28%)",
                   "Four VGG stages 64 -> 512 with BN; trains on random 40x40 crops, predicts on the centre crop."))


def _tv(name: str, family: str, builder: str, gradcam: str, reference: str, description: str, head: str,
        size: int = 48, **options) -> None:
    spec = _NATIVE if size == 48 else InputSpec(size=size, channels=1)
    register(ModelSpec(name, family, f"torchvision_zoo:{builder}", spec, gradcam, reference, description,
                       supports_pretrained=True, head=head, options=tuple(options.items())))


# torchvision families adapted to 48x48 grayscale faces (torchvision_zoo.py)
_tv("alexnet", "alexnet", "build_alexnet", "features.11", "AlexNet (Krizhevsky et al. 2012), torchvision",
    "11x11 stem at stride 1 and a 1024-wide head, so 48x48 faces survive the three pools.", "classifier")
for _arch, _layer, _ref in (("vgg16_bn", "features.42", "VGG-16"), ("vgg19_bn", "features.51", "VGG-19")):
    _tv(_arch, "vgg", "build_vgg", _layer, f"{_ref} with BN (Simonyan & Zisserman 2015), torchvision",
        "Global pooling after the fifth stage and a 512-wide head instead of 25088 -> 4096.", "classifier", arch=_arch)
for _depth in (18, 34, 50):
    _tv(f"resnet{_depth}", "resnet", "build_resnet", "layer4", f"ResNet-{_depth} (He et al. 2016), torchvision",
        "Stem at stride 1 (max-pool kept): stages run at 24, 12, 6 and 3 pixels.", "fc", arch=f"resnet{_depth}")
_tv("mobilenet_v2", "mobilenet", "build_features_stem", "features.18", "MobileNetV2 (Sandler et al. 2018), torchvision",
    "Stem at stride 1: final features are 3x3.", "classifier", arch="mobilenet_v2")
_tv("shufflenet_v2", "shufflenet", "build_shufflenet_v2", "conv5", "ShuffleNetV2 x1.0 (Ma et al. 2018), torchvision",
    "Stem at stride 1 (max-pool kept): final features are 3x3.", "fc")
_tv("efficientnet_b0", "efficientnet", "build_features_stem", "features.8", "EfficientNet-B0 (Tan & Le 2019), torchvision",
    "Stem at stride 1: final features are 3x3.", "classifier", arch="efficientnet_b0")
_tv("densenet121", "densenet", "build_densenet121", "features.denseblock4", "DenseNet-121 (Huang et al. 2017), torchvision",
    "Stem at stride 1 (pool kept): final features are 3x3.", "classifier")
_tv("inception_v3", "inception", "build_inception_v3", "Mixed_7c", "Inception-v3 (Szegedy et al. 2016), torchvision",
    "Faces upsampled to its minimum input of 75x75.", "fc", size=75)
