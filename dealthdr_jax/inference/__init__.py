"""Inference: the predictor (compiled once per shape, tiling), `infer` over clips and
videos, the classical baselines run the same way, the preview video, `bench`, `export`
and the model-free loader of exported programs.

Imports `models` and the package-level `config_loading` and `model_files`; never training
or evaluation.
"""
