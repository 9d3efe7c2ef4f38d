"""dealthdr-jax: HDR video from degraded alternating-exposure LDR video (JAX/Flax).

The Python API (`dealthdr_jax.api`): `model = dealthdr_jax.load("2exp")`, then
`hdr = model(frames, stops)`, `model.stream(...)` or `model.reconstruct(clip, out)`;
`write_hdr_video(path, hdr)` encodes HDR frames as an HDR10 or HLG video.
It is imported on first use, so `import dealthdr_jax` and the CLI stay light.
"""

__version__ = "0.1.0"

__all__ = ["load", "Reconstructor", "write_hdr_video"]


def __getattr__(name):
  if name in __all__:
    from dealthdr_jax import api  # pylint: disable=g-import-not-at-top
    return getattr(api, name)
  raise AttributeError(f"module 'dealthdr_jax' has no attribute {name!r}")
