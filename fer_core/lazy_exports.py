"""Package attributes imported on first use (PEP 562), so that importing a torch-free name never loads torch.

The app draws its first page and its sidebar from torch-free modules (the model catalog, checkpoint listing,
training options); torch, torchvision and kornia take seconds to import on a small CPU.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `package.<exports[name]>` when `name` is first read."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{exports[name]}", package), name)

    return __getattr__
