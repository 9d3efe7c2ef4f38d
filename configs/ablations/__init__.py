"""Ablation configs: small files that import a base config and change a few fields."""
