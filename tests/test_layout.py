"""The package layout keeps its import direction (README, "What is inside").

Every import in every module (top-level or inside a function) is read with `ast`; each
part of the code may import only the parts listed for it. A new module lands in the part
its folder names, so a backwards import fails here, naming the file and the import.
"""
import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# part → the parts of this repository it may import (besides itself).
ALLOWED = {
    "data_pipeline": set(),
    # `dealthdr synth --format array_record --config` renders what an experiment config
    # trains on: the entry point reads configs (config_loading imports nothing of ours).
    "data_pipeline.synth": {"data_pipeline", "dealthdr_jax.config_loading"},
    "configs": set(),
    "dealthdr_jax.models": {"data_pipeline"},
    "dealthdr_jax.config_loading": set(),
    "dealthdr_jax.model_files": {"data_pipeline", "dealthdr_jax.config_loading",
                                 "dealthdr_jax.models"},
    "dealthdr_jax.inference": {"data_pipeline", "dealthdr_jax.config_loading",
                               "dealthdr_jax.model_files", "dealthdr_jax.models"},
    "dealthdr_jax.evaluation": {"data_pipeline", "dealthdr_jax.config_loading",
                                "dealthdr_jax.model_files", "dealthdr_jax.models",
                                "dealthdr_jax.inference"},
    # Training validates with evaluation's metrics; it never runs inference.
    "dealthdr_jax.training": {"data_pipeline", "dealthdr_jax.config_loading",
                              "dealthdr_jax.model_files", "dealthdr_jax.models",
                              "dealthdr_jax.evaluation.metrics"},
    # The entry points (CLI, demo, Python API) sit on top and may import anything.
    "dealthdr_jax.cli": {"*"},
    "dealthdr_jax.demo": {"*"},
    "dealthdr_jax.api": {"*"},
    "dealthdr_jax": {"dealthdr_jax.api"},  # the package's __init__, lazily (PEP 562)
}
PARTS = sorted(ALLOWED, key=len, reverse=True)  # most specific first
OURS = ("data_pipeline", "configs", "dealthdr_jax")


def _part(module: str) -> str | None:
  for part in PARTS:
    if module == part or module.startswith(part + "."):
      return part
  return None


def _imports(path: pathlib.Path) -> list[str]:
  tree = ast.parse(path.read_text(), filename=str(path))
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      found += [f"{node.module}.{a.name}" for a in node.names]
  return [m for m in found if m.split(".")[0] in OURS]


def _modules():
  for root in OURS:
    for path in sorted((REPO / root).rglob("*.py")):
      module = ".".join(path.relative_to(REPO).with_suffix("").parts)
      yield module.removesuffix(".__init__"), path


@pytest.mark.parametrize("module,path", list(_modules()), ids=lambda x: str(x))
def test_imports_go_one_way(module, path):
  part = _part(module)
  assert part is not None, f"{module} belongs to no part of the layout; add it to ALLOWED"
  allowed = ALLOWED[part]
  if "*" in allowed:
    return
  for imported in _imports(path):
    target = _part(imported)
    ok = target == part or target in allowed or any(
        imported == a or imported.startswith(a + ".") for a in allowed)
    assert ok, (f"{path.relative_to(REPO)} ({part}) imports {imported} ({target}); "
                f"{part} may import only {sorted(allowed) or 'nothing'} of this repository")


def test_no_two_modules_share_a_concept_name():
  """`checkpoints` vs `checkpointing`, `modeling` vs `models`: one name per concept."""
  stems = {}
  for module, _ in _modules():
    name = module.split(".")[-1]
    stems.setdefault(name.rstrip("s").removesuffix("ing"), set()).add(module)
  # A folder and a module inside it (training/train.py) are one concept, not two.
  clashes = {k: v for k, v in stems.items()
             if len({m.split(".")[-1] for m in v if not any(
                 o.startswith(m + ".") for o in v)}) > 1}
  assert not clashes, f"modules whose names a newcomer could swap: {clashes}"
