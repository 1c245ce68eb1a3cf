"""The names a user picks for inference and export before any model loads: face detectors, prediction backends,
export formats, the size video frames are searched at.

Torch-free, so the command line parses (`--help`, `study status`) without importing torch; the modules that act on
a choice import it from here. The data-side choices (labels, augmentation) are in data/choices.py, test-time
augmentation in input_spec.py.
"""

from __future__ import annotations

DETECTOR_NAMES = ("mtcnn", "haar")
DEFAULT_DETECTOR = "mtcnn"
BACKENDS = ("torch", "onnxruntime")
EXPORT_FORMATS = ("onnx", "torchscript")

# Video frames are searched downscaled to 320 px, not the photos' 640: a face must then be >= 40 px in a 640 px
# frame (the models see 48x48 crops, so smaller faces carry little expression), and MTCNN takes ~18 ms a frame
# on 2 CPU cores instead of ~46 ms (bench/RESULTS.md, "Live and video"). `detection_side` raises it.
VIDEO_DETECTION_SIDE = 320
