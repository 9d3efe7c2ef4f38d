"""FGMA: sparse gather/scatter path vs the dense masked reference, and compute vs ratio."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dealthdr_jax.models import fgma as fgma_lib
from dealthdr_jax.models import warp as warp_lib


def _inputs(h, w, c=8, n=2, seed=0):
  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
  ref, nbr = f(n, h, w, c), f(n, h, w, c)
  flow = f(n, h, w, 2) * 3.0
  score = jnp.asarray(rng.permutation(n * h * w).reshape(n, h, w), jnp.float32)  # no ties
  return ref, nbr, flow, score


def _run(params, inputs, ratio, dense, heads=2, window=3):
  return fgma_lib.FGMA(heads, window, dense=dense).apply({"params": params}, *inputs, ratio)


@pytest.fixture(scope="module")
def params():
  ref, nbr, flow, score = _inputs(7, 9)
  variables = fgma_lib.FGMA(2, 3).init(jax.random.key(0), ref, nbr, flow, score, 1.0)
  # Non-zero relative position bias so that the window order matters.
  p = jax.tree.map(lambda x: x, variables["params"])
  p["rel_pos_bias"] = jnp.asarray(np.random.default_rng(3).normal(size=(2, 9)), jnp.float32)
  return p


@pytest.mark.parametrize("h,w", [(7, 9), (5, 13)])
@pytest.mark.parametrize("ratio", [0.1, 0.37, 1.0])
def test_sparse_equals_dense_reference(params, h, w, ratio):
  inputs = _inputs(h, w, seed=h * w)
  sparse, mask_s = _run(params, inputs, ratio, dense=False)
  dense, mask_d = _run(params, inputs, ratio, dense=True)
  np.testing.assert_array_equal(mask_s, mask_d)
  k = fgma_lib.num_selected(ratio, h * w)
  assert mask_s.sum() == 2 * k
  # Selected tokens: attention results agree; elsewhere: exactly the flow-warped features.
  warped = warp_lib.warp(inputs[1], inputs[2])
  sel = np.asarray(mask_s[..., 0]) > 0
  np.testing.assert_allclose(np.asarray(sparse)[sel], np.asarray(dense)[sel], atol=1e-5)
  np.testing.assert_array_equal(np.asarray(sparse)[~sel], np.asarray(warped)[~sel])
  if ratio < 1:
    assert not np.allclose(np.asarray(sparse)[sel], np.asarray(warped)[sel])


def test_selection_takes_the_most_unreliable_tokens(params):
  ref, nbr, flow, _ = _inputs(6, 6, n=1)
  score = jnp.zeros((1, 6, 6)).at[0, 2, 3].set(5.0).at[0, 5, 0].set(4.0)
  _, mask = _run(params, (ref, nbr, flow, score), 2 / 36, dense=False)
  assert set(zip(*np.nonzero(np.asarray(mask[0, ..., 0])))) == {(2, 3), (5, 0)}


def test_ratio_zero_is_pure_flow(params):
  inputs = _inputs(6, 8)
  out, mask = _run(params, inputs, 0.0, dense=False)
  np.testing.assert_array_equal(out, warp_lib.warp(inputs[1], inputs[2]))
  assert float(mask.sum()) == 0.0


def test_window_follows_the_flow():
  """A query attends to the neighbour window centred at p + flow: with a one-hot key and
  a strong query·key match there, the output copies that token's value."""
  h, w, c = 8, 8, 4
  nbr = jnp.zeros((1, h, w, c)).at[0, 5, 6].set(jnp.array([10.0, 0, 0, 0]))
  ref = jnp.zeros((1, h, w, c)).at[0, 2, 1].set(jnp.array([10.0, 0, 0, 0]))
  flow = jnp.broadcast_to(jnp.array([5.0, 3.0]), (1, h, w, 2))  # (2,1) + (5,3) = (5,6)
  score = jnp.zeros((1, h, w)).at[0, 2, 1].set(1.0)
  module = fgma_lib.FGMA(heads=1, window=3)
  eye = {"kernel": jnp.eye(c).reshape(c, 1, c), "bias": jnp.zeros((1, c))}
  p = {"query": eye, "key": eye, "value": eye,
       "out": {"kernel": jnp.eye(c).reshape(1, c, c), "bias": jnp.zeros((c,))},
       "rel_pos_bias": jnp.zeros((1, 9))}
  out, _ = module.apply({"params": p}, ref, nbr, flow, score, 1 / 64)
  np.testing.assert_allclose(out[0, 2, 1], [10.0, 0, 0, 0], atol=1e-3)


def test_num_selected():
  assert fgma_lib.num_selected(0.0, 100) == 0
  assert fgma_lib.num_selected(0.001, 100) == 1
  assert fgma_lib.num_selected(0.25, 100) == 25
  assert fgma_lib.num_selected(1.0, 100) == 100
  with pytest.raises(ValueError, match="ratio"):
    fgma_lib.num_selected(1.5, 100)
  with pytest.raises(ValueError, match="odd"):
    fgma_lib.window_offsets(4)


