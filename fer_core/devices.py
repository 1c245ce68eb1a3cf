"""Pick the compute device, so the same command runs on a laptop, a Mac or a GPU server."""

from __future__ import annotations

import platform
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> first CUDA GPU, else Apple MPS, else CPU; 'cuda:1', 'mps', 'cpu' as given, validated."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("CUDA was requested but no CUDA GPU is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{name}: only {torch.cuda.device_count()} CUDA device(s) present")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("MPS was requested but is not available")
    return device


def nvidia_gpus() -> list[str]:
    """GPU names from `nvidia-smi`, [] without an NVIDIA driver. Torch-free: the sidebar lists devices before
    torch is imported; whether the installed torch can use a GPU is checked by resolve_device in the job."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def physical_device(name: str) -> str:
    """The device a name means, without torch ('auto' -> cuda:0, mps or cpu; 'cuda' -> cuda:0): what a lock is on."""
    name = (name or "auto").lower()
    if name == "auto":
        apple_silicon = platform.system() == "Darwin" and platform.machine() == "arm64"
        return "cuda:0" if nvidia_gpus() else "mps" if apple_silicon else "cpu"
    return "cuda:0" if name == "cuda" else name


@dataclass(frozen=True)
class DeviceChoices:
    cuda_devices: list[str]  # NVIDIA GPU names, in cuda:N order
    choices: list[str]  # what a run may ask for


def describe_devices() -> DeviceChoices:
    """What the sidebar offers: 'auto', 'cpu', one 'cuda:N' per NVIDIA GPU, 'mps' on Apple silicon."""
    gpus = nvidia_gpus()
    apple_silicon = platform.system() == "Darwin" and platform.machine() == "arm64"
    return DeviceChoices(
        cuda_devices=gpus,
        choices=["auto", "cpu"] + [f"cuda:{i}" for i in range(len(gpus))] + (["mps"] if apple_silicon else []),
    )
