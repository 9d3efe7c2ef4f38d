"""Prints the parameter count of each config preset (or of the configs given).

  python tools/param_count.py                      # every size of both patterns
  python tools/param_count.py dealthdr_3exp:size=base
"""
import sys

from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.models.dealthdr import DeAltHDR


def main(specs):
  if not specs:
    specs = [f"{p}:size={s}" for p in ("dealthdr_2exp", "dealthdr_3exp")
             for s in ("tiny", "small", "base")]
  for spec in specs:
    model = DeAltHDR.from_config(config_loading.load_config(spec).model)
    print(f"{spec:32s} {model_files.count_params(model_files.init_params(model)):>10,d} params")


if __name__ == "__main__":
  main(sys.argv[1:])
