"""Experiment configs: each module defines `get_config(arg=None)` (big_vision style)."""
