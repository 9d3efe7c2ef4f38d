"""TFDS builders (ArrayRecord, no TensorFlow) of frame windows, and their grain reader.

Three sources, each read from a folder the user already has (nothing is downloaded):

1. `SynthClips`: a folder of clip folders in the DESIGN.md §7 layout *with* `gt/`, as
   written by `dealthdr synth --out DIR` (`DIR/<clip>/{exposures.txt, *.png, gt/*.exr}`).
   A `flow/` folder, if present, is ignored (flow is not stored yet). The clip's
   meta.json is stored verbatim (`meta`), and its response may be a simulator curve
   outside `response.RESPONSES` (e.g. "sigmoid").

2. `DeepHDRVideo` (Chen et al., ICCV 2021; github.com/guanyingc/DeepHDRVideo-Dataset),
   e.g. the unpacked `dynamic_RGB_data_2exp_release/` or
   `static_RGB_data_2exp_rand_motion_release/`:

     <root>/scene_all.txt           optional: scene folder names, one a line (else every
                                    sub-folder holding an Exposures.txt, sorted)
     <root>/<scene>/Exposures.txt   stops; the release stores only the repeating pattern
                                    (e.g. "0.0\n3.0"), which is tiled over the frames
     <root>/<scene>/img_hdr_list.txt   "<frame file> <hdr file>" per line, when GT exists
     <root>/<scene>/img_list.txt       "<frame file>" per line, otherwise
     <root>/<scene>/img_XX.tif      16-bit frames (img_XX.jpg previews beside them)
     <root>/<scene>/<scene>.hdr     the GT HDR (Radiance), usually one per scene
   Without either list file the scene is read like a §7 clip folder. GT is stored for a
   window when its centre frame's listed HDR file exists. The GT scale is the dataset's
   own (normalised to [0, 1]), not §3 units; metrics and the §5 loss normalise by the GT
   maximum, so this does not matter for them. Frames: response gamma 2.2 (as their loaders).

3. `RealHDRV` (Shu et al., CVPR 2024; github.com/yungsyu99/Real-HDRV), e.g. the unpacked
   test set `Test_Compack_8frames_50scenes/`:

     <root>/<scene>/Input_0/<frame>.tif    short exposure of every frame (16-bit)
     <root>/<scene>/Input_1/<frame>.tif    long exposure (+3 EV) of every frame
     <root>/<scene>/GT/GT_<frame>.hdr      HDR ground truth per frame (`GT/<frame>.hdr`
                                           is accepted too)
   Every frame exists at both exposures and no exposure file is shipped; an alternating
   clip is formed by taking frame i from the long stream when i is even (phase "long") or
   odd (phase "short"); both phases are built by default, as separate scenes
   `<scene>@long` / `<scene>@short`. Stops: short 0, long `ev` (3). This layout comes
   from a third-party loader of the test set (the official repository publishes no code);
   the training set is assumed to use the same per-scene layout — unconfirmed.

Every example is one window (DESIGN.md §3, filled at clip edges as `clips.window_indices`
does; one per frame that has GT, or per frame when `require_gt=False`):

  frames       [T, H, W, 3] uint16  LDR code values (8-bit sources keep 0..255)
  bits         int32                8 or 16: frames / (2**bits - 1) is in [0, 1]
  stops        [T] float32          exposures in stops, clip's shortest = 0
  gt           [H, W, 3] float32    GT HDR of the centre frame ([0, 0, 3] if none)
  has_gt       bool
  t            int32                centre frame index in the clip
  scene        text                 clip / scene name
  names        [T] text             frame names of the window
  response     text                 camera response: `response.RESPONSES`, or for
                                    synthetic clips any name the simulator used
                                    (e.g. "sigmoid", parameters in `meta`)
  meta         text                 JSON: a synthetic clip's meta.json, else "{}"

T = 2·radius+1 is fixed by the builder config (`radius`, default 1). Windows duplicate
frames (storage ≈ T× the frames, zlib-compressed); build with the radius you train with.

Build: `DeepHDRVideo(source_dir=..., data_dir=..., radius=1).download_and_prepare()`.
Read: `read_windows(builder.data_dir)` → `grain.MapDataset` (no TensorFlow needed).
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Iterator, Sequence

import grain
import numpy as np
import tensorflow_datasets as tfds

from data_pipeline import clips
from data_pipeline import hdr_io
from data_pipeline import response as response_lib

PathLike = str | os.PathLike


@dataclasses.dataclass(frozen=True)
class Scene:
  """One clip to cut into windows.

  Attributes:
    name: scene name (unique within the dataset).
    frame_paths: [N] LDR frame files.
    stops: [N] float32 stops, shortest 0.
    gt_paths: [N] GT HDR files (`.exr`/`.hdr`) or None per frame.
    response: camera response name.
    meta: the scene's metadata as JSON text (a synthetic clip's meta.json), or "{}".
  """
  name: str
  frame_paths: tuple[pathlib.Path, ...]
  stops: np.ndarray
  gt_paths: tuple[pathlib.Path | None, ...]
  response: str = "gamma2.2"
  meta: str = "{}"


@dataclasses.dataclass
class WindowConfig(tfds.core.BuilderConfig):
  """Builder config: window radius (T = 2·radius+1) and whether GT is required."""
  radius: int = 1
  require_gt: bool = True


def _features() -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      "frames": tfds.features.Tensor(shape=(None, None, None, 3), dtype=np.uint16,
                                     encoding="zlib"),
      "bits": np.int32,
      "stops": tfds.features.Tensor(shape=(None,), dtype=np.float32),
      "gt": tfds.features.Tensor(shape=(None, None, 3), dtype=np.float32, encoding="zlib"),
      "has_gt": np.bool_,
      "t": np.int32,
      "scene": tfds.features.Text(),
      "names": tfds.features.Sequence(tfds.features.Text()),
      "response": tfds.features.Text(),
      "meta": tfds.features.Text(),
  })


class _WindowBuilder(tfds.core.GeneratorBasedBuilder):
  """Shared machinery: scenes → mirrored windows → one ArrayRecord split 'train'."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def __init__(self, *, source_dir: PathLike, radius: int = 1, require_gt: bool = True,
               config_name: str | None = None, data_dir: PathLike | None = None,
               **kwargs):
    """Args:
      source_dir: the dataset folder in the layout of the module docstring.
      radius: window radius; T = 2·radius+1 frames per example.
      require_gt: keep only windows whose centre frame has GT.
      config_name: names the built variant (default `r{radius}` / `r{radius}_all`), so
        several variants can share one data_dir.
      data_dir: where the ArrayRecord files go (`<data_dir>/<name>/<config>/<version>`).
    """
    self._source_dir = pathlib.Path(source_dir)
    if not self._source_dir.is_dir():
      raise FileNotFoundError(f"{self._source_dir}: dataset folder not found")
    name = config_name or f"r{radius}" + ("" if require_gt else "_all")
    config = WindowConfig(name=name, radius=radius, require_gt=require_gt,
                          description=f"windows of {2 * radius + 1} frames")
    kwargs.setdefault("file_format", "array_record")
    super().__init__(config=config, data_dir=None if data_dir is None else str(data_dir),
                     **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, description=self.__class__.__doc__,
                                 features=_features(), disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing is downloaded.
    scenes = self.scenes()  # Listed and checked before anything is written.
    if not scenes:
      raise ValueError(f"{self._source_dir}: no scenes found for {self.name}")
    return {"train": self._generate_examples(scenes)}

  def scenes(self) -> list[Scene]:
    """The source's scenes; subclasses list and check them without decoding pixels."""
    raise NotImplementedError

  def _generate_examples(self, scenes: Sequence[Scene]) -> Iterator[tuple[str, dict]]:
    radius = self.builder_config.radius
    for scene in scenes:
      n = len(scene.frame_paths)
      period = clips.exposure_period(scene.stops)
      centres = [t for t in range(n)
                 if not self.builder_config.require_gt or scene.gt_paths[t] is not None]
      cache: dict[int, tuple[np.ndarray, int]] = {}
      bits0 = None
      for t in centres:
        idx = clips.window_indices(n, t, radius, period)
        cache = {i: v for i, v in cache.items() if i in idx}
        for i in sorted(set(idx) - set(cache)):
          image, bits = hdr_io.read_ldr(scene.frame_paths[i])
          if bits0 is None:
            bits0, size0 = bits, image.shape
          if bits != bits0 or image.shape != size0:
            raise ValueError(f"{scene.frame_paths[i]}: {bits}-bit {image.shape[:2]} frame in "
                             f"scene {scene.name}, expected {bits0}-bit {size0[:2]} like its "
                             "first frame")
          cache[i] = (hdr_io.to_code_values(image, bits).astype(np.uint16), bits)
        gt_path = scene.gt_paths[t]
        if gt_path is not None:
          gt = hdr_io.read_hdr(gt_path)
          if gt.shape != size0:
            raise ValueError(f"{gt_path}: GT is {gt.shape[:2]}, expected the frame size "
                             f"{size0[:2]} of scene {scene.name}")
        else:
          gt = np.zeros((0, 0, 3), np.float32)
        yield f"{scene.name}/{t:06d}", {
            "frames": np.stack([cache[i][0] for i in idx]),
            "bits": bits0,
            "stops": scene.stops[idx].astype(np.float32),
            "gt": gt,
            "has_gt": gt_path is not None,
            "t": t,
            "scene": scene.name,
            "names": [scene.frame_paths[i].stem for i in idx],
            "response": scene.response,
            "meta": scene.meta,
        }


class SynthClips(_WindowBuilder):
  """Pre-rendered synthetic clips (§7 clip folders with gt/, from `dealthdr synth`)."""

  def scenes(self) -> list[Scene]:
    folders = sorted(p for p in self._source_dir.iterdir()
                     if p.is_dir() and any((p / f).is_file() for f in clips.EXPOSURE_FILES))
    out = []
    for folder in folders:
      meta_path = folder / "meta.json"
      meta = meta_path.read_text() if meta_path.is_file() else "{}"
      try:
        response = json.loads(meta).get("response", "gamma2.2")
      except (json.JSONDecodeError, AttributeError) as e:
        raise ValueError(f"{meta_path}: expected a JSON object ({e})") from e
      # Simulator curves (e.g. "sigmoid") are not clip-contract responses: check the
      # rest of the folder with a placeholder and keep the recorded name.
      clip = clips.open_clip(folder, response=response if response in
                             response_lib.RESPONSES else "linear")
      if not clip.has_gt and self.builder_config.require_gt:
        raise ValueError(f"{folder}: synthetic clip without gt/; expected gt/<frame>.exr")
      out.append(Scene(name=folder.name, frame_paths=clip.frame_paths, stops=clip.stops,
                       gt_paths=clip.gt_paths or (None,) * len(clip),
                       response=str(response), meta=meta))
    return out


def _read_list(path: pathlib.Path) -> list[list[str]]:
  rows = [line.split() for line in path.read_text().splitlines()]
  return [r for r in rows if r and not r[0].startswith("#")]


def deephdrvideo_scenes(root: PathLike) -> list[Scene]:
  """The scenes of a DeepHDRVideo folder (layout 2 of the module docstring), checked.

  Raises:
    FileNotFoundError: a listed scene or frame does not exist.
    ValueError: a scene with fewer than 2 frames, or a bad exposure file.
  """
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"{root}: dataset folder not found")
  listing = root / "scene_all.txt"
  if listing.is_file():
    names = [r[0] for r in _read_list(listing)]
  else:
    names = sorted(p.name for p in root.iterdir()
                   if p.is_dir() and (p / "Exposures.txt").is_file())
  out = []
  for name in names:
    folder = root / name
    if not folder.is_dir():
      raise FileNotFoundError(f"{listing}: lists scene {name!r} but {folder} does not exist")
    out.append(_deephdrvideo_scene(folder))
  return out