def test_compiled_flops_scale_with_ratio(params):
  """XLA's cost analysis of the compiled FGMA: attention work follows k = ratio·N."""
  inputs = _inputs(32, 32, c=8)
  flops = {}
  for ratio in (0.0, 0.25, 0.5, 1.0):
    fn = jax.jit(lambda p, *x, ratio=ratio: _run(p, x, ratio, dense=False)[0])
    cost = fn.lower(params, *inputs).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops[ratio] = cost["flops"]
  attn = {r: flops[r] - flops[0.0] for r in flops}
  assert attn[1.0] > 0
  assert attn[0.25] <= 0.30 * attn[1.0], flops
  assert attn[0.25] < attn[0.5] < attn[1.0], flops


def test_tokens_agree_between_paths_and_say_where_attention_looked(params):
  inputs = _inputs(7, 9, seed=11)
  *_, tok_s = fgma_lib.FGMA(2, 3).apply({"params": params}, *inputs, 0.3, with_tokens=True)
  *_, tok_d = fgma_lib.FGMA(2, 3, dense=True).apply({"params": params}, *inputs, 0.3,
                                                     with_tokens=True)
  np.testing.assert_array_equal(tok_s["selected"], tok_d["selected"])
  assert tok_s["descriptor"].shape == (2, fgma_lib.num_selected(0.3, 63), 5 * 2 + 8)
  np.testing.assert_allclose(tok_s["descriptor"], tok_d["descriptor"], atol=1e-5)
  np.testing.assert_allclose(tok_s["weights"], tok_d["weights"], atol=1e-6)
  np.testing.assert_array_equal(tok_s["centres"], tok_d["centres"])
  # The centres are the flow-displaced positions, rounded and clamped into the image.
  ref, nbr, flow, score = inputs
  sel = np.asarray(tok_s["selected"])
  f = np.asarray(flow).reshape(2, 63, 2)[np.arange(2)[:, None], sel]
  expect = np.stack([np.clip(np.round(sel % 9 + f[..., 0]), 0, 8),
                     np.clip(np.round(sel // 9 + f[..., 1]), 0, 6)], -1)
  np.testing.assert_array_equal(tok_s["centres"], expect)
  assert fgma_lib.FGMA(2, 3).apply({"params": params}, *inputs, 0.0, with_tokens=True)[2] is None
  # A uniform attention looks nowhere in particular: zero offset.
  uniform = jnp.full((4, 2, 9), 1 / 9)
  np.testing.assert_allclose(fgma_lib.expected_offsets(uniform, 3), 0.0, atol=1e-7)


def test_expected_offset_points_from_the_flow_to_the_match():
  """The flow lands one pixel left of the only matching key: the query's attention, and
  its expected offset (x, y), point there."""
  h, w, c = 8, 8, 4
  nbr = jnp.zeros((1, h, w, c)).at[0, 5, 6].set(jnp.array([10.0, 0, 0, 0]))
  ref = jnp.zeros((1, h, w, c)).at[0, 2, 1].set(jnp.array([10.0, 0, 0, 0]))
  flow = jnp.broadcast_to(jnp.array([4.0, 3.0]), (1, h, w, 2))  # (2,1) + (4,3) = (5,5)
  score = jnp.zeros((1, h, w)).at[0, 2, 1].set(1.0)
  eye = {"kernel": jnp.eye(c).reshape(c, 1, c), "bias": jnp.zeros((1, c))}
  p = {"query": eye, "key": eye, "value": eye,
       "out": {"kernel": jnp.eye(c).reshape(1, c, c), "bias": jnp.zeros((c,))},
       "rel_pos_bias": jnp.zeros((1, 9))}
  _, _, tokens = fgma_lib.FGMA(heads=1, window=3).apply(
      {"params": p}, ref, nbr, flow, score, 1 / 64, with_tokens=True)
  assert int(tokens["selected"][0, 0]) == 2 * w + 1
  descriptor = np.asarray(tokens["descriptor"][0, 0])
  np.testing.assert_allclose(descriptor[:2], [1.0, 0.0], atol=1e-3)   # offsets (x, y)
  np.testing.assert_allclose(descriptor[4], 1.0, atol=1e-3)           # peak weight
  # FlowCorrection: zero until trained; bounded by its max offset.
  corr = fgma_lib.FlowCorrection(max_offset=2.0)
  variables = corr.init(jax.random.key(0), tokens["descriptor"])
  np.testing.assert_array_equal(corr.apply(variables, tokens["descriptor"]), 0.0)
  kernel = np.zeros((descriptor.size, 2), np.float32)
  kernel[0, 0] = kernel[1, 1] = 100.0
  big = corr.apply({"params": {"offset": {"kernel": kernel, "bias": np.zeros(2, np.float32)}}},
                   tokens["descriptor"])
  np.testing.assert_allclose(big[0, 0], [2.0, 0.0], atol=1e-3)
  # "mean_offset": the soft argmax from the start, the heads averaged (here one head looks
  # one pixel right, the other is uniform: mean (0.5, 0)), soft-clipped.
  two_heads = np.concatenate([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1 / 9],
                              np.ones(c)]).astype(np.float32)[None, None]
  soft = fgma_lib.FlowCorrection(max_offset=2.0, heads=2, start="mean_offset")
  moved = soft.apply(soft.init(jax.random.key(0), two_heads), two_heads)
  np.testing.assert_allclose(moved[0, 0], [2.0 * np.tanh(0.25), 0.0], atol=1e-6)
  with pytest.raises(ValueError, match="start must be one of"):
    fgma_lib.FlowCorrection(max_offset=2.0, start="identity").init(jax.random.key(0), two_heads)
