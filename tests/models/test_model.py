"""The full model on tiny configs: jit at odd sizes, output range, gradients, bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipeline import clips as clips_lib
from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.models import flow as flow_lib
from dealthdr_jax.models import fgma as fgma_lib
from dealthdr_jax.models import response as resp
from dealthdr_jax.models import dealthdr as dealthdr_lib
from dealthdr_jax.models import warp as warp_lib
from dealthdr_jax.models.dealthdr import DeAltHDR


def _clip(model, h, w, batch=1, seed=0):
  rng = np.random.default_rng(seed)
  frames = rng.uniform(0, 1, (batch, model.window, h, w, 3)).astype(np.float32)
  gap = 3.0 if model.window == 3 else 2.0
  pattern = (np.arange(model.window) % (2 if model.window == 3 else 3)) * gap
  stops = np.tile(pattern, (batch, 1)).astype(np.float32)
  return frames, stops


@pytest.fixture(scope="module", params=["dealthdr_2exp", "dealthdr_3exp"])
def tiny(request):
  config = config_loading.load_config(f"{request.param}:size=tiny")
  model = DeAltHDR.from_config(config.model)
  return model, model_files.init_params(model, seed=1)


def test_jit_odd_size_finite_nonnegative(tiny):
  model, params = tiny
  frames, stops = _clip(model, 45, 38, batch=2)
  fn = jax.jit(lambda p, f, s: model.apply({"params": p}, f, s, ratio=0.5,
                                           attention_tokens=True))
  hdr, aux = fn(params, frames, stops)
  assert hdr.shape == (2, 45, 38, 3)
  # Where FGMA's attention looked, per level (training's attention_match_loss reads it).
  assert sorted(aux["attention"]) == sorted(model.fgma_levels)
  pad_h, pad_w = aux["pad"]
  for level, tokens in aux["attention"].items():
    fh, fw = (45 + pad_h) >> (level + 1), (38 + pad_w) >> (level + 1)
    assert aux["masks"][level].shape[-2:] == (fh, fw)
    k = fgma_lib.num_selected(0.5, fh * fw)
    n = 2 * (model.window - 1)
    assert tokens["weights"].shape == (n, k, model.fgma_heads, model.fgma_window ** 2)
    np.testing.assert_allclose(tokens["weights"].sum(-1), 1.0, rtol=1e-5)
    centres = np.asarray(tokens["centres"])
    assert centres.shape == (n, k, 2) and centres.min() >= 0
    assert centres[..., 0].max() <= fw - 1 and centres[..., 1].max() <= fh - 1
  assert np.all(np.isfinite(hdr)) and float(hdr.min()) >= 0.0
  assert aux["flow"].shape == (2, model.window - 1, 45, 38, 2)
  assert aux["blend_weights"].shape == (2, 45, 38, model.window)
  for level, mask in aux["masks"].items():
    if level in model.fgma_levels:
      share = float(mask.mean())
      assert 0.4 < share < 0.6, (level, share)


def test_output_units_follow_exposure_offset(tiny):
  """Stops are relative: adding s to every frame's stops divides the radiance by 2**s."""
  model, params = tiny
  frames, stops = _clip(model, 32, 32)
  apply = jax.jit(lambda f, s: model.apply({"params": params}, f, s, ratio=0.0)[0])
  hdr, hdr_shifted = apply(frames, stops), apply(frames, stops + 2.0)
  np.testing.assert_allclose(hdr_shifted, hdr / 4.0, rtol=1e-5, atol=1e-8)


def test_untrained_model_returns_reference_radiance_where_frames_agree(tiny):
  """A static, well-exposed scene seen identically by every frame: the candidates agree,
  so even freshly initialised weights give `linearise(LDR_ref) / e_ref`."""
  model, params = tiny
  rng = np.random.default_rng(4)
  radiance = rng.uniform(0.02, 0.055, (1, 32, 40, 3))  # < 1 even at +4 stops.astype(np.float32)
  _, stops = _clip(model, 32, 40)
  ldr = np.stack([np.clip(radiance[0] * 2.0 ** s, 0, 1) ** (1 / 2.2) for s in stops[0]])[None]
  hdr = jax.jit(lambda f, s: model.apply({"params": params}, f, s, ratio=0.25)[0])(ldr, stops)
  np.testing.assert_allclose(hdr, radiance, rtol=2e-2)


def test_gradients_finite(tiny):
  model, params = tiny
  frames, stops = _clip(model, 32, 32, seed=3)

  def loss(p):
    hdr, aux = model.apply({"params": p}, frames, stops, ratio=0.25)
    return jnp.mean(jnp.log1p(5000 * hdr)) + 0.01 * jnp.mean(aux["flow_pyramid"][-1] ** 2)

  grads = jax.jit(jax.grad(loss))(params)
  leaves = jax.tree.leaves(grads)
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert sum(float(jnp.abs(g).sum()) for g in leaves) > 0


def test_bad_inputs_name_the_argument(tiny):
  model, params = tiny
  frames, stops = _clip(model, 32, 32)
  apply = lambda f, s: model.apply({"params": params}, f, s, ratio=0.0)
  with pytest.raises(ValueError, match=r"frames must be \[batch, time, height, width, 3\]"):
    apply(frames[0], stops)
  with pytest.raises(ValueError, match="frames per window"):
    apply(frames[:, :2], stops[:, :2])
  with pytest.raises(ValueError, match=r"stops must be \[batch, time\]"):
    apply(frames, stops[:, :2])
  with pytest.raises(ValueError, match="at least"):
    apply(frames[:, :, :10], stops)
  bad = frames.copy()
  bad[0, 1, 3, 4, 0] = np.nan
  with pytest.raises(ValueError, match=r"frames contains NaN or Inf \(first at batch 0, frame 1\)"):
    apply(bad, stops)
  with pytest.raises(ValueError, match="stops contains NaN"):
    apply(frames, np.where(np.arange(model.window) == 0, np.inf, stops))
  with pytest.raises(ValueError, match="divided by 255"):
    apply(frames * 255, stops)


def test_params_checkpoint_round_trip(tiny, tmp_path):
  model, params = tiny
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  model_files.save_params(tmp_path / "ckpt", params, config, card={"steps": 0})
  loaded, loaded_config = model_files.load_params(tmp_path / "ckpt")
  assert loaded_config.model.features == config.model.features
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, params), loaded)
  with pytest.raises(FileNotFoundError, match="not a params-only checkpoint"):
    model_files.load_params(tmp_path)
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / model_files.CONFIG_FILE).write_text(config.to_json())
  (tmp_path / "bad" / model_files.PARAMS_FILE).write_bytes(b"\x00garbage")
  with pytest.raises(ValueError, match="not a readable parameter file"):
    model_files.load_params(tmp_path / "bad")


