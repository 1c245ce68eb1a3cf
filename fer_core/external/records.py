"""The records of an external dataset, torch-free: its cropped faces with what happened on the way
(ExternalData), and the cache file holding them (`faces.safetensors`, the summary in its header), which the
app lists before torch is loaded."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_atomically
from ..data.classes import canonical_order

FACES_FILE = "faces.safetensors"


@dataclass(frozen=True)
class ExternalData:
    """Decoded 48x48 faces with canonical labels, and what happened on the way, to be reported."""

    name: str  # the folder, zip or csv name
    fingerprint: str  # the decoded faces and their labels (dataset.faces_fingerprint): one per dataset, however given
    images: np.ndarray  # uint8 (N, 48, 48)
    labels: tuple[str, ...]  # canonical class per face
    names: tuple[str, ...]
    mapping: dict[str, str]  # dataset label -> canonical class or IGNORE, as used
    left_out: dict[str, int]  # dataset label -> faces left out (ignored, or no class of that name)
    detected: int  # faces the detector found in larger images
    no_face: int  # larger images where none was found: their centred square was used
    whole: int  # small images used whole (face crops already)
    unreadable: tuple[str, ...]  # files that are not images, skipped

    @property
    def classes(self) -> tuple[str, ...]:
        return canonical_order(set(self.labels))

    def counts(self) -> dict[str, int]:
        found = Counter(self.labels)
        return {c: found[c] for c in self.classes}

    def summary(self) -> dict:
        """What the app and the CLI say about the dataset (every number, nothing hidden)."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "faces": len(self.labels),
            "counts": self.counts(),
            "mapping": self.mapping,
            "left_out": self.left_out,
            "detected": self.detected,
            "no_face": self.no_face,
            "whole": self.whole,
            "unreadable": list(self.unreadable),
        }


def describe(summary: dict, unreadable_shown: int | None = None) -> list[str]:
    """A dataset of the user's in lines, as the CLI prints it and Evaluate shows it: its faces per class, how they
    were found, the label mapping, and what was left out or could not be read (every number, nothing hidden)."""
    counts = ", ".join(f"{c} {n}" for c, n in summary["counts"].items())
    lines = [
        f"{summary['name']}: {summary['faces']} faces ({counts})",
        f"Faces: {summary['detected']} found by the detector in larger images, {summary['whole']} small images used "
        f"whole, {summary['no_face']} larger images with no face found (their centred square used).",
        "Labels: " + ", ".join(f"{k} → {v}" for k, v in summary["mapping"].items()) + ".",
    ]
    if summary["left_out"]:
        lines.append("Left out: " + ", ".join(f"{n} faces labelled {k}" for k, n in summary["left_out"].items()) + ".")
    unreadable = summary["unreadable"]
    if unreadable:
        shown = unreadable[:unreadable_shown] if unreadable_shown else unreadable
        lines.append(
            f"Skipped as unreadable ({len(unreadable)}): " + "; ".join(shown) + (" …" if len(shown) < len(unreadable) else "")
        )
    return lines


def write_faces(file: Path, data: ExternalData) -> None:
    from safetensors.numpy import save_file

    file.parent.mkdir(parents=True, exist_ok=True)
    facts = {**data.summary(), "labels": list(data.labels), "names": list(data.names)}
    write_atomically(file, lambda f: save_file({"images": data.images}, f, metadata={"data": json.dumps(facts)}))


def read_facts(file: Path) -> dict:
    """The summary, labels and names in a faces file's header, without reading its images (the app lists the
    datasets before torch is loaded). Raises OSError, SafetensorError, KeyError or ValueError for a damaged file."""
    from safetensors import safe_open

    with safe_open(str(file), framework="numpy") as f:
        return _facts(f)


def _facts(opened: Any) -> dict:
    return json.loads((opened.metadata() or {})["data"])


def read_faces(file: Path) -> ExternalData:
    """Faces written by load_external's cache (safetensors: no pickle), the file opened once."""
    from safetensors import safe_open

    with safe_open(str(file), framework="numpy") as f:
        facts, images = _facts(f), f.get_tensor("images")
    return ExternalData(
        name=facts["name"],
        fingerprint=facts["fingerprint"],
        images=images,
        labels=tuple(facts["labels"]),
        names=tuple(facts["names"]),
        mapping=facts["mapping"],
        left_out=facts["left_out"],
        detected=facts["detected"],
        no_face=facts["no_face"],
        whole=facts["whole"],
        unreadable=tuple(facts["unreadable"]),
    )
