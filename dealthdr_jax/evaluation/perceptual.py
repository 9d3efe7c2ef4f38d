"""ColorVideoVDP (Mantiuk et al., SIGGRAPH 2024): a perceptual video metric in JOD units.

An optional extra: `pip install -e '.[perceptual]'` installs the `cvvdp` package (PyTorch;
the CPU is enough, and it carries its calibration data, so it runs offline).

JOD ("just-objectionable differences") is 10 for a prediction indistinguishable from the
ground truth and falls by 1 for each JOD of visible difference. ColorVideoVDP needs
absolute light, so both clips are shown on one stated display by one stated rule:

* **Display**: `standard_hdr_linear` of cvvdp: a 30-inch 4K HDR monitor, peak 1500 cd/m²,
  contrast 10⁶:1, 10 lux ambient, seen from twice its height; input linear BT.709 RGB in
  cd/m² (the model's primaries, DESIGN.md §3).
* **Absolute scaling**: the same factor for prediction and GT, fixed by the GT clip alone:
  its diffuse white (median luminance / 0.18, the rule of `inference.hdr_video`) is shown at
  203 cd/m² (ITU-R BT.2408 reference white). The display model then limits what exceeds its
  range, for both clips alike.

Frames are read one at a time from EXR files (`video_source` of cvvdp), so memory does not
grow with the clip's length.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
from collections.abc import Sequence

import numpy as np

from data_pipeline import hdr_io
from dealthdr_jax.inference import hdr_video

DISPLAY = "standard_hdr_linear"
INSTALL_HINT = ("ColorVideoVDP is an optional extra: pip install -e '.[perceptual]' "
                "(installs cvvdp and PyTorch; runs on the CPU, offline)")


def available() -> bool:
  """Whether the `perceptual` extra (cvvdp) is installed."""
  return importlib.util.find_spec("pycvvdp") is not None


def require() -> None:
  """Raises RuntimeError with the install command when the extra is missing."""
  if not available():
    raise RuntimeError(INSTALL_HINT)


def _frame_source(pred_paths, gt_paths, fps: float, nits_per_unit: float, size):
  """A cvvdp video source reading EXR frames on demand, in absolute units (cd/m²)."""
  import torch  # pylint: disable=g-import-not-at-top
  from pycvvdp import video_source  # pylint: disable=g-import-not-at-top

  class ExrFrames(video_source.video_source_dm):
    """Prediction / GT EXR frames, scaled to cd/m² and passed through the display model."""

    def __init__(self):
      super().__init__(display_photometry=DISPLAY)

    def get_video_size(self):
      return (size[0], size[1], len(gt_paths))

    def get_frames_per_second(self):
      return fps

    def _frame(self, paths, frame, device, colorspace):
      image = hdr_io.read_hdr(paths[frame])
      if image.shape[:2] != tuple(size):
        raise ValueError(f"{paths[frame]}: {image.shape[0]}x{image.shape[1]}, expected "
                         f"{size[0]}x{size[1]} like the first frame")
      light = np.maximum(image, 0.0) * np.float32(nits_per_unit)
      tensor = torch.from_numpy(np.ascontiguousarray(light.transpose(2, 0, 1)))
      return self.apply_dm_and_color_transform(tensor[None, :, None].to(device), colorspace)

    def get_test_frame(self, frame, device, colorspace):
      return self._frame(pred_paths, frame, device, colorspace)

    def get_reference_frame(self, frame, device, colorspace):
      return self._frame(gt_paths, frame, device, colorspace)

  return ExrFrames()


def color_video_vdp(pred_paths: Sequence[str | os.PathLike],
                    gt_paths: Sequence[str | os.PathLike], *, fps: float = 25.0) -> dict:
  """ColorVideoVDP JOD of a predicted clip against its GT (EXR frames in order).

  Args:
    pred_paths, gt_paths: [T] EXR files of linear HDR (§3 units, BT.709), same sizes.
    fps: frame rate of the clip (a single frame is scored as an image).
  Returns:
    {"jod", "display": {...}, "scaling": {...}, "frames", "fps"}: the JOD and how the
    clips were shown.
  Raises:
    RuntimeError: the extra is not installed. ValueError: mismatched clips.
  """
  require()
  import pycvvdp  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top

  if len(pred_paths) != len(gt_paths) or not gt_paths:
    raise ValueError(f"{len(pred_paths)} predicted frames for {len(gt_paths)} GT frames")
  size = hdr_io.read_hdr(gt_paths[0]).shape[:2]
  median, white = hdr_video.diffuse_white(
      [hdr_video.median_luminance(hdr_io.read_hdr(p)) for p in gt_paths])
  nits_per_unit = hdr_video.REFERENCE_WHITE_NITS / white
  video_fps = fps if len(gt_paths) > 1 else 0
  metric = pycvvdp.cvvdp(display_name=DISPLAY, device=torch.device("cpu"), quiet=True)
  source = _frame_source([pathlib.Path(p) for p in pred_paths],
                         [pathlib.Path(p) for p in gt_paths], video_fps, nits_per_unit, size)
  with torch.no_grad():
    jod, _ = metric.predict_video_source(source)
  photometry = source.dm_photometry
  black, reflected = photometry.get_black_level()
  return {
      "jod": float(jod),
      "metric": f"ColorVideoVDP (cvvdp {getattr(pycvvdp, '__version__', '?')})",
      "display": {"name": DISPLAY, "peak_nits": float(photometry.Y_peak),
                  "black_nits": float(black), "reflected_ambient_nits": float(reflected),
                  "ambient_lux": float(photometry.E_ambient),
                  "colorspace": "BT.709 linear, cd/m²",
                  "description": "30-inch 4K HDR monitor, 1500 cd/m² peak, 10 lux, viewed "
                                 "from 2 display heights (cvvdp display_models.json)"},
      "scaling": {"rule": "GT diffuse white (median luminance / 0.18, per-frame medians' "
                          "median) at 203 cd/m²; the same factor for prediction and GT",
                  "gt_median_luminance": median, "diffuse_white": white,
                  "nits_per_unit": nits_per_unit},
      "frames": len(gt_paths), "fps": video_fps,
  }
