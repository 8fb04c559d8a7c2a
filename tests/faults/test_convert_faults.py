"""`annotanchor convert` on bad input, as a process: one line naming it, exit 2, and
nothing written into MODEL_DIR (or HF_DIR)."""
import json
import os

import numpy as np
import pytest

from annotanchor.interchange import families, names, safetensors_io
from annotanchor.model.config import TransformerConfig
from tests.faults.conftest import assert_one_line_error, run

TINY = TransformerConfig(vocab_size=32, d_model=16, num_layers=1, num_heads=2, num_kv_heads=1,
                         head_dim=8, mlp_dim=32, max_len=64)


def write_hf(directory, config=TINY, *, drop=None, reshape=None, hf_changes=None):
  """A Llama directory of random tensors (numpy only), optionally with a fault."""
  os.makedirs(directory)
  hf = families.config_to_hf(config, dtype="float32", where="test")
  hf.update(hf_changes or {})
  with open(os.path.join(directory, "config.json"), "w") as f:
    json.dump(hf, f)
  rng = np.random.RandomState(0)
  tensors = {m.hf_name: rng.normal(size=m.hf_shape).astype(np.float32)
             for m in names.tensor_map(config, "llama") if m.hf_name != drop}
  if reshape:
    tensors[reshape] = tensors[reshape][:-1]
  safetensors_io.write_file(os.path.join(directory, safetensors_io.SINGLE_FILE),
                            [(k, v.shape, v.dtype) for k, v in tensors.items()],
                            iter(tensors.items()))
  return str(directory)


def import_hf(hf_dir, model_dir):
  return run(["convert", "import-hf", f"--gin.HF_DIR='{hf_dir}'",
              f"--gin.MODEL_DIR='{model_dir}'"])


def assert_nothing_written(model_dir):
  assert not os.path.exists(model_dir) or os.listdir(model_dir) == [], os.listdir(model_dir)


@pytest.mark.parametrize("changes, needles", [
    ({"model_type": "mistral", "architectures": ["MistralForCausalLM"]},
     ("unsupported architecture", "mistral", "MistralForCausalLM")),
    ({"attention_bias": True}, ("attention_bias=True", "cannot be expressed exactly")),
    ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}},
     ("rope_type 'yarn'",)),
])
def test_a_config_we_cannot_express_is_refused(tmp_path, changes, needles):
  hf_dir = write_hf(tmp_path / "hf", hf_changes=changes)
  result = import_hf(hf_dir, tmp_path / "model")
  assert_one_line_error(result, "convert", "config.json", *needles)
  assert_nothing_written(tmp_path / "model")


def test_a_missing_tensor_is_named(tmp_path):
  hf_dir = write_hf(tmp_path / "hf", drop="model.layers.0.mlp.up_proj.weight")
  result = import_hf(hf_dir, tmp_path / "model")
  assert_one_line_error(result, "convert", "model.layers.0.mlp.up_proj.weight", "no tensor")
  assert_nothing_written(tmp_path / "model")


def test_a_tensor_of_the_wrong_shape_is_named(tmp_path):
  hf_dir = write_hf(tmp_path / "hf", reshape="model.layers.0.self_attn.k_proj.weight")
  (tmp_path / "model").mkdir()  # An existing, empty MODEL_DIR stays empty.
  result = import_hf(hf_dir, tmp_path / "model")
  assert_one_line_error(result, "convert", "model.layers.0.self_attn.k_proj.weight",
                        "(7, 16)", "(8, 16)")
  assert_nothing_written(tmp_path / "model")


@pytest.mark.slow
def test_import_then_export_through_the_command(tmp_path):
  hf_dir = write_hf(tmp_path / "hf")
  result = import_hf(hf_dir, tmp_path / "model")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "model.layers.0.self_attn.q_proj.weight" in result.stdout  # Progress per tensor.
  assert {"checkpoints", "model.gin", "hf_tokenizer", "hf_source"} <= set(
      os.listdir(tmp_path / "model"))
  again = import_hf(hf_dir, tmp_path / "model")  # The destination is in use now.
  assert_one_line_error(again, "convert", "already holds checkpoints")
  out = tmp_path / "out"
  result = run(["convert", "export-hf", f"--gin.CHECKPOINT_PATH='{tmp_path / 'model'}'",
                f"--gin.HF_DIR='{out}'"])
  assert result.returncode == 0, result.stderr[-3000:]
  original, exported = safetensors_io.read_index(hf_dir), safetensors_io.read_index(str(out))
  assert set(original) == set(exported)
  for name in original:
    np.testing.assert_array_equal(safetensors_io.read_tensor(exported[name]),
                                  safetensors_io.read_tensor(original[name]))


def test_convert_without_a_direction_is_one_line():
  assert_one_line_error(run(["convert", "--gin.HF_DIR='x'"]), "convert", "import-hf or export-hf")


def test_a_tokenizer_larger_than_the_embedding_is_refused(tmp_path):
  from tests import hf_tokenizer

  hf_dir = write_hf(tmp_path / "hf")
  hf_tokenizer.build(hf_dir)  # ~400 ids; the embedding has 32 rows.
  result = import_hf(hf_dir, tmp_path / "model")
  assert_one_line_error(result, "convert", "tokenizer.json", "ids", "only 32 rows")
  assert_nothing_written(tmp_path / "model")
