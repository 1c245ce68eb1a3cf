"""The hostile and unusual uploads every entry point must survive, generated locally (nothing downloaded).

Each case names what a correct outcome is: a clear error for the user, or a prediction with the faces
that are really there (a face in a 16-bit PNG or a CMYK JPEG is still a face).
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ERROR = "error"  # a message for the user, no faces
FACE = "face"  # at least one detected face
NO_FACE = "no face"  # a result, but nothing detected: the centred square is used
WHOLE = "whole"  # a tiny image used whole as the face


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    expect: str
    faces: int = 1  # for FACE: at least this many


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG signature and header for a huge image, with one tiny compressed row: a decompression bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _with_orientation(face: Image.Image, orientation: int) -> bytes:
    """Pixels stored rotated, with the EXIF tag that tells a viewer how to turn them upright."""
    stored = {1: face, 3: face.rotate(180), 6: face.rotate(90, expand=True), 8: face.rotate(-90, expand=True)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(stored, "JPEG", quality=92, exif=exif.tobytes())


def _video_bytes(frame: np.ndarray, tmp: Path) -> bytes:
    path = tmp / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (frame.shape[1], frame.shape[0]))
    for _ in range(5):
        writer.write(frame)
    writer.release()
    return path.read_bytes()


def build_corpus(dest: Path, face_photo: Path) -> list[Case]:
    """Write every case into `dest`; returns them in a stable order."""
    dest.mkdir(parents=True, exist_ok=True)
    face = Image.open(face_photo).convert("RGB")  # one real face, ~512x600
    jpeg = _save(face, "JPEG", quality=92)
    png = _save(face, "PNG")
    rgba = face.convert("RGBA")
    alpha = np.full((face.height, face.width), 255, np.uint8)
    alpha[:, : face.width // 6] = 0  # a transparent strip on the left
    rgba.putalpha(Image.fromarray(alpha))
    palette = face.convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    gray16 = Image.fromarray(np.asarray(face.convert("L"), np.uint16) * 257)  # mode I;16
    frames = [face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    crowd = Image.new("RGB", (face.width * 3, face.height * 2), (200, 200, 200))
    for i in range(6):
        crowd.paste(face, ((i % 3) * face.width, (i // 3) * face.height))
    rng = np.random.default_rng(0)
    landscape = np.zeros((480, 720, 3), np.uint8)
    landscape[:240] = (135, 190, 235)  # sky
    landscape[240:] = (60, 140, 60)  # grass
    landscape = np.clip(landscape + rng.normal(0, 6, landscape.shape), 0, 255).astype(np.uint8)

    files: list[tuple[Case, bytes]] = [
        (Case("zero bytes", "empty.png", ERROR), b""),
        (Case("text renamed .png", "notes.png", ERROR), b"these are my holiday notes, not a picture\n" * 20),
        (Case("HTML page", "page.jpg", ERROR), b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>"),
        (
            Case("SVG (XML, not a raster image)", "vector.svg", ERROR),
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
        ),
        (Case("PDF header", "scan.pdf", ERROR), b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"),
        (Case("gzip archive renamed .jpg", "archive.jpg", ERROR), gzip.compress(jpeg)),
        (Case("truncated JPEG", "truncated.jpg", ERROR), jpeg[: len(jpeg) // 3]),
        (Case("truncated PNG", "truncated.png", ERROR), png[: len(png) // 3]),
        (Case("random bytes", "noise.bin", ERROR), rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()),
        (Case("PNG header claiming 100000x100000", "bomb.png", ERROR), png_claiming(100_000, 100_000)),
        (
            Case("PNG of 12000x12000 pixels (over the 100 MP limit)", "huge.png", ERROR),
            _save(Image.new("L", (12000, 12000), 128), "PNG"),
        ),
        (Case("video file (AVI)", "clip.avi", ERROR), _video_bytes(np.asarray(face)[:, :, ::-1].copy(), dest)),
        (Case("1x1 image", "dot.png", WHOLE), _save(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG")),
        (Case("10x10 image", "tiny.png", WHOLE), _save(Image.new("RGB", (10, 10), (200, 10, 30)), "PNG")),
        (Case("all-black photo", "black.jpg", NO_FACE), _save(Image.new("RGB", (640, 480)), "JPEG")),
        (Case("all-white photo", "white.png", NO_FACE), _save(Image.new("RGB", (640, 480), (255, 255, 255)), "PNG")),
        (Case("landscape without a face", "landscape.jpg", NO_FACE), _save(Image.fromarray(landscape), "JPEG")),
        (Case("JPEG photo", "face.jpg", FACE), jpeg),
        (Case("PNG photo named .jpg", "face_png.jpg", FACE), png),
        (Case("JPEG with bytes appended", "trailing.jpg", FACE), jpeg + b"\x00garbage after the end marker"),
        (Case("grayscale JPEG", "gray.jpg", FACE), _save(face.convert("L"), "JPEG")),
        (Case("16-bit grayscale PNG", "gray16.png", FACE), _save(gray16, "PNG")),
        (Case("CMYK JPEG", "cmyk.jpg", FACE), _save(face.convert("CMYK"), "JPEG")),
        (Case("RGBA PNG with transparency", "rgba.png", FACE), _save(rgba, "PNG")),
        (Case("palette PNG with transparency", "palette.png", FACE), _save(palette, "PNG", transparency=0)),
        (
            Case("animated GIF", "anim.gif", FACE),
            _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0),
        ),
        (Case("WebP", "face.webp", FACE), _save(face, "WEBP", quality=90)),
        (Case("BMP", "face.bmp", FACE), _save(face, "BMP")),
        (Case("TIFF", "face.tiff", FACE), _save(face, "TIFF")),
        (
            Case("12000x12000 JPEG (decoded at reduced size)", "huge.jpg", FACE),
            _save(face.convert("L").resize((12000, 12000)), "JPEG", quality=60),
        ),
        (Case("photo with six faces", "crowd.jpg", FACE, faces=6), _save(crowd, "JPEG", quality=92)),
    ]
    files += [(Case(f"EXIF orientation {o}", f"exif{o}.jpg", FACE), _with_orientation(face, o)) for o in (1, 3, 6, 8)]
    for case, data in files:
        (dest / case.filename).write_bytes(data)
    return [case for case, _ in files]
