from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from safetensors.torch import save_file

from fer_core.data import to_model_input
from fer_core.models import NOT_REGISTERED, PretrainedUnavailable, build_model, count_parameters, get_spec, list_models
from fer_core.models.torchvision_zoo import fold_rgb_conv

SPECS = list_models()


def test_registry_holds_the_zoo_the_issue_lists():
    names = {s.name for s in SPECS}
    required = {
        "cnn_4conv_4fc",
        "keras_cnn",
        "keras_cnn_avgpool",
        "keras_cnn_wide",
        "keras_cnn_5x5",
        "keras_cnn_4block",
        "keras_cnn_valid",
        "residual_cnn",
        "xception_fer",
        "vgg_fer",
        "alexnet",
        "vgg16_bn",
        "vgg19_bn",
        "resnet18",
        "resnet34",
        "resnet50",
        "mobilenet_v2",
        "shufflenet_v2",
        "efficientnet_b0",
        "densenet121",
        "inception_v3",
        # the seed architectures of the FER studies (issue 30)
        "efficientnet_b5",
        "densenet169",
        "resnet101",
        "inception_resnet_v2",
        "resnetv2_50",
        "resnetv2_101",
        "mnasnet1_0",
    }
    assert required <= names
    assert "NASNet-A Mobile" in NOT_REGISTERED and "mnasnet1_0" in NOT_REGISTERED["NASNet-A Mobile"]
    with pytest.raises(KeyError, match="unknown model"):
        get_spec("not_a_model")


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_forward_backward(spec):
    torch.manual_seed(0)
    model = spec.build(7).train()
    x = to_model_input(torch.randint(0, 256, (2, 1, 48, 48), dtype=torch.uint8), spec.input)
    out = model(x)
    assert out.shape == (2, 7)
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    layer = model.get_submodule(spec.gradcam_layer)
    seen = []
    handle = layer.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model.eval()(x)
    handle.remove()
    # a map of at least 2x2: a 1x1 layer upsampled is one colour, no "where" (Inception's last blocks at 75 px)
    assert len(seen[0]) == 4 and min(seen[0][-2:]) >= 2, f"the Grad-CAM layer's output {tuple(seen[0])} is not a map"


def test_resnet9_style_net_has_about_6_5m_parameters():
    assert 6.0e6 < count_parameters(build_model("residual_cnn", 7)) < 7.0e6


def test_pretrained_weights_from_a_local_file_are_folded_to_grey(tmp_path):
    torch.manual_seed(1)
    reference = tvm.resnet18(weights=None).eval()
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / "r18.safetensors"))
    model = build_model("resnet18", 7, pretrained=str(tmp_path / "r18.safetensors")).eval()
    assert torch.equal(model.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    # the folded 1-channel stem equals the RGB stem on a replicated, ImageNet-normalised grey image
    grey = torch.rand(1, 1, 48, 48)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    rgb_conv = torch.nn.Conv2d(3, 64, 7, stride=1, padding=3, bias=False)
    rgb_conv.weight.data = reference.conv1.weight.data
    expected = rgb_conv((grey.expand(-1, 3, -1, -1) - mean) / std)
    got = model.conv1((grey - 0.5) / 0.5)
    assert torch.allclose(got[..., 3:-3, 3:-3], expected[..., 3:-3, 3:-3], atol=1e-4)


def test_fold_keeps_bias():
    """A conv with a bias, folded, gives what the RGB conv gives on the grey face replicated and ImageNet-normalised."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=True)
    with torch.no_grad():
        conv.bias.copy_(torch.tensor([5.0, -3.0, 0.5, 2.0]))  # large enough that dropping it cannot pass
    folded = fold_rgb_conv(conv)
    grey = torch.rand(2, 1, 12, 12)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = conv((grey.expand(-1, 3, -1, -1) - mean) / std)
    got = folded((grey - 0.5) / 0.5)
    assert folded.in_channels == 1
    assert torch.allclose(got[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], atol=1e-5)


def test_pretrained_unavailable_says_so(monkeypatch, tmp_path):
    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(tvm, "get_model_weights", offline)
    with pytest.raises(PretrainedUnavailable, match="unavailable"):
        build_model("mobilenet_v2", 7, pretrained=True)
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    with pytest.raises(PretrainedUnavailable, match="bad.pth"):
        build_model("mobilenet_v2", 7, pretrained=str(tmp_path / "bad.pth"))
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_model("keras_cnn", 7, pretrained=True)


def test_every_model_names_a_known_training_recipe():
    from fer_core.training import PRESETS, preset_for

    assert all(spec.preset in PRESETS for spec in list_models())
    assert [preset_for(m) for m in ("vgg_fer", "keras_cnn", "resnet18")] == ["vgg_fer", "custom", "torchvision"]
    assert preset_for("resnet18", pretrained=True) == "finetune"


def test_registered_sizes_match_the_built_models():
    """The sidebar shows each architecture's size from the registry (no torch at first paint): it must be true."""
    for spec in list_models():
        built = sum(p.numel() for p in spec.build(7).parameters()) / 1e6
        assert spec.parameters_m == pytest.approx(built, abs=0.006), spec.name


def _spatial_output(model: torch.nn.Module, layer: str, x: torch.Tensor) -> torch.Size:
    seen = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model.eval()(x)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize(
    "name, size, layer",
    [
        ("timm:convnext_atto", 48, "stages.2"),
        ("timm:vit_tiny_patch16_224", 48, "patch_embed.proj"),
        ("timm:inception_resnet_v2@75", 75, "repeat_1"),
    ],
)
def test_any_timm_model_by_name(name, size, layer):
    """Built by timm for one channel and 7 classes, its Grad-CAM layer a map and its head found, its size true."""
    spec = get_spec(name)
    assert spec.family == "timm" and spec.input.size == size and spec.gradcam_layer == layer and spec.preset == "timm"
    torch.manual_seed(0)
    model = spec.build(7).train()
    assert spec.parameters_m == pytest.approx(count_parameters(model) / 1e6, abs=0.006)
    x = to_model_input(torch.randint(0, 256, (2, 1, 48, 48), dtype=torch.uint8), spec.input)
    out = model(x)
    assert out.shape == (2, 7)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in model.get_submodule(spec.head).parameters())
    shape = _spatial_output(model, spec.gradcam_layer, x)
    assert len(shape) == 4 and min(shape[-2:]) >= 2


