"""Which Hugging Face tensor is which of our parameters, and how its layout differs.

transformers' nn.Linear weights are [out, in]; our kernels are [in, ...out] with the head
axes split out, so q_proj [heads * head_dim, d_model] is query/kernel
[d_model, heads, head_dim] = W.T reshaped, and o_proj [d_model, heads * head_dim] is
out/kernel [heads, head_dim, d_model] = W.T reshaped. Embeddings and norm scales keep
their layout (OLMo-2's projection-wide QK-norm scale [heads * head_dim] becomes
[heads, head_dim]).

Rotary layout: transformers' `rotate_half` pairs dims i and i + head_dim/2 of each head,
which is what `layers.apply_rotary` does, so q/k weights need no permutation (that
permutation is between Meta's original interleaved checkpoints and the Hugging Face ones).

Paths are into the unscanned tree (layer_{i}/...); with scan_layers the same leaf is
layers/... with the layer on axis 0.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from annotanchor.model.config import TransformerConfig


@dataclasses.dataclass(frozen=True)
class Mapped:
  """One Hugging Face tensor and the parameter it is.

  Attributes:
    hf_name: e.g. "model.layers.0.self_attn.q_proj.weight".
    path: our parameter's path in the unscanned tree, e.g. ("layer_0", "attention",
      "query", "kernel").
    hf_shape: its shape in the Hugging Face checkpoint.
    shape: its shape here.
    transposed: ours = W.T reshaped (a Linear weight); else ours = W reshaped.
    layer: the block index (None for embeddings and the final norm).
  """
  hf_name: str
  path: tuple[str, ...]
  hf_shape: tuple[int, ...]
  shape: tuple[int, ...]
  transposed: bool
  layer: int | None = None

  def to_ours(self, w: np.ndarray) -> np.ndarray:
    """The parameter's value from the HF tensor (a view where the layout allows)."""
    return (w.T if self.transposed else w).reshape(self.shape)

  def to_hf(self, x: np.ndarray) -> np.ndarray:
    return x.reshape(self.hf_shape[::-1]).T if self.transposed else x.reshape(self.hf_shape)


def tensor_map(config: TransformerConfig, family: str) -> list[Mapped]:
  """Every tensor a `family` checkpoint of `config`'s shape holds, in checkpoint order."""
  d, h, kv, hd, m = (config.d_model, config.num_heads, config.num_kv_heads, config.head_dim,
                     config.mlp_dim)
  out = [Mapped("model.embed_tokens.weight", ("embed", "embedding"), (config.vocab_size, d),
                (config.vocab_size, d), False)]
  for i in range(config.num_layers):
    hf, ours = f"model.layers.{i}.", (f"layer_{i}",)
    linear = lambda name, path, hf_shape, shape: Mapped(
        hf + name, ours + path, hf_shape, shape, True, i)
    same = lambda name, path, shape: Mapped(
        hf + name, ours + path, (int(np.prod(shape)),), shape, False, i)
    out += [
        linear("self_attn.q_proj.weight", ("attention", "query", "kernel"), (h * hd, d), (d, h, hd)),
        linear("self_attn.k_proj.weight", ("attention", "key", "kernel"), (kv * hd, d), (d, kv, hd)),
        linear("self_attn.v_proj.weight", ("attention", "value", "kernel"), (kv * hd, d), (d, kv, hd)),
        linear("self_attn.o_proj.weight", ("attention", "out", "kernel"), (d, h * hd), (h, hd, d)),
        linear("mlp.gate_proj.weight", ("mlp", "wi_0", "kernel"), (m, d), (d, m)),
        linear("mlp.up_proj.weight", ("mlp", "wi_1", "kernel"), (m, d), (d, m)),
        linear("mlp.down_proj.weight", ("mlp", "wo", "kernel"), (d, m), (m, d)),
    ]
    if config.qk_norm:
      per_head = config.qk_norm_scope == "head"
      out += [same("self_attn.q_norm.weight", ("attention", "query_norm", "scale"),
                   (hd,) if per_head else (h, hd)),
              same("self_attn.k_norm.weight", ("attention", "key_norm", "scale"),
                   (hd,) if per_head else (kv, hd))]
    if config.norm_placement == "pre":
      out += [same("input_layernorm.weight", ("pre_attention_norm", "scale"), (d,)),
              same("post_attention_layernorm.weight", ("pre_mlp_norm", "scale"), (d,))]
    else:
      out += [same("post_attention_layernorm.weight", ("post_attention_norm", "scale"), (d,)),
              same("post_feedforward_layernorm.weight", ("post_mlp_norm", "scale"), (d,))]
  out.append(Mapped("model.norm.weight", ("final_norm", "scale"), (d,), (d,), False))
  if not config.tie_embeddings:
    out.append(Mapped("lm_head.weight", ("logits", "kernel"), (config.vocab_size, d),
                      (d, config.vocab_size), True))
  return out


def ignorable(name: str, config: TransformerConfig) -> bool:
  """Tensors a checkpoint may hold that compute nothing here: old checkpoints' cached
  rotary frequencies, and lm_head.weight next to tied embeddings (transformers ties it)."""
  return name.endswith("rotary_emb.inv_freq") or (
      config.tie_embeddings and name == "lm_head.weight")


def tree_path(mapped: Mapped, scan_layers: bool) -> tuple[str, ...]:
  """The leaf's path in the parameter tree as built (scanned: layers/... for every block)."""
  if scan_layers and mapped.layer is not None:
    return ("layers",) + mapped.path[1:]
  return mapped.path
