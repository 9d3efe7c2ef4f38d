"""The self-ensemble: the model run on mirrored copies of its window, each output mirrored
back and averaged (`infer --self-ensemble`, and the teacher that stage 1 distils with
`loss.distill_weight`). One definition, so the teacher that training distils is the
ensemble that inference runs."""
from __future__ import annotations

from typing import TypeVar

# How many copies an ensemble may average: the first `n` of MIRRORINGS.
SIZES = (1, 2, 4)
# (left_right, upside_down) of each copy, in the order they are added.
MIRRORINGS = ((False, False), (True, False), (False, True), (True, True))

Array = TypeVar("Array")


def mirror(x: Array, left_right: bool, upside_down: bool) -> Array:
  """`x` [..., H, W, C] (numpy or jax) mirrored along W and/or H (its own inverse)."""
  if left_right:
    x = x[..., :, ::-1, :]
  if upside_down:
    x = x[..., ::-1, :, :]
  return x
