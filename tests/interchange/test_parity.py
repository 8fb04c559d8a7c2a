"""Imported models compute what transformers computes (torch, CPU, float32), and the
conversion round trip is exact."""
import dataclasses
import os

import jax
import numpy as np
import pytest

from annotanchor.decoding.model_sampler import DecoderSampler
from annotanchor.decoding.sampler import SamplingConfig
from annotanchor.interchange import export_hf, import_hf, safetensors_io
from annotanchor.model.transformer import Decoder
from annotanchor.training import partitioning
from tests.interchange.conftest import VOCAB, restore

transformers = pytest.importorskip("transformers")
pytest.importorskip("torch")

TOLERANCE = 1e-4
GREEDY_TOKENS = 32


def test_the_family_options_are_the_ones_imported(imported):
  config = imported.config
  expected = {"llama": dict(rope_type="llama3", qk_norm=False, norm_placement="pre"),
              "qwen3": dict(qk_norm=True, qk_norm_scope="head", tie_embeddings=True,
                            head_dim=24, norm_eps=1e-5),
              "olmo2": dict(qk_norm=True, qk_norm_scope="projection",
                            norm_placement="post")}[imported.family]
  assert {k: getattr(config, k) for k in expected} == expected
  n = sum(p.numel() for p in imported.hf_model.parameters())
  assert config.num_params() == n


def test_logits_match_transformers_unpacked(imported):
  tokens = np.random.RandomState(1).randint(0, VOCAB, (3, 40))
  ours = np.asarray(Decoder(imported.config).apply({"params": imported.params}, tokens))
  diff = np.abs(ours - imported.hf_logits(tokens)).max()
  assert diff <= TOLERANCE, diff


def test_logits_match_transformers_packed(imported):
  """Three segments and padding in one row, against transformers on each segment alone.

    tokens       [a0 .. a6  b0 .. b8  c0 .. c3  pad pad pad pad]
    segment_ids  [1  .. 1   2  .. 2   3  .. 3   0   0   0   0  ]
    positions    [0  .. 6   0  .. 8   0  .. 3   0   0   0   0  ]
  """
  rng = np.random.RandomState(2)
  lengths = (7, 9, 4)
  segments = [rng.randint(0, VOCAB, n) for n in lengths]
  pad = 4
  tokens = np.concatenate(segments + [np.zeros(pad, int)])[None]
  segment_ids = np.concatenate([np.full(n, i + 1) for i, n in enumerate(lengths)] +
                               [np.zeros(pad, int)])[None]
  positions = np.concatenate([np.arange(n) for n in lengths] + [np.zeros(pad, int)])[None]
  ours = np.asarray(Decoder(imported.config).apply(
      {"params": imported.params}, tokens, positions=positions, segment_ids=segment_ids))[0]
  start = 0
  for segment in segments:
    reference = imported.hf_logits(segment[None])[0]
    diff = np.abs(ours[start:start + len(segment)] - reference).max()
    assert diff <= TOLERANCE, (start, diff)
    start += len(segment)


def test_greedy_continuation_matches_transformers(imported):
  sampler = DecoderSampler(imported.config, partitioning.make_mesh({"data": -1}))
  rows = sampler.batch_degree  # One prompt per data shard.
  prompts = np.random.RandomState(3).randint(0, VOCAB, (rows, 6))
  # eos_id outside the vocabulary: all 32 tokens are drawn.
  out = sampler(imported.params, prompts, np.full(rows, 6), jax.random.PRNGKey(0),
                SamplingConfig(max_new_tokens=GREEDY_TOKENS, temperature=0.0, eos_id=-1))
  ours = np.asarray(out.tokens)[:, 0]
  sequence = prompts
  for _ in range(GREEDY_TOKENS):  # transformers' greedy decoding, one full forward a token.
    sequence = np.concatenate([sequence, imported.hf_logits(sequence)[:, -1].argmax(-1)[:, None]],
                              axis=1)
  np.testing.assert_array_equal(ours, sequence[:, prompts.shape[1]:])