def _deephdrvideo_scene(folder: pathlib.Path) -> Scene:
  pairs = folder / "img_hdr_list.txt"
  singles = folder / "img_list.txt"
  if pairs.is_file() or singles.is_file():
    listing = pairs if pairs.is_file() else singles
    rows = _read_list(listing)
    frames = tuple(folder / r[0] for r in rows)
    gts = tuple(folder / r[1] if len(r) > 1 and (folder / r[1]).is_file() else None
                for r in rows)
    for f in frames:
      if not f.is_file():
        raise FileNotFoundError(f"{listing}: lists {f.name} but {f} does not exist")
    if len(frames) < 2:
      raise ValueError(f"{listing}: {len(frames)} frame(s); a scene needs at least 2")
    stops = clips.read_exposure_file(folder / "Exposures.txt", len(frames))
    return Scene(name=folder.name, frame_paths=frames, stops=stops, gt_paths=gts)
  clip = clips.open_clip(folder)
  return Scene(name=folder.name, frame_paths=clip.frame_paths, stops=clip.stops,
               gt_paths=clip.gt_paths or (None,) * len(clip), response=clip.response)


class DeepHDRVideo(_WindowBuilder):
  """DeepHDRVideo real benchmark scenes (16-bit TIFF frames, Exposures.txt, .hdr GT)."""

  def scenes(self) -> list[Scene]:
    return deephdrvideo_scenes(self._source_dir)


