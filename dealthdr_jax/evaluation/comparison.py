"""A candidate model's results against a baseline's, set by set, and the ship rule.

A row is what `tools/results_table.py` writes (and a model card's "results" holds): one
method on one test set at one attention ratio, with the set's mean of each metric and,
where measured, each clip's ("per_clip"). `compare` pairs the candidate's rows with the
baseline's of the same set, ratio and self-ensemble size, and `verdict` applies the ship
rule to every pair.

The ship rule exists because PSNR-T alone has misled: it is decided mostly where no
exposure recorded the scene (docs/results_history.md, "What PSNR-T measures on these
sets"), so a model can raise it while it loses on everything else. The 3exp teacher on
unrecorded pixels (2026-12-06) raised PSNR-T on two of three sets and lowered JOD on all
three (one clip by 1.5 JOD) and raised the dark chroma error by 19 %. A candidate ships
only if, on every set compared,
  - PSNR-T does not fall (by more than `Tolerances.psnr_t` dB),
  - PSNR-T rec. (the pixels some exposure recorded) does not fall by more than
    `Tolerances.psnr_t_rec` dB,
  - JOD (ColorVideoVDP), where both rows have it, does not fall by more than
    `Tolerances.jod`,
  - the dark chroma error does not rise by more than `Tolerances.dark_chroma` (relative),
and PSNR-T rises on at least one set (else there is nothing to ship).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Sequence

# (metric, better when higher): the columns compared, in the order printed.
METRICS = (("psnr_t", True), ("psnr_t_rec", True), ("psnr_l", True), ("ssim_t", True),
           ("jod", True), ("dark_chroma", False))


@dataclasses.dataclass(frozen=True)
class Tolerances:
  """How much a candidate may lose on one set and still ship (see the module doc)."""
  psnr_t: float = 0.0  # dB.
  psnr_t_rec: float = 0.05  # dB.
  jod: float = 0.02  # JOD units.
  dark_chroma: float = 0.05  # Relative rise (0.05 = 5 %).


@dataclasses.dataclass(frozen=True)
class SetComparison:
  """One set at one ratio: both rows' means, and per clip where both rows have clips."""
  set: str
  ratio: float
  self_ensemble: int
  candidate: dict[str, float | None]
  baseline: dict[str, float | None]
  clip_psnr_t_deltas: dict[str, float]  # Clip name → candidate − baseline PSNR-T (dB).
  clip_jod_deltas: dict[str, float]

  def delta(self, metric: str) -> float | None:
    a, b = self.candidate.get(metric), self.baseline.get(metric)
    return None if a is None or b is None else float(a) - float(b)

  @property
  def key(self) -> str:
    extra = f", self-ensemble {self.self_ensemble}" if self.self_ensemble > 1 else ""
    return f"{self.set} at ratio {self.ratio:g}{extra}"


class ComparisonError(ValueError):
  """The candidate's rows cannot be compared with the baseline's."""


def _key(row: dict[str, Any]) -> tuple[str, float, int]:
  for field in ("set", "method", "ratio"):
    if field not in row:
      raise ComparisonError(f"a result row has no {field!r}: {sorted(row)}")
  ratio = row["ratio"]
  if ratio is None:
    raise ComparisonError(f"row {row['method']!r} on {row['set']!r} has no attention ratio "
                          "(a baseline method?); compare model rows only")
  return row["set"], round(float(ratio), 6), int(row.get("self_ensemble") or 1)


def select(rows: Iterable[dict[str, Any]], method: str) -> dict[tuple, dict[str, Any]]:
  """The rows of one method, keyed by (set, ratio, self-ensemble size)."""
  chosen = {}
  for row in rows:
    if row.get("method") != method:
      continue
    key = _key(row)
    if key in chosen:
      raise ComparisonError(f"two rows of method {method!r} for {key[0]!r} at ratio "
                            f"{key[1]:g}, self-ensemble {key[2]}")
    chosen[key] = row
  return chosen