def test_import_export_import_is_bit_exact_and_loads_in_transformers(imported, tmp_path):
  mesh = partitioning.make_mesh({"data": -1})
  exported = str(tmp_path / "exported")
  export_hf.export_checkpoint(imported.model_dir, exported, mesh=mesh, log=lambda line: None)
  assert {"config.json", "model.safetensors", "generation_config.json"} <= set(os.listdir(exported))
  # The exported tensors are the original ones, bit for bit (all float32 here).
  original = safetensors_io.read_index(imported.hf_dir)
  written = safetensors_io.read_index(exported)
  assert set(written) == set(original)
  for name, entry in original.items():
    np.testing.assert_array_equal(safetensors_io.read_tensor(written[name]),
                                  safetensors_io.read_tensor(entry), err_msg=name)
  again = import_hf.import_checkpoint(exported, str(tmp_path / "again"), mesh=mesh,
                                      log=lambda line: None)
  assert again == imported.config
  params = restore(str(tmp_path / "again"), again)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(params),
               jax.device_get(imported.params))
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(
      exported, attn_implementation="eager").eval()
  assert type(reloaded) is type(imported.hf_model)
  tokens = np.random.RandomState(4).randint(0, VOCAB, (2, 24))
  np.testing.assert_array_equal(imported.hf_logits(tokens, reloaded), imported.hf_logits(tokens))


def test_import_places_each_tensor_on_its_sharding(imported, tmp_path):
  """Onto a data x fsdp x model mesh: every array arrives with the sharding training uses
  (embed over fsdp, heads/mlp/vocab over model), holding the same values."""
  mesh = partitioning.make_mesh({"data": 2, "fsdp": 2, "model": 2})
  steps = import_hf.plan(imported.hf_dir, imported.config, imported.family)
  abstract = import_hf.abstract_params(imported.config, mesh)
  params = import_hf.load_params(steps, abstract, scan_layers=False, log=lambda line: None)
  query = params["layer_0"]["attention"]["query"]["kernel"]
  assert query.sharding.spec == jax.sharding.PartitionSpec("fsdp", "model", None)
  jax.tree.map(lambda a, s: assert_same_sharding(a, s.sharding), params, abstract)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(params),
               jax.device_get(imported.params))


def test_scanned_import_stacks_the_blocks(imported):
  scanned = dataclasses.replace(imported.config, scan_layers=True)
  mesh = partitioning.make_mesh({"data": -1})
  abstract = import_hf.abstract_params(scanned, mesh)
  params = import_hf.load_params(import_hf.plan(imported.hf_dir, scanned, imported.family),
                                 abstract, scan_layers=True, log=lambda line: None)
  stacked, unscanned = jax.device_get(params), jax.device_get(imported.params)
  for i in range(scanned.num_layers):  # Block i of every stacked leaf is layer_i's, exactly.
    jax.tree.map(lambda s, u: np.testing.assert_array_equal(s[i], u), stacked["layers"],
                 unscanned[f"layer_{i}"])
  tokens = np.random.RandomState(5).randint(0, VOCAB, (2, 16))
  ours = np.asarray(Decoder(scanned).apply({"params": params}, tokens))
  diff = np.abs(ours - imported.hf_logits(tokens)).max()
  assert diff <= TOLERANCE, diff


def assert_same_sharding(array, sharding):
  assert array.sharding.is_equivalent_to(sharding, array.ndim), (array.sharding, sharding)


def test_model_gin_binds_the_imported_config(imported):
  """MODEL_DIR/model.gin is what `train --gin_file=` needs to fine-tune from the import."""
  import gin

  from annotanchor.training import metadata
  from annotanchor.training.run_config import TrainConfig

  gin.clear_config()
  try:
    gin.parse_config_file(os.path.join(imported.model_dir, "model.gin"))
    assert gin.get_bindings(TrainConfig)["model"] == imported.config
  finally:
    gin.clear_config()
  saved, _ = metadata.read_metadata(imported.model_dir)
  assert saved.model == imported.config