def realhdrv_scenes(root: PathLike, *, ev: float = 3.0,
                    phases: Sequence[str] = ("long", "short")) -> list[Scene]:
  """The scenes of a Real-HDRV folder (layout 3 of the module docstring), checked.

  Args:
    root: the dataset folder.
    ev: stops between the long and the short stream.
    phases: which alternations to form: "long" (frame 0 long) and/or "short"; each is a
      scene `<scene>@<phase>`.
  Raises:
    FileNotFoundError: no such folder. ValueError: unknown phase, streams that differ.
  """
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"{root}: dataset folder not found")
  bad = [p for p in phases if p not in ("long", "short")]
  if bad or not phases:
    raise ValueError(f"phases must be a non-empty subset of ('long', 'short'), got {phases}")
  folders = sorted(p for p in root.iterdir() if p.is_dir() and (p / "Input_0").is_dir())
  out = []
  for folder in folders:
    short = {p.stem: p for p in (folder / "Input_0").iterdir()
             if p.suffix.lower() in hdr_io.LDR_SUFFIXES}
    long = {p.stem: p for p in (folder / "Input_1").iterdir()
            if p.suffix.lower() in hdr_io.LDR_SUFFIXES} if (folder / "Input_1").is_dir() else {}
    if sorted(short) != sorted(long):
      raise ValueError(f"{folder}: Input_0 (short) and Input_1 (long) must hold the same "
                       f"frame names; only in Input_0: {sorted(set(short) - set(long))[:5]}, "
                       f"only in Input_1: {sorted(set(long) - set(short))[:5]}")
    stems = sorted(short)
    if len(stems) < 2:
      raise ValueError(f"{folder}: {len(stems)} frame(s); a scene needs at least 2")
    gts = []
    for s in stems:
      candidates = [folder / "GT" / f"GT_{s}.hdr", folder / "GT" / f"{s}.hdr",
                    folder / "GT" / f"GT_{s}.exr", folder / "GT" / f"{s}.exr"]
      gts.append(next((c for c in candidates if c.is_file()), None))
    for phase in phases:
      is_long = [(i % 2 == 0) == (phase == "long") for i in range(len(stems))]
      out.append(Scene(
          name=f"{folder.name}@{phase}",
          frame_paths=tuple(long[s] if l else short[s] for s, l in zip(stems, is_long)),
          stops=np.where(is_long, float(ev), 0.0).astype(np.float32),
          gt_paths=tuple(gts)))
  return out


