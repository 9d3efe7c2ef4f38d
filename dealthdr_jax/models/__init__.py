"""The reconstruction model: flow (flow.py), FGMA (fgma.py), encoders and fusion (recon.py).

`models` imports nothing from training, inference or the CLI (DESIGN.md §2).
"""
