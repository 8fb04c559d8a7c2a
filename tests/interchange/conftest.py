"""Tiny random Hugging Face models of each family, built locally with transformers (no
download), saved with save_pretrained and imported into a MODEL_DIR."""
import dataclasses

import numpy as np
import pytest


VOCAB = 96
_COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
               initializer_range=0.1)  # Logits of a few units: no near-ties in greedy decoding.
# Llama with Llama 3.1's RoPE scaling (original length 16, so the tested positions cross
# every band of the scaling); Qwen3 with tied embeddings and head_dim != d_model / heads;
# OLMo-2 with its post-output norms and projection-wide QK-norm.
FAMILIES = {
    "llama": lambda transformers: transformers.LlamaConfig(**_COMMON, rope_parameters={
        "rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
    "qwen3": lambda transformers: transformers.Qwen3Config(**_COMMON, head_dim=24, tie_word_embeddings=True,
                                              rms_norm_eps=1e-5),
    "olmo2": lambda transformers: transformers.Olmo2Config(**_COMMON),
}


@dataclasses.dataclass
class Imported:
  family: str
  hf_model: object  # transformers' model, eval mode, float32, eager attention
  hf_dir: str
  model_dir: str
  config: object  # our TransformerConfig
  params: object  # restored from MODEL_DIR

  def hf_logits(self, tokens: np.ndarray, model=None) -> np.ndarray:
    import torch
    with torch.no_grad():
      return (model or self.hf_model)(torch.tensor(tokens)).logits.numpy()


def build_hf(family: str, directory: str, seed: int = 0):
  """transformers' random `family` model (torch, float32, eager attention), saved."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  torch.manual_seed(seed)
  model = transformers.AutoModelForCausalLM.from_config(
      FAMILIES[family](transformers), attn_implementation="eager").eval()
  model.save_pretrained(directory)
  return model


def restore(model_dir: str, config):
  from annotanchor.interchange.import_hf import abstract_params
  from annotanchor.training import checkpoints, partitioning
  mesh = partitioning.make_mesh({"data": -1})
  return checkpoints.restore_params(model_dir, abstract_params(config, mesh))


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def imported(request, tmp_path_factory):
  from annotanchor.interchange import import_hf
  from annotanchor.training import partitioning

  root = tmp_path_factory.mktemp(request.param)
  model = build_hf(request.param, str(root / "hf"))
  config = import_hf.import_checkpoint(str(root / "hf"), str(root / "model"),
                                       mesh=partitioning.make_mesh({"data": -1}),
                                       log=lambda line: None)
  return Imported(request.param, model, str(root / "hf"), str(root / "model"), config,
                  restore(str(root / "model"), config))
