"""Data side of dealthdr-jax: HDR sources, the camera simulator, clip readers, grain pipelines.

This package never imports `dealthdr_jax` (DESIGN.md §2). Conventions both sides need
(radiance units, camera responses) live here as NumPy functions.
"""
