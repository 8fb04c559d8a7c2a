"""The decoder's shape and numerics, as one typed config that gin binds field by field."""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from annotanchor.errors import SettingError

REMAT_POLICIES = ("none", "full", "dots", "dots_no_batch")
ROPE_TYPES = ("default", "llama3")
QK_NORM_SCOPES = ("head", "projection")
NORM_PLACEMENTS = ("pre", "post")
ATTENTION_KERNELS = ("auto", "splash", "cudnn", "xla", "cpu")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """An OLMo-2/Llama/Qwen3-style decoder.

  The defaults are a pre-norm block with per-head QK-norm when qk_norm is set; the fields
  after `init_std` express the published families exactly (annotanchor/interchange):
  Llama 3 (rope_type='llama3'), Qwen3 (qk_norm, qk_norm_scope='head') and OLMo-2
  (norm_placement='post', qk_norm_scope='projection').

  Attributes:
    vocab_size: rows of the embedding table (pad it to a multiple of the model axis).
    d_model: residual width (logical axis `embed`).
    num_layers: decoder blocks (logical axis `layers` when scanned).
    num_heads: query heads (logical axis `heads`).
    num_kv_heads: key/value heads for grouped-query attention; divides num_heads.
    head_dim: width of one head (logical axis `kv`).
    mlp_dim: hidden width of the SwiGLU MLP (logical axis `mlp`).
    max_len: longest sequence the decode cache holds.
    rope_theta: base of the rotary position embedding frequencies.
    qk_norm: RMSNorm on queries and keys (over `qk_norm_scope`).
    tie_embeddings: share the input embedding with the output projection.
    dtype: compute dtype of activations and matmuls ("float32" or "bfloat16").
    param_dtype: storage dtype of the parameters.
    scan_layers: run the blocks with `nn.scan` (one compiled block: faster compiles at depth).
    remat_policy: what the backward pass keeps: "none" (everything), "full" (only block
      inputs), "dots" (matmul outputs), "dots_no_batch" (matmuls without batch dimensions).
    attention: the training attention kernel (model/attention_kernels.py): "auto" (by the
      platform compiled for: splash on TPU, cudnn on GPU, cpu on CPU), "splash", "cudnn"
      (bf16 compute), "xla" (plain reference) or "cpu" (query blocks, tuned for XLA:CPU).
    norm_eps: RMSNorm epsilon.
    init_std: standard deviation of the normal initialisers.
    qk_norm_scope: "head": each head normalised over head_dim with one head_dim scale
      shared by all heads (Qwen3); "projection": the whole query (key) projection,
      num_heads * head_dim (num_kv_heads * head_dim) values, normalised at once with a
      scale per value (OLMo-2).
    norm_placement: "pre": x + f(norm(x)) (Llama, Qwen3); "post": x + norm(f(x)), no norm
      on the block input, the attention and MLP outputs normalised before the residual
      add (OLMo-2).
    rope_type: "default" (frequencies theta^(-2i/head_dim)) or "llama3" (Llama 3.1's
      scaling of the low frequencies, by the four rope_* fields below).
    rope_factor: llama3: the low frequencies are divided by this.
    rope_low_freq_factor, rope_high_freq_factor: llama3: wavelengths above
      rope_original_max_len / low are scaled, below rope_original_max_len / high kept,
      smoothly interpolated in between.
    rope_original_max_len: llama3: the context length the base model was trained at.
  """

  vocab_size: int
  d_model: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  mlp_dim: int
  max_len: int = 2048
  rope_theta: float = 10_000.0
  qk_norm: bool = False
  tie_embeddings: bool = False
  dtype: str = "float32"
  param_dtype: str = "float32"
  scan_layers: bool = False
  remat_policy: str = "none"
  attention: str = "auto"
  norm_eps: float = 1e-6
  init_std: float = 0.02
  qk_norm_scope: str = "head"
  norm_placement: str = "pre"
  rope_type: str = "default"
  rope_factor: float = 1.0
  rope_low_freq_factor: float = 1.0
  rope_high_freq_factor: float = 4.0
  rope_original_max_len: int = 8192

  def __post_init__(self):
    if self.num_heads % self.num_kv_heads:
      raise SettingError(
          f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}")
    if self.head_dim % 2:
      raise SettingError(f"head_dim={self.head_dim} must be even for rotary embeddings")
    if self.remat_policy not in REMAT_POLICIES:
      raise SettingError(f"remat_policy={self.remat_policy!r}; expected one of {REMAT_POLICIES}")
    for name, allowed in (("qk_norm_scope", QK_NORM_SCOPES),
                          ("norm_placement", NORM_PLACEMENTS), ("rope_type", ROPE_TYPES)):
      if getattr(self, name) not in allowed:
        raise SettingError(f"{name}={getattr(self, name)!r}; expected one of {allowed}")
    if self.rope_type == "llama3" and not (
        self.rope_factor > 0 and self.rope_high_freq_factor > self.rope_low_freq_factor > 0
        and self.rope_original_max_len > 0):
      raise SettingError(
          f"rope_type='llama3' needs rope_factor > 0, rope_high_freq_factor > "
          f"rope_low_freq_factor > 0 and rope_original_max_len > 0; got {self.rope_factor}, "
          f"{self.rope_high_freq_factor}, {self.rope_low_freq_factor}, "
          f"{self.rope_original_max_len}")
    if self.attention not in ATTENTION_KERNELS:
      raise SettingError(f"attention={self.attention!r}; expected one of {ATTENTION_KERNELS}")
    if self.attention == "cudnn" and self.dtype != "bfloat16":
      raise SettingError(f"attention='cudnn' needs dtype='bfloat16' (cuDNN's flash attention "
                         f"does not run {self.dtype})")
    for name in ("dtype", "param_dtype"):
      if getattr(self, name) not in ("float32", "bfloat16"):
        raise SettingError(f"{name}={getattr(self, name)!r}; expected 'float32' or 'bfloat16'")

  @property
  def compute_dtype(self):
    return jnp.dtype(self.dtype)

  @property
  def weight_dtype(self):
    return jnp.dtype(self.param_dtype)

  def num_params(self, include_embeddings: bool = True) -> int:
    """Parameter count, computed from the shapes (matches the initialised tree)."""
    d, h, kv, hd = self.d_model, self.num_heads, self.num_kv_heads, self.head_dim
    qk_norm = 0
    if self.qk_norm:
      qk_norm = 2 * hd if self.qk_norm_scope == "head" else (h + kv) * hd
    attn = d * h * hd * 2 + d * kv * hd * 2 + qk_norm
    block = attn + 3 * d * self.mlp_dim + 2 * d  # Two norms a block, pre or post.
    embed = self.vocab_size * d * (1 if self.tie_embeddings else 2)
    total = self.num_layers * block + d  # + final norm
    return total + (embed if include_embeddings else 0)

  def flops_per_token(self, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward = 3x forward), PaLM appendix B style.

    6 * (non-embedding params + output projection) for the matmuls, plus the attention
    score and value matmuls: 12 * layers * heads * head_dim * seq_len (causal masking is
    not subtracted, as in PaLM's MFU definition).
    """
    matmul_params = self.num_params(include_embeddings=False) + self.vocab_size * self.d_model
    attention = 12 * self.num_layers * self.num_heads * self.head_dim * seq_len
    return 6.0 * matmul_params + attention