class RealHDRV(_WindowBuilder):
  """Real-HDRV scenes (Input_0 short / Input_1 long TIFF streams, per-frame GT .hdr)."""

  def __init__(self, *, ev: float = 3.0, phases: Sequence[str] = ("long", "short"),
               **kwargs):
    """Args:
      ev: stops between the long and the short stream.
      phases: which alternations to build: "long" (frame 0 long) and/or "short".
      **kwargs: as `_WindowBuilder`.
    """
    bad = [p for p in phases if p not in ("long", "short")]
    if bad or not phases:
      raise ValueError(f"phases must be a non-empty subset of ('long', 'short'), got {phases}")
    self._ev, self._phases = float(ev), tuple(phases)
    super().__init__(**kwargs)

  def scenes(self) -> list[Scene]:
    return realhdrv_scenes(self._source_dir, ev=self._ev, phases=self._phases)


def read_windows(built_dir: PathLike, split: str = "train") -> grain.MapDataset:
  """Random-access source over built windows (ArrayRecord; no TensorFlow).

  Args:
    built_dir: a builder's `data_dir` (`<data_dir>/<name>/<config>/<version>`, the folder
      holding dataset_info.json), or any parent with exactly one such folder below it.
    split: split name ("train").
  Returns:
    `grain.MapDataset` of example dicts (see the module docstring; text fields are bytes).
  """
  built_dir = pathlib.Path(built_dir)
  if not (built_dir / "dataset_info.json").is_file():
    found = sorted(p.parent for p in built_dir.rglob("dataset_info.json"))
    if len(found) != 1:
      raise FileNotFoundError(f"{built_dir}: expected one built dataset (dataset_info.json) "
                              f"below it, found {len(found)}: {[str(f) for f in found[:5]]}")
    built_dir = found[0]
  source = tfds.builder_from_directory(str(built_dir)).as_data_source(split=split)
  return grain.MapDataset.source(source)


def window_to_float(example: dict) -> dict:
  """Decodes one example: frames → [T, H, W, 3] float32 in [0, 1], text → str."""
  out = dict(example)
  out["frames"] = example["frames"].astype(np.float32) / np.float32(2 ** int(example["bits"]) - 1)
  for key in ("scene", "response", "meta"):
    out[key] = example[key].decode() if isinstance(example[key], bytes) else example[key]
  out["names"] = [n.decode() if isinstance(n, bytes) else n for n in example["names"]]
  return out
