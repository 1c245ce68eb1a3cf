"""What is in a dataset, flaws included: counts, exact duplicates (leakage, conflicting labels), blank faces.

These flaws are reported, never fixed: users must see that FER2013's test set overlaps its train set.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # DatasetSummary is read back from the overview cache before torch is imported
    from .dataset import FerData

BLANK_STD = 2.0


@dataclass(frozen=True)
class DuplicateGroup:
    names: tuple[str, ...]
    splits: tuple[str, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class DatasetSummary:
    source: str
    label_source: str
    split_method: str
    fingerprint: str
    classes: tuple[str, ...]
    counts: dict[str, dict[str, int]]  # split -> class -> count
    split_sizes: dict[str, int]
    duplicate_groups: int
    duplicate_extra_copies: int
    groups_across_splits: int
    groups_across_train_and_eval: int  # a train face that is also a val/test face: leakage
    groups_with_conflicting_labels: int
    blank_images: int
    blank_names: tuple[str, ...]
    resized_images: int
    examples: tuple[DuplicateGroup, ...]  # a few groups to show

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetSummary:
        """The inverse of to_dict (JSON turns tuples into lists)."""
        return cls(
            **{
                **d,
                "classes": tuple(d["classes"]),
                "blank_names": tuple(d["blank_names"]),
                "examples": tuple(DuplicateGroup(**{k: tuple(v) for k, v in g.items()}) for g in d["examples"]),
            }
        )


def find_duplicate_groups(data: FerData) -> list[list[int]]:
    """Groups (of size >= 2) of faces with byte-identical pixels."""
    flat = data.images.reshape(len(data), -1).numpy()
    by_hash: dict[bytes, list[int]] = defaultdict(list)
    for i, row in enumerate(flat):
        by_hash[hashlib.blake2b(row.tobytes(), digest_size=16).digest()].append(i)
    return [g for g in by_hash.values() if len(g) > 1]


def find_blank_images(data: FerData) -> np.ndarray:
    """Indices of faces that are one flat grey level (all black, all white, uniform grey).

    A pixel standard deviation under 2 grey levels tolerates JPEG noise on a uniform image; the
    darkest real faces in FER2013 sit above 4.
    """
    flat = data.images.reshape(len(data), -1).float()
    return (flat.std(dim=1) < BLANK_STD).nonzero().flatten().numpy()


def summarize(data: FerData, max_examples: int = 5) -> DatasetSummary:
    from .dataset import SPLITS

    split = data.split.numpy()
    labels = data.labels.numpy()
    counts = {
        s: {c: int(((split == si) & (labels == ci)).sum()) for ci, c in enumerate(data.classes)} for si, s in enumerate(SPLITS)
    }
    groups = find_duplicate_groups(data)
    train = SPLITS.index("train")
    across = across_eval = conflicting = 0
    examples: list[DuplicateGroup] = []
    for g in groups:
        g_splits = set(split[g].tolist())
        g_labels = set(labels[g].tolist())
        across += len(g_splits) > 1
        across_eval += train in g_splits and len(g_splits) > 1
        conflicting += len(g_labels) > 1
        if len(examples) < max_examples and (len(g_splits) > 1 or len(g_labels) > 1):
            examples.append(
                DuplicateGroup(
                    names=tuple(data.names[i] for i in g),
                    splits=tuple(SPLITS[split[i]] for i in g),
                    labels=tuple(data.classes[labels[i]] for i in g),
                )
            )
    blanks = find_blank_images(data)
    return DatasetSummary(
        source=data.source,
        label_source=data.label_source,
        split_method=data.split_method,
        fingerprint=data.fingerprint,
        classes=data.classes,
        counts=counts,
        split_sizes=data.split_sizes(),
        duplicate_groups=len(groups),
        duplicate_extra_copies=sum(len(g) - 1 for g in groups),
        groups_across_splits=across,
        groups_across_train_and_eval=across_eval,
        groups_with_conflicting_labels=conflicting,
        blank_images=len(blanks),
        blank_names=tuple(data.names[i] for i in blanks),
        resized_images=data.resized_images,
        examples=tuple(examples),
    )
