"""FerData: one in-memory dataset of 48x48 grayscale faces, whatever file layout it came from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..records import Predictions
from .choices import DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")
IMAGE_SIZE = 48


@dataclass(frozen=True)
class FerData:
    """Decoded faces plus everything needed to reproduce which faces a model saw.

    Images stay uint8 (N, 1, 48, 48): the full FER2013 is 83 MB this way and fits on any device,
    so training never decodes an image twice.
    """

    images: torch.Tensor  # uint8 (N, 1, 48, 48)
    labels: torch.Tensor  # int64 (N,), index into `classes`
    split: torch.Tensor  # uint8 (N,), index into SPLITS
    classes: tuple[str, ...]
    names: tuple[str, ...]  # where each face came from: a path inside the zip/folder, or "row:<n>"
    source: str
    label_source: str  # "fer2013" or "ferplus"
    split_method: str
    soft_labels: torch.Tensor | None = None  # float32 (N, C) vote distribution, FER+ only
    resized_images: int = 0  # images that were not 48x48 on disk
    fingerprint: str = field(default="")

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", compute_fingerprint(self))

    def __len__(self) -> int:
        return int(self.labels.numel())

    def indices(self, split: str, class_name: str | None = None) -> torch.Tensor:
        """Positions of a split's faces, in file order; only those labelled `class_name` when given."""
        mask = self.split == SPLITS.index(split)
        if class_name is not None:
            mask &= self.labels == self.classes.index(class_name)
        return torch.nonzero(mask).flatten()

    def locate(self, name: str, split: str = "test") -> tuple[str, int] | None:
        """A face's class and its 0-based place among that class's faces of `split` (the order of `indices`), by
        file name; None when the split holds no face of that name. How a link to one face is followed."""
        if name not in self.names:
            return None
        position = self.names.index(name)
        if int(self.split[position]) != SPLITS.index(split):
            return None
        class_name = self.classes[int(self.labels[position])]
        return class_name, int((self.indices(split, class_name) < position).sum())

    def split_sizes(self) -> dict[str, int]:
        return {name: int((self.split == i).sum()) for i, name in enumerate(SPLITS)}

    def take(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of one split."""
        idx = self.indices(split)
        return self.images[idx], self.labels[idx]

    def names_of(self, split: str) -> tuple[str, ...]:
        """The file names of one split's faces, in the order of `take`: how predictions name their faces."""
        return tuple(self.names[i] for i in self.indices(split).tolist())

    def predictions(self, probs: np.ndarray, split: str = "test") -> Predictions:
        """A model's probabilities on one split, in the order of `take`, as Predictions: labelled, named and
        fingerprinted (the one place training and a loaded checkpoint build them)."""
        return Predictions(
            probs=probs,
            labels=self.labels[self.indices(split)].numpy(),
            names=self.names_of(split),
            classes=tuple(self.classes),
            split=split,
            data_fingerprint=self.fingerprint,
        )

    def with_train_fraction(self, fraction: float, seed: int = 0) -> FerData:
        """A stratified, seeded share of the training faces (every class keeps its share); validation and
        test stay whole, so results stay comparable. The subset has its own fingerprint."""
        if not 0.0 < fraction <= 1.0:
            raise DataError(f"train_fraction must be in (0, 1], not {fraction}")
        if fraction == 1.0:
            return self
        generator = torch.Generator().manual_seed(seed)
        keep = torch.ones(len(self), dtype=torch.bool)
        for ci in range(len(self.classes)):
            members = self.indices("train", self.classes[ci])
            dropped = members[torch.randperm(len(members), generator=generator)][max(1, round(fraction * len(members))) :]
            keep[dropped] = False
        names = tuple(n for n, k in zip(self.names, keep.tolist(), strict=True) if k)
        soft = self.soft_labels[keep] if self.soft_labels is not None else None
        return replace(
            self,
            images=self.images[keep],
            labels=self.labels[keep],
            split=self.split[keep],
            names=names,
            soft_labels=soft,
            split_method=f"{self.split_method}; {fraction:g} of the training faces (stratified, seed {seed})",
            fingerprint="",
        )

    def with_classes(self, keep: list[str] | tuple[str, ...]) -> FerData:
        """Drop the faces of every class not in `keep` (e.g. the 6-class protocol without disgust)."""
        unknown = [c for c in keep if c not in self.classes]
        if unknown:
            raise DataError(f"classes {unknown} are not in this dataset (it has {list(self.classes)})")
        kept = tuple(c for c in self.classes if c in keep)
        if kept == self.classes:  # nothing to drop: the same data, and the same fingerprint
            return self
        old_to_new = torch.full((len(self.classes),), -1, dtype=torch.long)
        for new, name in enumerate(kept):
            old_to_new[self.classes.index(name)] = new
        mapped = old_to_new[self.labels]
        mask = mapped >= 0
        soft = None
        if self.soft_labels is not None:
            cols = [self.classes.index(c) for c in kept]
            soft = self.soft_labels[mask][:, cols]
            soft = soft / soft.sum(dim=1, keepdim=True).clamp_min(1e-8)
        names = tuple(n for n, m in zip(self.names, mask.tolist(), strict=True) if m)
        return replace(
            self,
            images=self.images[mask],
            labels=mapped[mask],
            split=self.split[mask],
            classes=kept,
            names=names,
            soft_labels=soft,
            fingerprint="",
        )


def compute_fingerprint(data: FerData) -> str:
    """Content hash of pixels, labels, splits and class names: equal iff a model saw the same data."""
    h = hashlib.sha256()
    h.update(",".join(data.classes).encode())
    h.update(data.label_source.encode())
    for t in (data.images, data.labels, data.split):
        h.update(np.ascontiguousarray(t.numpy()).tobytes())
    if data.soft_labels is not None:
        h.update(np.ascontiguousarray(data.soft_labels.numpy()).tobytes())
    return h.hexdigest()[:16]
