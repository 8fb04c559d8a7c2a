"""config.json <-> TransformerConfig: each family round-trips, and every option the decoder
cannot compute exactly is refused by name (no transformers needed)."""
import dataclasses

import pytest

from annotanchor.interchange import families
from annotanchor.interchange.families import UnsupportedConfigError
from annotanchor.model.config import TransformerConfig

BASE = TransformerConfig(vocab_size=64, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                         head_dim=8, mlp_dim=64, max_len=256, norm_eps=1e-5)
CONFIGS = {
    "llama": dataclasses.replace(BASE, rope_type="llama3", rope_factor=8.0,
                                 rope_original_max_len=64, tie_embeddings=True),
    "qwen3": dataclasses.replace(BASE, qk_norm=True, head_dim=16),
    "olmo2": dataclasses.replace(BASE, qk_norm=True, qk_norm_scope="projection",
                                 norm_placement="post"),
}


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_each_family_round_trips(family):
  hf = families.config_to_hf(CONFIGS[family], dtype="float32", where="test")
  assert hf["architectures"] == [families.ARCHITECTURES[family]]
  assert families.config_from_hf(hf) == (family, CONFIGS[family])


def test_the_pre_5_rope_layout_is_read():
  hf = families.config_to_hf(CONFIGS["llama"], dtype="float32", where="test")
  rope = hf.pop("rope_parameters")
  hf["rope_theta"] = rope.pop("rope_theta")
  hf["rope_scaling"] = rope
  assert families.config_from_hf(hf)[1] == CONFIGS["llama"]


def test_a_trained_here_config_names_its_family():
  assert families.family_for(BASE, "x") == "llama"
  with pytest.raises(UnsupportedConfigError, match="norm_placement='post' with qk_norm=False"):
    families.family_for(dataclasses.replace(BASE, norm_placement="post"), "x")


@pytest.mark.parametrize("family, changes, message", [
    ("llama", {"mlp_bias": True}, "mlp_bias=True"),
    ("llama", {"attention_bias": True}, "attention_bias=True"),
    ("llama", {"hidden_act": "gelu"}, "hidden_act='gelu'"),
    ("llama", {"rope_parameters": {"rope_type": "dynamic", "factor": 2.0}},
     "rope_type 'dynamic'"),
    ("llama", {"rope_parameters": {"full_attention": {"rope_type": "default"},
                                   "sliding_attention": {"rope_type": "default"}}},
     "per-layer-type RoPE"),
    ("llama", {"sliding_window": 4096}, "sliding_window=4096"),
    ("qwen3", {"use_sliding_window": True, "sliding_window": 4096}, "use_sliding_window=True"),
    ("qwen3", {"layer_types": ["full_attention", "sliding_attention"]}, "layer_types"),
    ("qwen3", {"num_experts": 8}, "num_experts=8"),
    ("olmo2", {"model_type": "olmoe", "architectures": ["OlmoeForCausalLM"]},
     "unsupported architecture (model_type 'olmoe'"),
    ("olmo2", {"architectures": ["LlamaForCausalLM"]}, "architectures ['LlamaForCausalLM']"),
    ("llama", {"partial_rotary_factor": 0.5}, "partial_rotary_factor=0.5"),
])
def test_what_cannot_be_expressed_is_refused_by_name(family, changes, message):
  hf = families.config_to_hf(CONFIGS[family], dtype="float32", where="test")
  hf.update(changes)
  with pytest.raises(UnsupportedConfigError) as error:
    families.config_from_hf(hf, where="dir/config.json")
  assert message in str(error.value) and "dir/config.json" in str(error.value)
  assert "\n" not in str(error.value)
