"""Small building blocks shared by the model's modules."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def act(x: jnp.ndarray) -> jnp.ndarray:
  return nn.leaky_relu(x, 0.1)


class ConvAct(nn.Module):
  """Conv + leaky ReLU. x: [N, H, W, Cin] → [N, H/stride, W/stride, features]."""
  features: int
  kernel: int = 3
  stride: int = 1
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.features, (self.kernel, self.kernel), strides=self.stride,
                padding="SAME", dtype=self.dtype, name="conv")(x)
    return act(x)


class ResBlock(nn.Module):
  """Two 3×3 convs with a skip. x: [N, H, W, C] → [N, H, W, C]."""
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    y = ConvAct(c, dtype=self.dtype, name="conv1")(x)
    y = nn.Conv(c, (3, 3), padding="SAME", dtype=self.dtype, name="conv2")(y)
    return act(x + y)


def avg_pool2(x: jnp.ndarray) -> jnp.ndarray:
  """2×2 average pooling. x: [N, H, W, C] with even H, W → [N, H/2, W/2, C]."""
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def upsample(x: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
  """Bilinear resize of [N, h, w, C] to [N, height, width, C]."""
  return jax.image.resize(x, (x.shape[0], height, width, x.shape[-1]), method="linear")
