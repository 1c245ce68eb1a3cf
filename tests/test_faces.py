from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fer_core.faces import DETECTORS, HaarDetector, MtcnnDetector, PhotoError, find_faces, load_photo

from .conftest import image_bytes


def test_detector_model_files_are_installed():
    """Fails if an OpenCV or facenet-pytorch upgrade drops the files the detectors need."""
    cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    assert cascade.is_file() and not cv2.CascadeClassifier(str(cascade)).empty()
    import facenet_pytorch

    data = Path(facenet_pytorch.__file__).parent / "data"
    for net in ("pnet.pt", "rnet.pt", "onet.pt"):
        assert (data / net).is_file(), net


@pytest.mark.parametrize("detector", list(DETECTORS))
def test_one_real_face(grace_hopper, detector):
    faces = find_faces(load_photo(grace_hopper), detector)
    assert len(faces) == 1 and faces[0].detected
    x, y, w, h = faces[0].box
    assert 150 < x + w / 2 < 370 and 100 < y + h / 2 < 400  # her face, not the uniform
    assert faces[0].face.shape == (48, 48) and faces[0].face.dtype == np.uint8


def test_mtcnn_finds_exactly_the_two_faces_next_to_a_logo(two_faces_and_logo):
    rgb = load_photo(two_faces_and_logo)
    mtcnn = find_faces(rgb, "mtcnn")
    assert len(mtcnn) == 2 and all(f.detected for f in mtcnn)
    assert abs(mtcnn[0].box[0] - mtcnn[1].box[0]) > rgb.shape[1] // 3  # one face per half
    haar = find_faces(rgb, HaarDetector())
    assert len(haar) >= 2  # recorded in the README: Haar is the fallback, MTCNN the default


def test_mtcnn_in_channels_last_finds_what_the_stock_layout_finds(two_faces_and_logo, grace_hopper):
    """The detector's nets run in channels_last for speed; that must not move a box or change a score."""
    import torch

    ours = MtcnnDetector()
    stock = MtcnnDetector()
    for net in (stock.mtcnn.pnet, stock.mtcnn.rnet, stock.mtcnn.onet):
        net.to(memory_format=torch.contiguous_format)
    assert ours.mtcnn.pnet.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for photo in (two_faces_and_logo, grace_hopper):
        image = Image.fromarray(load_photo(photo))
        with torch.inference_mode():
            boxes, probs = ours.mtcnn.detect(image)
            stock_boxes, stock_probs = stock.mtcnn.detect(image)
        assert boxes is not None and len(boxes) >= 1
        np.testing.assert_allclose(boxes.astype(float), stock_boxes.astype(float), atol=0.5)  # object arrays
        np.testing.assert_allclose(probs.astype(float), stock_probs.astype(float), atol=1e-4)


def test_boxes_are_in_original_coordinates_after_downscaling(grace_hopper):
    rgb = load_photo(grace_hopper)
    big = cv2.resize(rgb, (rgb.shape[1] * 4, rgb.shape[0] * 4))  # 2048 px wide: detection runs at 1280
    small_box = find_faces(rgb, "mtcnn")[0].box
    big_box = find_faces(big, "mtcnn")[0].box
    assert np.allclose(np.array(big_box) / 4, small_box, atol=12)


def test_a_face_cut_by_the_edge_gets_a_box_inside_the_image(grace_hopper):
    """MTCNN reaches past the edge for a face the frame cuts; boxes in CSVs and drawn titles must not."""
    from fer_core.faces import detect_faces, get_detector

    rgb = load_photo(grace_hopper)
    x, y, w, h = find_faces(rgb, "mtcnn")[0].box
    cut = np.ascontiguousarray(rgb[:, x + w // 4 :])  # a quarter of the face outside the frame
    assert any(bx < 0 for bx, *_ in get_detector("mtcnn").detect(cut))  # what the detector gives
    boxes = [f.box for f in detect_faces(cut)]
    assert boxes and all(bx >= 0 and by >= 0 and bx + bw <= cut.shape[1] and by + bh <= cut.shape[0] for bx, by, bw, bh in boxes)


def test_a_phone_sized_jpeg_is_decoded_smaller_and_its_boxes_scale_back_to_the_file(grace_hopper):
    from fer_core.faces import DECODE_SIDE, decode_photo

    rgb = load_photo(grace_hopper)
    big = cv2.resize(rgb, (rgb.shape[1] * 8, rgb.shape[0] * 8))  # larger than a 12 MP phone photo
    photo = decode_photo(cv2.imencode(".jpg", big[..., ::-1])[1].tobytes())
    assert DECODE_SIDE <= max(photo.rgb.shape[:2]) < max(big.shape[:2]) and photo.scale == 2.0
    full, reduced = find_faces(big, "mtcnn")[0], find_faces(photo.rgb, "mtcnn")[0]
    assert np.allclose(np.array(reduced.box) * photo.scale, full.box, atol=24)
    assert np.abs(reduced.face.astype(int) - full.face).mean() < 12  # the model sees nearly the same 48x48 crop


@pytest.mark.parametrize("orientation", [3, 6, 8, 1])
def test_exif_orientation_is_applied(grace_hopper, orientation):
    img = Image.open(grace_hopper)
    stored = {3: img.rotate(180), 6: img.rotate(90, expand=True), 8: img.rotate(-90, expand=True), 1: img}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", exif=exif.tobytes())
    rgb = load_photo(buf.getvalue())
    assert rgb.shape[:2] == (img.height, img.width)
    faces = find_faces(rgb, "mtcnn")
    assert len(faces) == 1 and faces[0].detected


def test_no_face_falls_back_to_centre_square():
    rgb = np.full((300, 400, 3), 200, np.uint8)
    faces = find_faces(rgb, "mtcnn")
    assert len(faces) == 1 and not faces[0].detected
    assert faces[0].box == (50, 0, 300, 300) and "no face" in faces[0].note


def test_small_face_images_skip_detection():
    face = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    found = find_faces(load_photo(image_bytes(face)))
    assert len(found) == 1 and np.array_equal(found[0].face, face)


@pytest.mark.parametrize(
    "data, message",
    [(b"", "empty"), (b"hello, I am text", "not an image"), (b"<html><body>hi</body></html>", "not an image")],
)
def test_bad_bytes_give_clear_messages(data, message):
    with pytest.raises(PhotoError, match=message):
        load_photo(data)


def test_a_missing_file_is_said_missing_not_damaged(tmp_path):
    from fer_core.predict import predict_photo

    with pytest.raises(FileNotFoundError):
        load_photo(tmp_path / "missing.jpg")
    assert predict_photo([], tmp_path / "missing.jpg").error == "cannot read the file (No such file or directory)"


def test_truncated_jpeg(grace_hopper):
    data = grace_hopper.read_bytes()
    with pytest.raises(PhotoError, match="damaged or truncated"):
        load_photo(data[: len(data) // 3])


def test_modes_are_converted():
    rgba = np.zeros((60, 60, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent: composited on white
    assert load_photo(image_bytes(rgba)).min() == 255
    sixteen = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    buf = io.BytesIO()
    sixteen.save(buf, format="PNG")
    out = load_photo(buf.getvalue())
    assert out.dtype == np.uint8 and out.max() == 255 and out.min() == 0
    cmyk = Image.new("CMYK", (50, 50), (0, 255, 255, 0))
    buf = io.BytesIO()
    cmyk.save(buf, format="JPEG")
    assert load_photo(buf.getvalue()).shape == (50, 50, 3)
