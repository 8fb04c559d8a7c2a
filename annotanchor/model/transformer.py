"""The decoder-only network: token ids in, float32 logits out. It knows only arrays."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from annotanchor.model.config import TransformerConfig
from annotanchor.model.layers import MLP, Dense, Attention, RMSNorm, constrain, logical_init

_REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class DecoderBlock(nn.Module):
  """Pre-norm block: x + attn(norm(x)), then h + mlp(norm(h)); with
  norm_placement='post' (OLMo-2): x + norm(attn(x)), then h + norm(mlp(h)).

  Returns (output, None) so the same module can be the body of `nn.scan`.
  """

  config: TransformerConfig
  decode: bool = False

  @nn.compact
  def __call__(self, x, positions, segment_ids):
    cfg = self.config
    norm = lambda name: RMSNorm(cfg.norm_eps, cfg.compute_dtype, cfg.weight_dtype, name=name)
    attention, mlp = Attention(cfg, self.decode, name="attention"), MLP(cfg, name="mlp")
    if cfg.norm_placement == "pre":
      h = x + attention(norm("pre_attention_norm")(x), positions, segment_ids)
      h = constrain(h, ("batch", "length", "embed"))
      out = h + mlp(norm("pre_mlp_norm")(h))
    else:
      h = x + norm("post_attention_norm")(attention(x, positions, segment_ids))
      h = constrain(h, ("batch", "length", "embed"))
      out = h + norm("post_mlp_norm")(mlp(h))
    return constrain(out, ("batch", "length", "embed")), None


class Decoder(nn.Module):
  """Embedding, `num_layers` blocks (looped or scanned, optionally rematerialised), norm, logits."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, tokens, positions=None, segment_ids=None, decode: bool = False,
               last_only: bool = False):
    """Computes next-token logits.

    Args:
      tokens: [batch, length] int32 input ids (decoder_input_tokens when training).
      positions: [batch, length] positions within each segment; default 0..length-1.
      segment_ids: [batch, length] packing segment ids (0 = padding); None when unpacked.
      decode: read and write the KV cache (collection "cache") instead of full attention.
      last_only: the last position's logits alone, [batch, 1, vocab_size]: all a sampler
        reads of a prompt, whose other positions' logits projection it would discard.

    Returns:
      [batch, length, vocab_size] float32 logits ([batch, 1, vocab_size] with last_only).
    """
    cfg = self.config
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    embed = nn.Embed(
        cfg.vocab_size, cfg.d_model, dtype=cfg.compute_dtype, param_dtype=cfg.weight_dtype,
        embedding_init=logical_init(cfg.init_std, ("vocab", "embed")), name="embed")
    x = constrain(embed(tokens), ("batch", "length", "embed"))

    block = DecoderBlock
    if cfg.remat_policy != "none":
      block = nn.remat(block, policy=_REMAT_POLICIES[cfg.remat_policy],
                       prevent_cse=not cfg.scan_layers)
    if cfg.scan_layers:
      stack = nn.scan(
          block, variable_axes={"params": 0, "cache": 0}, split_rngs={"params": True},
          in_axes=(nn.broadcast, nn.broadcast), length=cfg.num_layers,
          metadata_params={nn.PARTITION_NAME: "layers"})
      x, _ = stack(cfg, decode, name="layers")(x, positions, segment_ids)
    else:
      for i in range(cfg.num_layers):
        x, _ = block(cfg, decode, name=f"layer_{i}")(x, positions, segment_ids)

    if last_only:
      x = x[:, -1:]
    x = RMSNorm(cfg.norm_eps, cfg.compute_dtype, cfg.weight_dtype, name="final_norm")(x)
    if cfg.tie_embeddings:
      logits = embed.attend(x)
    else:
      logits = Dense(
          cfg.vocab_size, dtype=cfg.compute_dtype, param_dtype=cfg.weight_dtype,
          kernel_init=logical_init(cfg.init_std, ("embed", "vocab")), name="logits")(x)
    return constrain(logits.astype(jnp.float32), ("batch", "length", "vocab"))
