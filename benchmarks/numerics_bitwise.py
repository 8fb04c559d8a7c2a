"""Bit-for-bit check of a training step's numerics between two checkouts.

  python benchmarks/numerics_bitwise.py OLD_CHECKOUT old.npy
  python benchmarks/numerics_bitwise.py NEW_CHECKOUT new.npy
  python -c "import numpy as np; print(np.array_equal(np.load('old.npy'), np.load('new.npy')))"

Computes the loss and every gradient of a 2-layer model on a fixed packed batch (two
segments per row) with the checkout's annotanchor, and saves them. Used 2026-12-08 with
the demo's XLA_FLAGS to clear the CPU attention kernel's move (6f1d791~1 against main) and
the compilation cache (off, cold, warm) as causes of the demo's changed figures
(docs/results.md): equal in every case.
"""
import sys

import numpy as np


def main(checkout: str, out: str) -> None:
  sys.path.insert(0, checkout)  # This checkout's annotanchor, not the installed one.
  import flax
  import jax

  import annotanchor
  from annotanchor.model.config import TransformerConfig
  from annotanchor.model.model import DecoderOnlyModel

  assert annotanchor.__file__.startswith(checkout), annotanchor.__file__
  model = DecoderOnlyModel(TransformerConfig(
      vocab_size=512, d_model=128, num_layers=2, num_heads=4, num_kv_heads=4, head_dim=32,
      mlp_dim=384, max_len=256))
  params = flax.core.meta.unbox(model.init(jax.random.PRNGKey(0), 2, 64))
  tokens = np.random.RandomState(0).randint(1, 512, size=(4, 128)).astype(np.int32)
  segments = np.repeat([[1] * 70 + [2] * 58], 4, axis=0).astype(np.int32)
  positions = np.repeat([np.r_[np.arange(70), np.arange(58)]], 4, axis=0).astype(np.int32)
  batch = {"decoder_input_tokens": tokens, "decoder_target_tokens": np.roll(tokens, -1, 1),
           "decoder_loss_weights": np.ones_like(tokens, np.float32),
           "decoder_segment_ids": segments, "decoder_positions": positions}

  def loss(p):
    terms = model.loss_terms(p, batch)
    return terms["numerator"] / terms["denominator"]

  value, grads = jax.jit(jax.value_and_grad(loss))(params)
  flat = [np.asarray(g).ravel() for g in jax.tree_util.tree_leaves(grads)]
  np.save(out, np.concatenate([[float(value)], *flat]))
  print(float(value))


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2])