def test_configs_are_locked_and_overridable():
  config = config_loading.load_config("dealthdr_3exp:size=small,radius=1,ratio=0.5")
  assert config.model.radius == 1 and config.attn_ratio == 0.5
  config_loading.apply_overrides(config, ["model.fgma_window=5", "--config.attn_ratio=1.0"])
  assert config.model.fgma_window == 5 and config.attn_ratio == 1.0
  with pytest.raises(KeyError, match="atn_ratio"):
    config_loading.apply_overrides(config, ["model.atn_ratio=0.5"])
  with pytest.raises(AttributeError):
    config.new_field = 1
  with pytest.raises(ValueError, match="unknown config argument"):
    config_loading.load_config("dealthdr_2exp:sise=small")
  with pytest.raises(ValueError, match="unknown model size"):
    config_loading.load_config("dealthdr_2exp:size=huge")
  with pytest.raises(FileNotFoundError, match="available"):
    config_loading.load_config("no_such_config")
  with pytest.raises(ValueError, match="unknown model config keys"):
    DeAltHDR.from_config(dict(config.model, extra=1))


def test_exposure_prior_moves_weight_off_clipped_candidates(tiny):
  model, params = tiny
  frames, stops = _clip(model, 32, 32)
  r = model.window // 2
  frames[:, :] = 0.5
  frames[:, r] = 1.0  # The reference is clipped everywhere; the neighbours are well exposed.
  plain = model.apply({"params": params}, frames, stops, ratio=0.0)[1]["blend_weights"]
  prior = model.clone(exposure_prior=True).apply({"params": params}, frames, stops,
                                                 ratio=0.0)[1]["blend_weights"]
  # The untrained head: plain softmax favours the reference 4:1 over each neighbour; the
  # prior scales the clipped reference's odds by 0.01 / 1.01.
  n = model.window - 1
  np.testing.assert_allclose(plain[..., 0], 4 / (4 + n), rtol=1e-4)
  np.testing.assert_allclose(prior[..., 0], 4 * 0.01 / (4 * 0.01 + n * 1.01), rtol=1e-3)


def test_flow_fill_replaces_flow_where_the_reference_is_clipped(tiny):
  model, params = tiny
  rng = np.random.default_rng(5)
  # The untrained flow network's outputs are zero-initialised: give it motion of its own.
  params = {**params, "flow": jax.tree_util.tree_map(
      lambda x: x + 0.05 * rng.standard_normal(x.shape).astype(np.float32), params["flow"])}
  r = model.window // 2
  frames = rng.uniform(0.6, 0.78, (1, model.window, 64, 64, 3)).astype(np.float32)
  frames[:, r, 24:40, 24:40] = 1.0          # Saturated in the reference, nowhere else.
  stops = np.zeros((1, model.window), np.float32)
  stops[:, r] = 3.0                         # Re-exposed to its neighbours it stays mid-grey.
  hdr, plain = model.apply({"params": params}, frames, stops, ratio=0.0)
  hdr_filled, filled = model.clone(flow_fill=True).apply({"params": params}, frames, stops,
                                                         ratio=0.0)
  raw, fill = np.asarray(plain["flow"]), np.asarray(filled["flow"])    # [1, M, 64, 64, 2]
  # Far from the clipped block the flow is the network's own (and its loss's pyramid is
  # the network's everywhere).
  np.testing.assert_allclose(fill[:, :, :16], raw[:, :, :16], atol=1e-5)
  np.testing.assert_allclose(fill[:, :, 48:], raw[:, :, 48:], atol=1e-5)
  for a, b in zip(plain["flow_pyramid"], filled["flow_pyramid"]):
    np.testing.assert_allclose(a, b, atol=1e-6)
  # Inside it, flow from around it: within the range of the flow around the block.
  ring = np.concatenate([raw[:, :, 12:20, 12:52].reshape(-1, 2),
                         raw[:, :, 44:52, 12:52].reshape(-1, 2)])
  inside = fill[:, :, 28:36, 28:36].reshape(-1, 2)
  assert np.all(inside >= ring.min(0) - 1e-4) and np.all(inside <= ring.max(0) + 1e-4)
  assert np.abs(inside - raw[:, :, 28:36, 28:36].reshape(-1, 2)).max() > 1e-3
  # The neighbours are warped by it.
  assert float(np.abs(np.asarray(hdr_filled) - np.asarray(hdr)).max()) > 0.0


def test_flow_fill_consistency_fills_flow_whose_round_trip_misses(tiny):
  """`model.flow_fill_consistency` c: on a well-exposed window (the fill alone keeps every
  flow), the aligned flow stays the network's where its forward-backward round trip misses
  by less than c·ln 2 input pixels (weight ≥ 0.5), and is replaced from around where it
  misses by much more; the network's own flows are untouched."""
  model, params = tiny
  rng = np.random.default_rng(7)
  params = {**params, "flow": jax.tree_util.tree_map(
      lambda x: x + 0.05 * rng.standard_normal(x.shape).astype(np.float32), params["flow"])}
  frames = rng.uniform(0.3, 0.7, (1, model.window, 64, 64, 3)).astype(np.float32)
  stops = np.zeros((1, model.window), np.float32)   # Well exposed in every exposure.
  filled = model.clone(flow_fill=True)
  _, plain = filled.apply({"params": params}, frames, stops, ratio=0.0)
  fwd, bwd = plain["flow_pyramid"][-1][0], plain["flow_bwd_pyramid"][-1][0]  # [M, h, w, 2]
  np.testing.assert_allclose(plain["flow_aligned"][0], fwd, atol=1e-5)
  scale = 2 ** model.flow_finest_log2
  miss = np.asarray(warp_lib.forward_backward_error(fwd, bwd)) * scale       # input pixels
  c = float(np.percentile(miss, 40))
  _, checked = filled.clone(flow_fill_consistency=c).apply({"params": params}, frames, stops,
                                                           ratio=0.0)
  aligned = np.asarray(checked["flow_aligned"][0])
  close, far = miss < 0.6 * c, miss > 2.0 * c
  assert close.sum() >= 10 and far.sum() >= 10, (close.sum(), far.sum())
  np.testing.assert_allclose(aligned[close], np.asarray(fwd)[close], atol=1e-5)
  assert np.abs(aligned[far] - np.asarray(fwd)[far]).max() > 1e-2
  for a, b in zip(plain["flow_pyramid"] + plain["flow_bwd_pyramid"],
                  checked["flow_pyramid"] + checked["flow_bwd_pyramid"]):
    np.testing.assert_allclose(a, b, atol=1e-6)
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  assert DeAltHDR.from_config(config.model).flow_fill_consistency == 0.0
  with pytest.raises(ValueError, match="flow_fill_consistency must be >= 0"):
    DeAltHDR.from_config({**dict(config.model), "flow_fill": True,
                          "flow_fill_consistency": -1.0})
  with pytest.raises(ValueError, match="needs model.flow_fill=True"):
    DeAltHDR.from_config({**dict(config.model), "flow_fill_consistency": 1.0})


