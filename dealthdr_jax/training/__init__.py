"""Training: the loop and its step functions (`train.py`), train state and optimiser,
losses, input pipelines, sharding, orbax checkpoints of a run, logging, toy data.

Imports `models`, `evaluation.metrics` and the package-level `config_loading` and
`model_files`; never inference or the CLI.
"""
