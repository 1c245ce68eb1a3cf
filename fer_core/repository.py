"""The checkout this code runs from: where the default runs/, checkpoints/ and studies/ folders are, where the
data lookup starts, and the working folder of the background processes (they run `python -m fer_core`)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
