"""Face numbers that stay with a person from frame to frame: greedy box matching, enough for faces that move
less between two processed frames than their own size."""

from __future__ import annotations

from dataclasses import dataclass

from ..faces import Box


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    inter = max(0, w) * max(0, h)
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def centre_distance(a: Box, b: Box) -> float:
    """Distance between the centres in units of the larger box's side."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    d = ((ax + aw / 2 - bx - bw / 2) ** 2 + (ay + ah / 2 - by - bh / 2) ** 2) ** 0.5
    return d / max(aw, ah, bw, bh, 1)


@dataclass
class _Track:
    number: int
    box: Box
    missed: int = 0


class FaceTracker:
    """Gives each detected face the number of the track it continues, or a new one.

    A detection continues a track when their boxes overlap (IoU >= `min_iou`) or their centres are closer than
    `max_shift` box sides; pairs are taken best first. A track unmatched for more than `max_missed` processed
    frames ends, and its number is never reused.
    """

    def __init__(self, min_iou: float = 0.2, max_shift: float = 0.6, max_missed: int = 15) -> None:
        self.min_iou, self.max_shift, self.max_missed = min_iou, max_shift, max_missed
        self.tracks: list[_Track] = []
        self.next_number = 1

    def update(self, boxes: list[Box]) -> list[int]:
        """The face number of each box, in the order given."""
        pairs = []
        for ti, track in enumerate(self.tracks):
            for bi, box in enumerate(boxes):
                overlap, shift = iou(track.box, box), centre_distance(track.box, box)
                if overlap >= self.min_iou or shift <= self.max_shift:
                    pairs.append((overlap - shift, ti, bi))
        numbers: list[int | None] = [None] * len(boxes)
        used: set[int] = set()
        for _, ti, bi in sorted(pairs, reverse=True):
            if ti in used or numbers[bi] is not None:
                continue
            used.add(ti)
            self.tracks[ti].box, self.tracks[ti].missed = boxes[bi], 0
            numbers[bi] = self.tracks[ti].number
        for ti, track in enumerate(self.tracks):
            if ti not in used:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for bi, box in enumerate(boxes):
            if numbers[bi] is None:
                self.tracks.append(_Track(self.next_number, box))
                numbers[bi] = self.next_number
                self.next_number += 1
        return [n for n in numbers if n is not None]
