"""The ablation runner end to end on the tiny preset: trains, infers, scores, tabulates."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import run_ablations  # noqa: E402  (a script in tools/, imported for its main())


def test_ablation_table(tmp_path):
  rc = run_ablations.main(["--out", str(tmp_path), "--size", "tiny", "--steps", "2",
                           "--only", "no_fgma", "--test-clips", "1", "--test-frames", "3",
                           "--test-size", "32x32", "--config.eval_every=2",
                           "--config.checkpoint_every=2"])
  assert rc == 0
  table = (tmp_path / "ablations.md").read_text().splitlines()
  entries = [line.split("|")[1].strip() for line in table[2:]]
  assert entries == ["baseline: reference_only", "baseline: dis_flow", "no_fgma"]
  psnr_t = [float(line.split("|")[4]) for line in table[2:]]
  assert all(10 < p < 100 for p in psnr_t), psnr_t
