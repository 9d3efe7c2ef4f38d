"""Evaluation: metrics (NumPy and jnp), `eval` over prediction folders, and the scoring
harness that runs methods through `inference.infer` on fixed test clips.

Imports `models` and `inference`; never training.
"""