def _pair_flow_expected(model, params, frames, i, j):
  """What `flow_pair="all"` gives neighbours i and j (frame indices) of the reference:
  the model's flow network on both at half size, then `warp.straddle_flow` at the
  reference's fraction of the way, on the flow grid. → ([h, w, 2] to i, [h, w, 2] to j)."""
  r, (_, _, height, width, _) = model.radius, frames.shape
  lin = resp.linearise(jnp.asarray(frames[0, [i, j]]), model.response)
  small = np.asarray(resp.apply_response(lin, "gamma2.2"))
  small = jnp.asarray(small.reshape(2, height // 2, 2, width // 2, 2, 3).mean((2, 4)))
  mutual = dealthdr_lib.flow_network(model).apply({"params": params["flow"]}, small,
                                                   small[::-1])[-1]
  mutual = warp_lib.resize_flow(mutual, 2 * mutual.shape[1], 2 * mutual.shape[2])
  fraction = (r - i) / (j - i)
  across = np.asarray(warp_lib.straddle_flow(mutual[:1], mutual[1:], fraction))[0]
  return -fraction * across, (1 - fraction) * across


def test_flow_pair_takes_the_neighbours_mutual_flow_where_the_reference_is_long(tiny):
  """`model.flow_pair`: in a window whose reference is longer than a pair of neighbours on
  either side of it, which share one exposure, the flow to them becomes their mutual flow's
  share at the reference's place between them (under constant velocity), computed by the
  model's flow network on both downsampled by `flow_pair_scale` ("all"), or that flow where
  the neighbours agree better under it than under the reference's own ("select"); never
  where a neighbour is clipped or its sample leaves the frame; elsewhere nothing changes.
  Pairs: t-1 with t+1 (and t-2 with t+2) when all neighbours share one exposure; with
  three exposures, t-2 with t+1 and t-1 with t+2 (the reference 2/3 and 1/3 of the way)."""
  model, params = tiny
  rng = np.random.default_rng(11)
  params = {**params, "flow": jax.tree_util.tree_map(
      lambda x: x + 0.05 * rng.standard_normal(x.shape).astype(np.float32), params["flow"])}
  frames = rng.uniform(0.2, 0.6, (1, model.window, 64, 96, 3)).astype(np.float32)
  r = model.radius
  frames[:, [r - 1, r + 1], 16:32, 40:56] = 1.0   # Clipped in both short neighbours.
  long_ref = np.zeros((1, model.window), np.float32)
  long_ref[:, r] = 2.0                        # The reference 2 stops over all neighbours.
  outputs = {mode: model.clone(flow_pair=mode, flow_pair_margin=1.0, flow_pair_smooth=0,
                               flow_fill=True).apply({"params": params}, frames, long_ref,
                                                     ratio=0.0)
             for mode in ("off", "select", "all")}
  flow_of = lambda mode, k: np.asarray(outputs[mode][1]["flow_aligned"][0, k])  # [h, w, 2]
  nbr = lambda frame: frame if frame < r else frame - 1       # Frame index → neighbour slot.
  grid = 2 ** model.flow_finest_log2
  pairs = [(r - 1 - k, r + 1 + k) for k in range(r)]          # Mirror images.
  # "select" smoothed: the choice averaged over (2k+1)² cells blends the two flows.
  k = 2
  _, smooth = model.clone(flow_pair="select", flow_pair_margin=1.0, flow_pair_smooth=k,
                          flow_fill=True).apply({"params": params}, frames, long_ref, ratio=0.0)
  taken_all, chosen_pair, blend_share = [], [], []
  for i, j in pairs:
    expected = _pair_flow_expected(model, params, frames, i, j)
    own = [flow_of("off", nbr(i)), flow_of("off", nbr(j))]
    pair = [flow_of("all", nbr(i)), flow_of("all", nbr(j))]
    # Taken away from the frame's edges (by more than the flow reaches) and from the block
    # the neighbours t∓1 clipped; kept inside that block for them.
    edge = int(np.ceil(max(np.abs(e).max() for e in expected))) + 1   # Flow-grid cells.
    away = np.zeros(expected[0].shape[:2], bool)
    away[edge:-edge, edge:-edge] = True
    away[16 // grid - 1:32 // grid + 1, 40 // grid - 1:56 // grid + 1] = False
    assert away.sum() > 0.3 * away.size
    for got, want in zip(pair, expected):
      np.testing.assert_allclose(got[away], want[away], atol=1e-4)
    if (i, j) == (r - 1, r + 1):
      clipped = (slice(16 // grid, 32 // grid), slice(40 // grid, 56 // grid))
      for got, keep in zip(pair, own):
        np.testing.assert_allclose(got[clipped], keep[clipped], atol=1e-6)
    assert max(np.abs(p - o).max() for p, o in zip(pair, own)) > 1e-2
    taken_all.append(np.all(np.abs(np.stack(pair) - np.stack(expected)) < 1e-4, axis=(0, -1)))
    # "select": each flow-grid position keeps one candidate for both neighbours.
    chosen = np.stack([flow_of("select", nbr(i)), flow_of("select", nbr(j))])
    is_pair = np.all(np.abs(chosen - np.stack(expected)) < 1e-5, axis=(0, -1))
    is_own = np.all(np.abs(chosen - np.stack(own)) < 1e-5, axis=(0, -1))
    assert np.all(is_pair | is_own)
    chosen_pair.append(is_pair)
    box = np.pad(is_pair.astype(np.float64), k, mode="edge")
    box = sum(box[dy:dy + is_pair.shape[0], dx:dx + is_pair.shape[1]]
              for dy in range(2 * k + 1) for dx in range(2 * k + 1)) / (2 * k + 1) ** 2
    step = np.stack(expected) - np.stack(own)                        # [2, h, w, 2]
    moved = np.stack([np.asarray(smooth["flow_aligned"][0, nbr(i)]),
                      np.asarray(smooth["flow_aligned"][0, nbr(j)])]) - np.stack(own)
    apart = np.sum(step ** 2, axis=(0, -1))
    weight = np.sum(moved * step, axis=(0, -1)) / np.maximum(apart, 1e-12)
    np.testing.assert_allclose(moved, weight[None, ..., None] * step, atol=1e-4)
    # The weight is the box-filtered choice where the pair is allowed (certainly where it
    # was chosen), 0 elsewhere; mixed cells exist.
    measurable = apart > 1e-4
    assert np.all(np.isclose(weight, box, atol=1e-3) | np.isclose(weight, 0.0, atol=1e-3)
                  | ~measurable)
    np.testing.assert_allclose(weight[is_pair & measurable], box[is_pair & measurable],
                               atol=1e-3)
    assert np.any((weight > 0.05) & (weight < 0.95) & measurable)
    blend_share.append(np.where(measurable, weight, 0.0))
  all_share = float(outputs["all"][1]["flow_pair_share"][0])
  assert all_share < 1.0 and abs(all_share - np.mean(taken_all)) < 1e-6
  share = float(outputs["select"][1]["flow_pair_share"][0])
  assert 0.0 < share < 1.0 and abs(share - np.mean(chosen_pair)) < 1e-6
  assert abs(float(smooth["flow_pair_share"][0]) - np.mean(blend_share)) < 0.01
  # A margin below 1 asks the pair's flow to be clearly better: it takes fewer positions.
  _, strict = model.clone(flow_pair="select", flow_pair_margin=0.8, flow_pair_smooth=0,
                          flow_fill=True).apply(
      {"params": params}, frames, long_ref, ratio=0.0)
  assert float(strict["flow_pair_share"][0]) < share
  if model.window > 3:
    # Three exposures, the reference the longest: t-2 pairs with t+1, t-1 with t+2.
    three = np.array([[0.0, 2.0, 4.0, 0.0, 2.0]], np.float32)
    _, aux = model.clone(flow_pair="all", flow_fill=True).apply(
        {"params": params}, frames, three, ratio=0.0)
    for i, j in ((0, 3), (1, 4)):
      expected = _pair_flow_expected(model, params, frames, i, j)
      edge = int(np.ceil(max(np.abs(e).max() for e in expected))) + 1
      inner = (slice(edge, -edge), slice(edge, -edge))
      for k, want in zip((nbr(i), nbr(j)), expected):
        got = np.asarray(aux["flow_aligned"][0, k])
        taken = np.all(np.abs(got - want) < 1e-4, axis=-1)
        assert taken[inner].mean() > 0.7, (i, j, k, taken[inner].mean())
  # A short reference, no neighbour after it of the exposure of one before it, or (three
  # exposures) a reference that is not the longest: the model is unchanged.
  short_ref = 2.0 - long_ref
  uneven = long_ref.copy()
  uneven[:, r + 1:] = 1.0
  unchanged = [short_ref, uneven]
  if model.window > 3:
    unchanged.append(np.roll(three, 1, axis=1))           # M S [M] L S: pair S-S, ref M.
  for stops in unchanged:
    off = model.clone(flow_fill=True).apply({"params": params}, frames, stops, ratio=0.0)[0]
    hdr, aux = model.clone(flow_pair="select", flow_fill=True).apply(
        {"params": params}, frames, stops, ratio=0.0)
    np.testing.assert_array_equal(np.asarray(hdr), np.asarray(off))
    assert float(aux["flow_pair_share"][0]) == 0.0
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  assert DeAltHDR.from_config(config.model).flow_pair == "off"
  with pytest.raises(ValueError, match="flow_pair must be one of"):
    DeAltHDR.from_config({**dict(config.model), "flow_pair": "always"})
  with pytest.raises(ValueError, match="flow_pair_scale must be a power of two"):
    DeAltHDR.from_config({**dict(config.model), "flow_pair_scale": 3})
  with pytest.raises(ValueError, match="flow_pair_smooth must be an integer >= 0"):
    DeAltHDR.from_config({**dict(config.model), "flow_pair_smooth": -1})
  with pytest.raises(ValueError, match="flow_pair_margin must be > 0"):
    DeAltHDR.from_config({**dict(config.model), "flow_pair_margin": 0.0})


def _bilinear(field, flow):
  """field [h, w, C] sampled at p + flow[p] (bilinear, edges repeated), in numpy."""
  h, w, _ = field.shape
  y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  sx = np.clip(x + flow[..., 0], 0, w - 1)
  sy = np.clip(y + flow[..., 1], 0, h - 1)
  x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
  x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
  ax, ay = (sx - x0)[..., None], (sy - y0)[..., None]
  return ((1 - ay) * ((1 - ax) * field[y0, x0] + ax * field[y0, x1])
          + ay * ((1 - ax) * field[y1, x0] + ax * field[y1, x1]))


def test_clip_edge_windows_chain_the_flow_of_slots_holding_further_frames(tiny, monkeypatch):
  """At a clip's start a three-exposure window reads frames (1, 2, 0, 1, 2)
  (`clips.window_offsets`): slot t-1 holds frame t+2, two frames of motion away. With
  `offsets` its flow may be the reference's flow to frame t+1 (slot t+1) followed by the
  flow network's flow from t+1 to t+2 (t+1 re-exposed to t+2's exposure), composed:
  f(p) = f1(p) + f12(p + f1(p)): always with an unbounded margin, never with a zero one,
  one of the two at the default. Other slots, and windows whose slots hold the frames
  they stand for, are unchanged."""
  model, params = tiny
  r = model.radius
  rng = np.random.default_rng(5)
  params = {**params, "flow": jax.tree_util.tree_map(
      lambda x: x + 0.05 * rng.standard_normal(x.shape).astype(np.float32), params["flow"])}
  clip = rng.uniform(0.1, 0.7, (3, 64, 96, 3)).astype(np.float32)   # Frames t, t+1, t+2.
  clip_stops = np.array([2.0, 4.0, 0.0], np.float32)
  idx = clips_lib.window_indices(8, 0, r, 3 if r == 2 else 2)
  offsets = clips_lib.window_offsets(8, 0, r, 3 if r == 2 else 2)
  assert offsets == tuple(idx)
  frames, stops = clip[None, idx], clip_stops[None, idx]
  plain_hdr, plain = model.apply({"params": params}, frames, stops, ratio=0.0)
  default = model.apply({"params": params}, frames, stops, ratio=0.0, offsets=offsets)[1]
  monkeypatch.setattr(dealthdr_lib, "CHAIN_MARGIN", 0.0)
  never = model.apply({"params": params}, frames, stops, ratio=0.0, offsets=offsets)[0]
  np.testing.assert_array_equal(np.asarray(never), np.asarray(plain_hdr))
  monkeypatch.setattr(dealthdr_lib, "CHAIN_MARGIN", 1e9)
  hdr, aux = model.apply({"params": params}, frames, stops, ratio=0.0, offsets=offsets)
  nbr = lambda frame: frame if frame < r else frame - 1
  if r == 1:
    # Two exposures: the edge mirror (1, 0, 1) holds every frame where it belongs.
    assert dealthdr_lib.chain_plan(offsets, r) == ()
    np.testing.assert_array_equal(np.asarray(hdr), np.asarray(plain_hdr))
    return
  assert dealthdr_lib.chain_plan(offsets, r) == ((1, 3),)
  flow_of = lambda out, slot: np.asarray(out["flow_aligned"][0, nbr(slot)])
  for slot in (0, 3, 4):
    np.testing.assert_array_equal(flow_of(aux, slot), flow_of(plain, slot))
  # By hand: frame t+1 re-exposed to t+2's exposure, the flow network, the fill where
  # frame t+1 is clipped or black (as for the reference's own flow), then composed.
  lin = resp.linearise(jnp.asarray(clip), model.response)
  gain = 2.0 ** (clip_stops[2] - clip_stops[1])
  via = resp.apply_response(jnp.clip(lin[1:2] * gain, 0.0, 1.0), "gamma2.2")
  far = resp.apply_response(jnp.clip(lin[2:3], 0.0, 1.0), "gamma2.2")
  step = dealthdr_lib.flow_network(model).apply({"params": params["flow"]}, via, far)[-1]
  if model.flow_fill:
    reliability = dealthdr_lib.flow_reliability(
        jnp.asarray(clip[1:2]), lin[1:2], jnp.full((1, 1), gain), model.response)
    reliability = dealthdr_lib.block_mean(reliability[..., None],
                                          2 ** model.flow_finest_log2)[..., 0]
    step = warp_lib.fill_flow(step, reliability)
  first = flow_of(plain, 3)
  expected = first + _bilinear(np.asarray(step[0]), first)
  np.testing.assert_allclose(flow_of(aux, 1), expected, atol=1e-4)
  assert np.abs(flow_of(aux, 1) - flow_of(plain, 1)).max() > 1e-2
  assert np.abs(np.asarray(hdr) - np.asarray(plain_hdr)).max() > 0
  # The default margin: the flow its flag names.
  took = bool(np.asarray(default["flow_chained"])[0, 0])
  assert np.asarray(aux["flow_chained"]).all()
  np.testing.assert_allclose(flow_of(default, 1), flow_of(aux if took else plain, 1),
                             atol=1e-5)
  # Inside the clip every slot is where it belongs: no chain, the same program.
  inside = tuple(range(-r, r + 1))
  assert dealthdr_lib.chain_plan(inside, r) == ()
  np.testing.assert_array_equal(
      np.asarray(model.apply({"params": params}, frames, stops, ratio=0.0,
                             offsets=inside)[0]), np.asarray(plain_hdr))
  with pytest.raises(ValueError, match="offsets must be 5 frame distances"):
    dealthdr_lib.chain_plan((1, 2, 3), r)


def test_response_calibration_starts_as_identity_and_bends_the_input(tiny):
  model, params = tiny
  frames, stops = _clip(model, 32, 32)
  calibrated = model.clone(response_calibration=8)
  curve_logits = {"response_calibration": jnp.zeros(8)}
  plain, _ = model.apply({"params": params}, frames, stops, ratio=0.0)
  same, aux = calibrated.apply({"params": {**params, **curve_logits}}, frames, stops,
                               ratio=0.0)
  np.testing.assert_allclose(same, plain, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(aux["response_curve"], np.linspace(0, 1, 9), atol=1e-6)
  # A non-identity curve is the same as feeding the model the curved frames.
  logits = jnp.linspace(-1.0, 1.0, 8)
  bent, _ = calibrated.apply({"params": {**params, "response_calibration": logits}},
                             frames, stops, ratio=0.0)
  curved = resp.apply_curve(jnp.asarray(frames), resp.curve_knots(logits))
  expected, _ = model.apply({"params": params}, curved, stops, ratio=0.0)
  np.testing.assert_allclose(bent, expected, rtol=1e-5, atol=1e-6)
  assert float(jnp.max(jnp.abs(bent - plain))) > 1e-3


def test_parameter_free_switches_do_not_block_init_from():
  from dealthdr_jax.training import checkpoints  # pylint: disable=g-import-not-at-top
  old = {"model": {"radius": 1, "response": "gamma2.2"}}  # Before exposure_prior existed.
  assert checkpoints.model_differences(old, {"model": {"radius": 1, "exposure_prior": False}}) == []
  switched = {"model": {"radius": 1, "exposure_prior": True}}
  assert checkpoints.model_differences(old, switched) == [
      "model.exposure_prior: checkpoint False vs config True"]
  assert checkpoints.model_differences(old, switched,
                                         ignore=checkpoints.PARAMETER_FREE) == []
  assert checkpoints.model_differences(old, {"model": {"radius": 2}},
                                         ignore=checkpoints.PARAMETER_FREE)
  # A switch that adds parameters (stage 2's response calibration) may be turned on too.
  calibrated = {"model": {"radius": 1, "response_calibration": 32}}
  assert checkpoints.model_differences(
      old, calibrated, ignore=checkpoints.PARAMETER_FREE + checkpoints.ADDED_PARAMETERS) == []
  assert checkpoints.model_differences(old, calibrated)


def test_local_correlation_matches_a_direct_sum():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
  b = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
  r = 2
  got = np.asarray(flow_lib.local_correlation(jnp.asarray(a), jnp.asarray(b), r))
  assert got.shape == (2, 5, 6, (2 * r + 1) ** 2)
  for y in range(5):
    for x in range(6):
      for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
          inside = 0 <= y + dy < 5 and 0 <= x + dx < 6
          want = (a[:, y, x] * b[:, y + dy, x + dx]).mean(-1) if inside else np.zeros(2)
          np.testing.assert_allclose(got[:, y, x, (dy + r) * (2 * r + 1) + dx + r], want,
                                     rtol=1e-5, atol=1e-6)


def test_cost_volume_flow_peaks_at_the_true_shift():
  """The cost volume of a shifted random texture peaks at the shift, at every pixel
  away from the border; an untrained network (zero-initialised outputs) predicts no flow."""
  rng = np.random.default_rng(1)
  img = rng.normal(size=(1, 16, 16, 256)).astype(np.float32)
  shifted = np.roll(img, shift=(1, -2), axis=(1, 2))  # shifted[y, x] = img[y-1, x+2]
  cost = np.asarray(flow_lib.local_correlation(jnp.asarray(img), jnp.asarray(shifted), 3))
  best = cost[0, 4:12, 4:12].argmax(-1)
  # img(p) = shifted(p + (dx=-2, dy=+1)).
  assert np.all(best == (1 + 3) * 7 + (-2 + 3))
  net = flow_lib.CostVolumeFlow(levels=2, finest_log2=1, features=(4, 4), channels=(4,),
                                corr_radius=1)
  x = jnp.asarray(rng.random((2, 16, 16, 3)), jnp.float32)
  params = net.init(jax.random.PRNGKey(0), x, x)
  flows = net.apply(params, x, x[::-1])
  assert [f.shape for f in flows] == [(2, 4, 4, 2), (2, 8, 8, 2)]
  assert all(float(jnp.abs(f).max()) == 0.0 for f in flows)
  with pytest.raises(ValueError, match="flow features must give 2"):
    flow_lib.CostVolumeFlow(2, 1, (4,), (4,)).init(jax.random.PRNGKey(0), x, x)


def test_cost_volume_flow_learns_a_translation():
  """A behaviour check of the matching signal: trained briefly on randomly translated
  textures (with the small brightness errors exposure matching leaves), the cost-volume
  network predicts the shifts far better than zero flow. (Before its inputs were
  centred and its features made unit-length, it stayed at zero flow.)"""
  import optax  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  size, n = 32, 8

  def batch():
    base = rng.random((n, size + 16, size + 16, 1)).astype(np.float32)
    base = (base + np.roll(base, 1, 1) + np.roll(base, 1, 2) + np.roll(base, 1, (1, 2))) / 4
    d = rng.integers(-4, 5, size=(n, 2))
    ref = base[:, 8:8 + size, 8:8 + size]
    nbr = np.stack([base[i, 8 + dy:8 + dy + size, 8 + dx:8 + dx + size]
                    for i, (dx, dy) in enumerate(d)])
    # ref(p) = nbr(p - d): the flow ref → nbr is -d everywhere.
    gain = rng.uniform(0.9, 1.1, (n, 1, 1, 1)).astype(np.float32)
    gt = np.broadcast_to(-d[:, None, None, :], (n, size // 2, size // 2, 2)).astype(np.float32)
    return np.repeat(ref, 3, -1), np.repeat(nbr * gain, 3, -1), gt

  net = flow_lib.CostVolumeFlow(levels=2, finest_log2=1, features=(8, 16), channels=(32, 16),
                                corr_radius=2)
  ref, nbr, gt = batch()
  params = net.init(jax.random.PRNGKey(0), ref, nbr)
  tx = optax.adam(2e-3)

  def epe(params, ref, nbr, gt):
    coarse, fine = net.apply(params, ref, nbr)
    err = lambda f, k: jnp.mean(jnp.linalg.norm(f * k - gt[:, ::k // 2, ::k // 2], axis=-1))
    return err(coarse, 4) + err(fine, 2), err(fine, 2)

  @jax.jit
  def step(params, opt, ref, nbr, gt):
    (_, fine), grads = jax.value_and_grad(epe, has_aux=True)(params, ref, nbr, gt)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, fine

  opt = tx.init(params)
  for _ in range(150):
    params, opt, _ = step(params, opt, *batch())
  tests = [batch() for _ in range(4)]
  zero = np.mean([np.linalg.norm(g, axis=-1).mean() for _, _, g in tests])
  learned = np.mean([float(epe(params, *b)[1]) for b in tests])
  print(f"translation EPE: zero flow {zero:.2f} px, learned {learned:.2f} px")
  assert learned < 0.4 * zero, (learned, zero)


def test_fgma_flow_correction_starts_at_none_and_moves_only_selected_flow(tmp_path):
  from dealthdr_jax.training import train  # pylint: disable=g-import-not-at-top
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  model = DeAltHDR.from_config(config.model)
  params = model_files.init_params(model, seed=1)
  # A run with the switch may start from a model without it: the correction starts at 0.
  model_files.save_params(tmp_path / "plain", params, config, card={"steps": 0})
  config.model.fgma_flow_correction = True
  config.init_from = str(tmp_path / "plain")
  corrected = DeAltHDR.from_config(config.model)
  loaded = train._load_init_params(corrected, config)  # pylint: disable=protected-access
  zero = loaded["fgma_flow_correction"]
  assert jax.tree.map(np.shape, zero) == {
      "offset": {"kernel": (5 * model.fgma_heads + model.features[1], 2), "bias": (2,)}}
  np.testing.assert_array_equal(zero["offset"]["kernel"], 0.0)
  np.testing.assert_array_equal(loaded["fgma1"]["query"]["kernel"],
                                params["fgma1"]["query"]["kernel"])

  frames, stops = _clip(model, 32, 48, seed=4)
  run = jax.jit(lambda m, p, ratio: m.apply({"params": p}, frames, stops, ratio=ratio),
                static_argnums=(0, 2))
  plain, aux = run(model, params, 0.25)
  same, aux_same = run(corrected, {**params, "fgma_flow_correction": zero}, 0.25)
  np.testing.assert_allclose(same, plain, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(aux_same["flow_aligned"], aux["flow_aligned"], atol=1e-6)
  # A trained correction moves the flow at FGMA's selected tokens of level 1 (the flow's
  # resolution) and nowhere else; the flow network's pyramid is untouched.
  moving = {"offset": {"kernel": jnp.ones_like(zero["offset"]["kernel"]),
                       "bias": jnp.full((2,), 0.5)}}
  moved, aux_moved = run(corrected, {**params, "fgma_flow_correction": moving}, 0.25)
  delta = np.abs(np.asarray(aux_moved["flow_aligned"]) - np.asarray(aux["flow_aligned"])).sum(-1)
  selected = np.asarray(aux_moved["masks"][model.correction_level])
  assert delta[selected > 0].min() > 1e-4 and delta[selected == 0].max() == 0.0
  assert delta.max() <= 2 * (model.fgma_window // 2 + 1) + 1e-4
  for a, b in zip(aux["flow_pyramid"], aux_moved["flow_pyramid"]):
    np.testing.assert_array_equal(a, b)
  assert float(jnp.max(jnp.abs(moved - plain))) > 1e-4
  # Ratio 0 is pure flow with or without it.
  np.testing.assert_array_equal(
      run(corrected, {**params, "fgma_flow_correction": moving}, 0.0)[0],
      run(corrected, {**params, "fgma_flow_correction": zero}, 0.0)[0])
  # Trained from zero: the aligned flow's error reaches the correction.
  target = jnp.asarray(np.random.default_rng(0).normal(size=aux["flow_aligned"].shape))
  def aligned_error(p):
    flow = corrected.apply({"params": p}, frames, stops, ratio=0.25)[1]["flow_aligned"]
    return jnp.sum((flow - target) ** 2)
  grad_fn = jax.jit(jax.grad(aligned_error))
  grads = grad_fn({**params, "fgma_flow_correction": zero})
  assert float(jnp.abs(grads["fgma_flow_correction"]["offset"]["kernel"]).max()) > 0
  # ... but not the attention, until the correction reads it.
  np.testing.assert_array_equal(grads["fgma1"]["query"]["kernel"], 0.0)
  # Started as the attention's soft argmax ("mean_offset", taken by a run from a model
  # without it), the same error teaches the attention's queries and keys where to look.
  config.model.fgma_correction_init = "mean_offset"
  soft = train._load_init_params(DeAltHDR.from_config(config.model), config)  # pylint: disable=protected-access
  np.testing.assert_array_equal(
      soft["fgma_flow_correction"]["offset"]["kernel"],
      fgma_lib.mean_offset_init(model.fgma_heads)(None, zero["offset"]["kernel"].shape))
  grads = grad_fn({**params, "fgma_flow_correction": soft["fgma_flow_correction"]})
  for part in ("query", "key"):
    assert float(jnp.abs(grads["fgma1"][part]["kernel"]).max()) > 0, part
  with pytest.raises(ValueError, match="fgma_correction_init must be one of"):
    DeAltHDR.from_config({**dict(config.model), "fgma_correction_init": "identity"})
  with pytest.raises(ValueError, match="fgma_flow_correction needs FGMA"):
    DeAltHDR.from_config({**dict(config.model), "fgma_levels": (2,)})


def test_a_run_from_a_whole_model_keeps_its_switches(tmp_path):
  """A config that leaves off the switches of the model it continues (e.g. the stage-2
  preset from the shipped 2exp model, which has FGMA's flow correction and the fill) keeps
  them, with their settings; a run taking only some parts does not."""
  from dealthdr_jax.training import checkpoints  # pylint: disable=g-import-not-at-top
  from dealthdr_jax.training import train  # pylint: disable=g-import-not-at-top
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  config.model.fgma_flow_correction = True
  config.model.fgma_correction_init = "mean_offset"
  config.model.flow_fill = True
  model = DeAltHDR.from_config(config.model)
  params = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, 3, 32, 32, 3)), jnp.zeros((1, 3)), ratio=1.0)["params"])
  params = jax.tree.map(lambda s: np.full(s.shape, 0.5, s.dtype), params)
  model_files.save_params(tmp_path / "corrected", params, config, card={"steps": 1})

  plain = config_loading.load_config("dealthdr_2exp_stage2:size=tiny")
  plain.init_from = str(tmp_path / "corrected")
  assert not plain.model.fgma_flow_correction and plain.model.response_calibration > 0
  adopted = checkpoints.adopt_switches(plain)
  assert adopted == ["model.fgma_flow_correction=True",
                     "model.fgma_correction_init='mean_offset'", "model.flow_fill=True"]
  assert plain.model.fgma_flow_correction and plain.model.flow_fill
  loaded = train._load_init_params(DeAltHDR.from_config(plain.model), plain)  # pylint: disable=protected-access
  np.testing.assert_array_equal(loaded["fgma_flow_correction"]["offset"]["kernel"], 0.5)
  assert "response_calibration" in loaded  # The stage-2 curve: added, at its initialiser.
  assert checkpoints.adopt_switches(plain) == []  # Already on: nothing to adopt.
  # Only some parts taken: the config's model is the one that trains.
  parts = config_loading.load_config("dealthdr_2exp_stage2:size=tiny")
  parts.init_from = str(tmp_path / "corrected")
  parts.init_parts = ("flow",)
  assert checkpoints.adopt_switches(parts) == [] and not parts.model.fgma_flow_correction


def test_blend_filter_starts_as_the_identity_and_filters_the_blend(tmp_path):
  """`model.recon_kernel`: a per-pixel filter on the reconstruction's blend, taps summing
  to one. A run from a model without it starts exactly where that model was; the filter
  equals a direct sum over shifted copies; a run continuing a model with it keeps it."""
  from dealthdr_jax.models import recon  # pylint: disable=g-import-not-at-top
  from dealthdr_jax.training import checkpoints  # pylint: disable=g-import-not-at-top
  from dealthdr_jax.training import train  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(5)
  x = rng.uniform(0, 2, (2, 7, 9, 3)).astype(np.float32)
  taps = rng.uniform(-recon.MAX_TAP, recon.MAX_TAP, (2, 7, 9, 8)).astype(np.float32)
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
  expected = x * (1 - taps.sum(-1, keepdims=True))
  for j, (dy, dx) in enumerate(recon.tap_offsets(3)):
    expected += taps[..., j:j + 1] * padded[:, 1 + dy:8 + dy, 1 + dx:10 + dx]
  np.testing.assert_allclose(recon.filter_with_taps(x, taps, 3), expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(recon.filter_with_taps(x, 0 * taps, 3), x)
  np.testing.assert_allclose(recon.filter_with_taps(np.ones_like(x), taps, 3), 1.0, atol=1e-6)

  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  model = DeAltHDR.from_config(config.model)
  params = model_files.init_params(model, seed=1)
  model_files.save_params(tmp_path / "plain", params, config, card={"steps": 0})
  config.model.recon_kernel = 3
  config.init_from = str(tmp_path / "plain")
  filtered = DeAltHDR.from_config(config.model)
  loaded = train._load_init_params(filtered, config)  # pylint: disable=protected-access
  assert jax.tree.map(np.shape, loaded["recon"]["head_kernel"]) == {
      "kernel": (3, 3, model.head_features, 8), "bias": (8,)}
  np.testing.assert_array_equal(loaded["recon"]["head_kernel"]["kernel"], 0.0)
  np.testing.assert_array_equal(loaded["recon"]["head_kernel"]["bias"], 0.0)
  frames, stops = _clip(model, 32, 48, seed=2)
  run = jax.jit(lambda m, p: m.apply({"params": p}, frames, stops, ratio=0.25)[0],
                static_argnums=0)
  plain = np.asarray(run(model, params))
  np.testing.assert_array_equal(run(filtered, loaded), plain)
  # The untrained head blends with fixed weights and no gain, so its output is the blend:
  # taps of a 3×3 box give the box-filtered output.
  box = jax.tree.map(np.copy, loaded)
  box["recon"]["head_kernel"]["bias"][:] = np.arctanh(1 / 9 / recon.MAX_TAP)
  padded = np.pad(plain, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
  expected = sum(padded[:, dy:dy + 32, dx:dx + 48] for dy in range(3) for dx in range(3)) / 9
  np.testing.assert_allclose(run(filtered, box), expected, rtol=1e-4, atol=1e-6)

  model_files.save_params(tmp_path / "filtered", box, config, card={"steps": 1})
  again = config_loading.load_config("dealthdr_2exp:size=tiny")
  again.init_from = str(tmp_path / "filtered")
  assert checkpoints.adopt_switches(again) == ["model.recon_kernel=3"]
  reloaded = train._load_init_params(DeAltHDR.from_config(again.model), again)  # pylint: disable=protected-access
  np.testing.assert_array_equal(reloaded["recon"]["head_kernel"]["bias"],
                                box["recon"]["head_kernel"]["bias"])
  for size in (1, 4):
    with pytest.raises(ValueError, match="recon_kernel must be 0"):
      DeAltHDR.from_config({**dict(config.model), "recon_kernel": size})


def test_blend_filter_range_keeps_a_light_out_of_the_pixels_beside_it():
  """`model.recon_kernel_range` c: each neighbour's difference from the centre enters the
  filter clamped to ±c · (the centre's brightest channel + RANGE_FLOOR). A light 1000x
  brighter beside a pixel moves it by at most Σ taps · c · that (unclamped: by ~40x); a flat
  noisy patch, and dark pixels with colour noise in one channel, filter as without it."""
  from dealthdr_jax.models import recon  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(8)
  x = rng.uniform(0.5, 1.0, (1, 5, 5, 3)).astype(np.float32)
  x[0, 2, 3] = 1000.0  # A light right of the centre pixel (2, 2).
  taps = np.full((1, 5, 5, 8), 0.05, np.float32)
  plain = np.asarray(recon.filter_with_taps(x, taps, 3))
  clamped = np.asarray(recon.filter_with_taps(x, taps, 3, value_range=0.5))
  assert np.all(plain[0, 2, 2] > 40 * x[0, 2, 2])
  bound = 8 * 0.05 * 0.5 * (x[0, 2, 2].max() + recon.RANGE_FLOOR)
  assert np.all(np.abs(clamped[0, 2, 2] - x[0, 2, 2]) <= bound + 1e-6)
  flat = rng.uniform(0.9, 1.1, (1, 5, 5, 3)).astype(np.float32)
  dark = rng.uniform(0.0, 0.001, (1, 5, 5, 3)).astype(np.float32)
  dark[..., 0] += rng.uniform(0.0, 0.003, (1, 5, 5))  # Colour noise in one channel.
  for patch in (flat, dark):
    np.testing.assert_allclose(recon.filter_with_taps(patch, taps, 3, value_range=0.5),
                               recon.filter_with_taps(patch, taps, 3), rtol=1e-6)
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  assert DeAltHDR.from_config(config.model).recon_kernel_range == 0.0
  with pytest.raises(ValueError, match="recon_kernel_range must be >= 0"):
    DeAltHDR.from_config({**dict(config.model), "recon_kernel_range": -1.0})


def test_gain_bound_raises_clipped_highlights_and_travels_with_the_model(tmp_path):
  """`model.max_log_gain`: the reconstruction's output is blend · exp(m · tanh(x / m)). With
  the old bound (2) the output is the formula models up to v7 used; a larger bound lets
  the same head output raise a clipped pixel further; a run continuing a model with a
  changed bound keeps it, and the bound never blocks `init_from` (no parameters)."""
  from dealthdr_jax.training import checkpoints  # pylint: disable=g-import-not-at-top
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  model = DeAltHDR.from_config(config.model)
  assert model.max_log_gain == 2.0
  params = model_files.init_params(model, seed=3)
  # Every pixel's log-gain output x = 3 (the head's last conv: zero kernel, bias 3).
  params = jax.tree.map(np.copy, params)
  head = params["recon"]["head_out"]
  head["kernel"][:] = 0.0
  head["bias"][:] = 0.0
  head["bias"][-3:] = 3.0
  frames = np.ones((1, 3, 32, 48, 3), np.float32)  # Clipped in every exposure.
  stops = np.array([[0.0, 3.0, 0.0]], np.float32)
  run = jax.jit(lambda m, p: m.apply({"params": p}, frames, stops, ratio=0.0)[0],
                static_argnums=0)
  wide = DeAltHDR.from_config({**dict(config.model), "max_log_gain": 6.0})
  narrow_out, wide_out = np.asarray(run(model, params)), np.asarray(run(wide, params))
  blend = narrow_out / np.exp(2.0 * np.tanh(3.0 / 2.0))
  np.testing.assert_allclose(wide_out / blend, np.exp(6.0 * np.tanh(3.0 / 6.0)), rtol=1e-4)
  assert float(np.min(wide_out / narrow_out)) > 2.0  # e^2.77 vs e^1.81.
  with pytest.raises(ValueError, match="max_log_gain must be > 0"):
    DeAltHDR.from_config({**dict(config.model), "max_log_gain": 0.0})

  wide_config = config_loading.load_config("dealthdr_2exp:size=tiny")
  wide_config.model.max_log_gain = 6.0
  model_files.save_params(tmp_path / "wide", params, wide_config, card={"steps": 1})
  assert checkpoints.model_differences(
      {"model": dict(config.model)}, {"model": dict(wide_config.model)},
      ignore=checkpoints.PARAMETER_FREE) == []
  again = config_loading.load_config("dealthdr_2exp:size=tiny")
  again.init_from = str(tmp_path / "wide")
  assert checkpoints.adopt_switches(again) == ["model.max_log_gain=6.0"]
  assert again.model.max_log_gain == 6.0
  chosen = config_loading.load_config("dealthdr_2exp:size=tiny")
  chosen.init_from = str(tmp_path / "wide")
  chosen.model.max_log_gain = 4.0  # Set by the run: kept.
  assert checkpoints.adopt_switches(chosen) == [] and chosen.model.max_log_gain == 4.0
