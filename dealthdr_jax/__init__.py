"""dealthdr-jax: HDR video from degraded alternating-exposure LDR video (JAX/Flax)."""

__version__ = "0.1.0"