def test_timm_names_that_cannot_be_built_say_why():
    with pytest.raises(KeyError, match="has no model 'convnext_atom'; close: convnext_atto"):
        get_spec("timm:convnext_atom")
    with pytest.raises(
        ValueError, match=r"cannot take 48 px faces: it needs at least 75 px; ask for timm:inception_resnet_v2@75"
    ):
        get_spec("timm:inception_resnet_v2")
    with pytest.raises(ValueError, match="from 32 to 512 px"):
        get_spec("timm:resnet18@4000")
    with pytest.raises(KeyError, match="timm:<name>"):
        get_spec("timm:")
    assert get_spec("timm:vit_tiny_patch16_224").options == (("arch", "vit_tiny_patch16_224"), ("img_size", 48))


def test_timm_weights_from_a_local_file_and_never_a_silent_download(monkeypatch, tmp_path):
    """A local ImageNet file loads (timm sums the RGB stem for one channel, the head is new); asking for the hub's
    weights where they cannot come is an error, not a random start. No test downloads."""
    import timm
    import timm.models._builder

    torch.manual_seed(2)
    reference = timm.create_model("resnetv2_50").eval()  # 3 channels, 1000 classes: an ImageNet file's shape
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / "r50v2.safetensors"))
    model = build_model("resnetv2_50", 7, pretrained=str(tmp_path / "r50v2.safetensors"))
    assert torch.equal(model.stages[2].blocks[0].conv2.weight, reference.stages[2].blocks[0].conv2.weight)
    assert torch.allclose(model.stem.conv.weight, reference.stem.conv.weight.sum(1, keepdim=True))
    assert model.stem.conv.stride == (1, 1) and model.head.fc.out_channels == 7

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(timm.models._builder, "load_pretrained", offline)
    with pytest.raises(PretrainedUnavailable, match="ImageNet weights for convnext_atto are unavailable"):
        build_model("timm:convnext_atto", 7, pretrained=True)
    with pytest.raises(PretrainedUnavailable, match="no such weights file"):
        build_model("inception_resnet_v2", 7, pretrained=str(tmp_path / "missing.safetensors"))


def test_the_readme_model_list_is_the_registry():
    """The README's zoo table and its count say what the registry holds: names, families, input sizes, weights."""
    from .conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The model zoo", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:5] for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    listed = [(name.strip(), family.strip(), size.strip(), float(weights)) for name, family, size, weights in rows]
    assert listed == [(s.name, s.family, f"{s.input.size} px", s.parameters_m) for s in SPECS]
    assert f"zoo of {len(SPECS)} architectures" in readme
