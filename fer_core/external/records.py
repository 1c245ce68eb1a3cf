"""The records of an external dataset, torch-free: its cropped faces with what happened on the way
(ExternalData), and the cache file holding them (`faces.safetensors`, the summary in its header), which the
app lists before torch is loaded."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, fields
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

    def summary(self) -> ExternalSummary:
        return ExternalSummary(
            name=self.name,
            fingerprint=self.fingerprint,
            faces=len(self.labels),
            counts=self.counts(),
            mapping=self.mapping,
            left_out=self.left_out,
            detected=self.detected,
            no_face=self.no_face,
            whole=self.whole,
            unreadable=self.unreadable,
        )


@dataclass(frozen=True)
class ExternalSummary:
    """What the app and the CLI say about a dataset of the user's (every number, nothing hidden). Its faces file
    keeps it in its header, so the app lists datasets without reading their images."""

    name: str
    fingerprint: str
    faces: int
    counts: dict[str, int]  # canonical class -> faces
    mapping: dict[str, str]
    left_out: dict[str, int]
    detected: int
    no_face: int
    whole: int
    unreadable: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"unreadable": list(self.unreadable)}

    @classmethod
    def from_json(cls, facts: dict[str, Any]) -> ExternalSummary:
        """Raises KeyError or TypeError for a header that holds no summary."""
        return cls(**{f.name: facts[f.name] for f in fields(cls)} | {"unreadable": tuple(facts["unreadable"])})

    def describe(self, unreadable_shown: int | None = None) -> list[str]:
        """The dataset in lines, as the CLI prints it and Evaluate shows it: its faces per class, how they were
        found, the label mapping, and what was left out or could not be read."""
        counts = ", ".join(f"{c} {n}" for c, n in self.counts.items())
        lines = [
            f"{self.name}: {self.faces} faces ({counts})",
            f"Faces: {self.detected} found by the detector in larger images, {self.whole} small images used "
            f"whole, {self.no_face} larger images with no face found (their centred square used).",
            "Labels: " + ", ".join(f"{k} → {v}" for k, v in self.mapping.items()) + ".",
        ]
        if self.left_out:
            lines.append("Left out: " + ", ".join(f"{n} faces labelled {k}" for k, n in self.left_out.items()) + ".")
        if self.unreadable:
            shown = self.unreadable[:unreadable_shown] if unreadable_shown else self.unreadable
            lines.append(
                f"Skipped as unreadable ({len(self.unreadable)}): "
                + "; ".join(shown)
                + (" …" if len(shown) < len(self.unreadable) else "")
            )
        return lines


def write_faces(file: Path, data: ExternalData) -> None:
    from safetensors.numpy import save_file

    file.parent.mkdir(parents=True, exist_ok=True)
    facts = {**data.summary().to_json(), "labels": list(data.labels), "names": list(data.names)}
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
