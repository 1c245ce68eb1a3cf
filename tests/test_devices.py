"""Device choices offered by the sidebar (torch-free, from nvidia-smi) and device resolution for training."""

from __future__ import annotations

import platform
import stat

import pytest

from fer_core.devices import describe_devices, nvidia_gpus, resolve_device


def fake_nvidia_smi(folder, script: str) -> None:
    exe = folder / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + script + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


@pytest.mark.skipif(platform.system() == "Windows", reason="shell-script stand-in for nvidia-smi")
def test_each_nvidia_gpu_becomes_a_cuda_choice(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, 'echo "NVIDIA H100 80GB HBM3"; echo "NVIDIA A10"')
    monkeypatch.setenv("PATH", str(tmp_path))
    info = describe_devices()
    assert info.cuda_devices == ["NVIDIA H100 80GB HBM3", "NVIDIA A10"]
    assert info.choices[:4] == ["auto", "cpu", "cuda:0", "cuda:1"]


@pytest.mark.skipif(platform.system() == "Windows", reason="shell-script stand-in for nvidia-smi")
def test_a_failing_or_missing_nvidia_smi_means_no_gpu(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, 'echo "NVIDIA-SMI has failed because it could not communicate with the driver" >&2; exit 9')
    monkeypatch.setenv("PATH", str(tmp_path))
    assert nvidia_gpus() == []
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert nvidia_gpus() == []
    assert describe_devices().choices[:2] == ["auto", "cpu"]


def test_resolve_device_validates_what_the_sidebar_offered():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu:0")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda:0")