def compare(candidate_rows: Sequence[dict[str, Any]], baseline_rows: Sequence[dict[str, Any]],
            candidate_method: str = "dealthdr", baseline_method: str = "dealthdr",
            skip_unmatched: bool = False) -> list[SetComparison]:
  """Pairs every candidate row with the baseline row of its set, ratio and self-ensemble.

  Raises ComparisonError when the candidate has no row of `candidate_method`, or when one of
  its rows has no baseline counterpart (named, with the baseline's sets listed), unless
  `skip_unmatched`: then such rows are left out (a new ratio the baseline never measured).
  """
  cand = select(candidate_rows, candidate_method)
  base = select(baseline_rows, baseline_method)
  if not cand:
    methods = sorted({str(r.get("method")) for r in candidate_rows})
    raise ComparisonError(f"no candidate rows of method {candidate_method!r}; the candidate "
                          f"has {methods}")
  out = []
  for key, row in cand.items():
    if key not in base and skip_unmatched:
      continue
    if key not in base:
      have = sorted(f"{s} at {r:g}" + (f" (self-ensemble {n})" if n > 1 else "")
                    for s, r, n in base)
      raise ComparisonError(
          f"the baseline ({baseline_method!r}) has no row for {key[0]!r} at ratio {key[1]:g}"
          + (f", self-ensemble {key[2]}" if key[2] > 1 else "") + f"; it has: {have}")
    other = base[key]
    clips_c, clips_b = row.get("per_clip") or {}, other.get("per_clip") or {}
    common = sorted(set(clips_c) & set(clips_b))
    if clips_c and clips_b and not common:
      raise ComparisonError(f"{key[0]!r}: the two rows share no clip names")

    def clip_deltas(metric):
      return {c: float(clips_c[c][metric]) - float(clips_b[c][metric]) for c in common
              if clips_c[c].get(metric) is not None and clips_b[c].get(metric) is not None}

    out.append(SetComparison(
        set=key[0], ratio=key[1], self_ensemble=key[2],
        candidate={m: row.get(m) for m, _ in METRICS},
        baseline={m: other.get(m) for m, _ in METRICS},
        clip_psnr_t_deltas=clip_deltas("psnr_t"), clip_jod_deltas=clip_deltas("jod")))
  return out


def verdict(comparisons: Sequence[SetComparison], tolerances: Tolerances = Tolerances()
            ) -> tuple[bool, list[str]]:
  """(ships, reasons): the ship rule of the module doc; each reason names set and metric."""
  if not comparisons:
    raise ComparisonError("nothing to judge: no set was compared")
  reasons = []
  for c in comparisons:
    for metric, allowed in (("psnr_t", tolerances.psnr_t),
                            ("psnr_t_rec", tolerances.psnr_t_rec), ("jod", tolerances.jod)):
      d = c.delta(metric)
      if d is not None and d < -allowed:
        reasons.append(f"{c.key}: {metric} falls by {-d:.3f} (allowed {allowed:g})")
    base, cand = c.baseline.get("dark_chroma"), c.candidate.get("dark_chroma")
    if base is not None and cand is not None and cand > base * (1.0 + tolerances.dark_chroma):
      reasons.append(f"{c.key}: dark_chroma rises by {100.0 * (cand / base - 1.0):.1f} % "
                     f"(allowed {100.0 * tolerances.dark_chroma:g} %)")
  if not any((c.delta("psnr_t") or 0.0) > 0.0 for c in comparisons):
    reasons.append("PSNR-T rises on no set")
  return not reasons, reasons


def markdown(comparisons: Sequence[SetComparison]) -> str:
  """A table: per set, each metric as candidate / baseline (delta), and the clips."""
  header = ["set"] + [m for m, _ in METRICS] + ["clips gaining PSNR-T (worst)",
                                                 "worst clip JOD"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for c in comparisons:
    cells = [c.key]
    for metric, _ in METRICS:
      a, b, d = c.candidate.get(metric), c.baseline.get(metric), c.delta(metric)
      digits = 4 if metric in ("ssim_t", "dark_chroma") else 2
      cells.append("–" if d is None else f"{a:.{digits}f} / {b:.{digits}f} ({d:+.{digits}f})")
    p, j = c.clip_psnr_t_deltas, c.clip_jod_deltas
    cells.append(f"{sum(v > 0 for v in p.values())} of {len(p)} ({min(p.values()):+.2f})"
                 if p else "–")
    cells.append(f"{min(j, key=j.get)} {min(j.values()):+.2f}" if j else "–")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)
