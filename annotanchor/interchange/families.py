"""config.json <-> TransformerConfig, per family: Llama (incl. Llama 3 RoPE), Qwen3, OLMo-2.

What a config.json asks for that the decoder cannot compute exactly (a bias, a sliding
window, another RoPE type, experts, another architecture) is refused with one line naming
it: an imported model computes what its config.json says, or it is not imported.

  family   block     QK-norm                    transformers class
  llama    pre-norm  none                       LlamaForCausalLM
  qwen3    pre-norm  per head, over head_dim    Qwen3ForCausalLM
  olmo2    post-out  over the whole projection  Olmo2ForCausalLM

Both layouts of the RoPE settings are read: transformers 5's `rope_parameters` dict (with
`rope_theta` in it) and the older top-level `rope_theta` with `rope_scaling`.
"""
from __future__ import annotations

from typing import Any, Mapping

from annotanchor.errors import UserError
from annotanchor.model.config import TransformerConfig

ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM",
                 "olmo2": "Olmo2ForCausalLM"}
# transformers' defaults where a config.json may leave a field out.
_EPS = {"llama": 1e-6, "qwen3": 1e-6, "olmo2": 1e-5}
_DEFAULT_THETA = 10_000.0
# Settings of other families (or options) that change what the network computes; a
# config.json that sets one to anything but its neutral value is refused.
_UNSUPPORTED = {
    "attention_bias": (None, False), "mlp_bias": (None, False),
    "use_sliding_window": (None, False), "partial_rotary_factor": (None, 1.0),
    "num_experts": (None, 0), "num_local_experts": (None, 0), "n_routed_experts": (None, 0),
    "moe_intermediate_size": (None, 0), "clip_qkv": (None,),
    "attn_logit_softcapping": (None,), "final_logit_softcapping": (None,),
    "logits_scaling": (None, 1.0), "embedding_multiplier": (None, 1.0),
    "residual_multiplier": (None, 1.0), "attention_multiplier": (None,),
    "no_rope_layers": (None,), "pretraining_tp": (None, 1),
}
_LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor",
                "original_max_position_embeddings")


class UnsupportedConfigError(UserError, ValueError):
  """A config.json (or a checkpoint) that asks for what the decoder cannot compute exactly."""


def _refuse(where: str, what: str) -> UnsupportedConfigError:
  return UnsupportedConfigError(f"{where}: {what} cannot be expressed exactly by this "
                                f"decoder; refusing to approximate it")


def family_of(hf: Mapping[str, Any], where: str) -> str:
  """The family a config.json names (model_type, else its architectures)."""
  model_type = hf.get("model_type")
  architectures = list(hf.get("architectures") or [])
  if model_type in ARCHITECTURES:
    if architectures and architectures != [ARCHITECTURES[model_type]]:
      raise _refuse(where, f"architectures {architectures} (model_type {model_type!r})")
    return model_type
  named = [f for f, a in ARCHITECTURES.items() if architectures == [a]]
  if model_type is None and named:
    return named[0]
  raise UnsupportedConfigError(
      f"{where}: unsupported architecture (model_type {model_type!r}, architectures "
      f"{architectures}); supported: {', '.join(f'{f} ({a})' for f, a in ARCHITECTURES.items())}")


def _rope(hf: Mapping[str, Any], where: str) -> dict[str, Any]:
  """TransformerConfig's rope_* fields from either layout of the RoPE settings."""
  params = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
  if params and all(isinstance(v, Mapping) for v in params.values()):
    raise _refuse(where, f"per-layer-type RoPE parameters ({sorted(params)})")
  rope_type = params.get("rope_type", params.get("type", "default"))
  theta = float(params.get("rope_theta", hf.get("rope_theta") or _DEFAULT_THETA))
  if params.get("partial_rotary_factor", 1.0) != 1.0:
    raise _refuse(where, f"partial_rotary_factor={params['partial_rotary_factor']}")
  if rope_type == "default":
    return {"rope_theta": theta}
  if rope_type != "llama3":
    raise _refuse(where, f"rope_type {rope_type!r} (supported: 'default', 'llama3')")
  params.setdefault("original_max_position_embeddings", hf.get("max_position_embeddings"))
  missing = [k for k in _LLAMA3_KEYS if params.get(k) is None]
  if missing:
    raise UnsupportedConfigError(f"{where}: rope_type 'llama3' without {missing[0]}")
  return {"rope_theta": theta, "rope_type": "llama3", "rope_factor": float(params["factor"]),
          "rope_low_freq_factor": float(params["low_freq_factor"]),
          "rope_high_freq_factor": float(params["high_freq_factor"]),
          "rope_original_max_len": int(params["original_max_position_embeddings"])}


def config_from_hf(hf: Mapping[str, Any], *, where: str = "config.json",
                   max_len: int | None = None, dtype: str = "float32",
                   param_dtype: str = "float32",
                   scan_layers: bool = False) -> tuple[str, TransformerConfig]:
  """(family, the TransformerConfig that computes what `hf` describes).

  Args:
    hf: a parsed config.json.
    where: names it in errors.
    max_len: the decode cache bound (default the config's max_position_embeddings); it
      changes no logit.
    dtype, param_dtype, scan_layers: how the weights are run and stored here.

  Raises:
    UnsupportedConfigError: naming the first setting that cannot be expressed exactly.
  """
  family = family_of(hf, where)
  for key, neutral in _UNSUPPORTED.items():
    if key in hf and hf[key] not in neutral:
      raise _refuse(where, f"{key}={hf[key]!r}")
  if hf.get("hidden_act", "silu") != "silu":
    raise _refuse(where, f"hidden_act={hf['hidden_act']!r} (the MLP is SwiGLU: 'silu')")
  layer_types = set(hf.get("layer_types") or ["full_attention"])
  if layer_types != {"full_attention"}:
    raise _refuse(where, f"layer_types {sorted(layer_types)} (only full attention)")
  if family != "qwen3" and hf.get("sliding_window") is not None:
    raise _refuse(where, f"sliding_window={hf['sliding_window']!r}")
  d_model, heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
  head_dim = hf.get("head_dim") or (128 if family == "qwen3" else d_model // heads)
  family_fields = {
      "llama": {"qk_norm": False},
      "qwen3": {"qk_norm": True, "qk_norm_scope": "head"},
      "olmo2": {"qk_norm": True, "qk_norm_scope": "projection", "norm_placement": "post"},
  }[family]
  try:
    config = TransformerConfig(
        vocab_size=int(hf["vocab_size"]), d_model=d_model,
        num_layers=int(hf["num_hidden_layers"]), num_heads=heads,
        num_kv_heads=int(hf.get("num_key_value_heads") or heads), head_dim=int(head_dim),
        mlp_dim=int(hf["intermediate_size"]),
        max_len=int(max_len or hf.get("max_position_embeddings") or 2048),
        norm_eps=float(hf.get("rms_norm_eps", _EPS[family])),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        init_std=float(hf.get("initializer_range", 0.02)), dtype=dtype,
        param_dtype=param_dtype, scan_layers=scan_layers, **family_fields, **_rope(hf, where))
  except KeyError as e:
    raise UnsupportedConfigError(f"{where} lacks {e.args[0]!r}") from None
  except UserError as e:
    raise UnsupportedConfigError(f"{where}: {e}") from None
  return family, config


def family_for(config: TransformerConfig, where: str) -> str:
  """The family whose transformers class computes what `config` does.

  Raises:
    UnsupportedConfigError: a combination no supported family has.
  """
  if config.norm_placement == "post":
    if config.qk_norm and config.qk_norm_scope == "projection":
      return "olmo2"
  elif not config.qk_norm:
    return "llama"
  elif config.qk_norm_scope == "head":
    return "qwen3"
  raise _refuse(where, f"norm_placement={config.norm_placement!r} with qk_norm="
                       f"{config.qk_norm} (scope {config.qk_norm_scope!r}) in a Hugging Face "
                       f"family (llama, qwen3, olmo2)")


# config.json fields that change no logit, kept from the imported config.json on export.
_CARRIED = ("bos_token_id", "eos_token_id", "pad_token_id", "max_position_embeddings",
            "use_cache", "attention_dropout")


def config_to_hf(config: TransformerConfig, *, dtype: str, where: str,
                 source: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """The config.json of `config` (export); `source` (the imported config.json, if any)
  supplies the fields that change no logit (token ids, max_position_embeddings)."""
  family = family_for(config, where)
  rope: dict[str, Any] = {"rope_theta": config.rope_theta, "rope_type": config.rope_type}
  if config.rope_type == "llama3":
    rope.update(factor=config.rope_factor, low_freq_factor=config.rope_low_freq_factor,
                high_freq_factor=config.rope_high_freq_factor,
                original_max_position_embeddings=config.rope_original_max_len)
  hf: dict[str, Any] = {
      "architectures": [ARCHITECTURES[family]], "model_type": family,
      "vocab_size": config.vocab_size, "hidden_size": config.d_model,
      "intermediate_size": config.mlp_dim, "num_hidden_layers": config.num_layers,
      "num_attention_heads": config.num_heads, "num_key_value_heads": config.num_kv_heads,
      "head_dim": config.head_dim, "hidden_act": "silu", "rms_norm_eps": config.norm_eps,
      "tie_word_embeddings": config.tie_embeddings, "rope_parameters": rope,
      "attention_bias": False, "initializer_range": config.init_std, "dtype": dtype,
      # Our data pipeline's conventions (0 pads and is the shifted-in BOS, 1 ends).
      "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 0,
      "max_position_embeddings": config.max_len, "use_cache": True,
  }
  if family == "llama":
    hf["mlp_bias"] = False
  if family == "qwen3":
    hf.update(use_sliding_window=False, sliding_window=None)
  for key in _CARRIED:
    if source and key in source:
      hf[key] = source[key]
  return hf
