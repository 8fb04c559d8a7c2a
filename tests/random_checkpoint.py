"""A tiny random decoder saved with Orbax the way the trainer lays a checkpoint out."""
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from annotanchor.model.config import TransformerConfig
from annotanchor.model.transformer import Decoder

# gin/models/tiny.gin's shape; vocabulary: ByteVocabulary's 3 special ids + 256 bytes,
# padded to a multiple of the mesh's model axis.
TINY_BYTES = TransformerConfig(vocab_size=264, d_model=64, num_layers=2, num_heads=4,
                               num_kv_heads=2, head_dim=16, mlp_dim=192, max_len=128,
                               qk_norm=True, init_std=0.1)


def save(model_dir: str, config: TransformerConfig = TINY_BYTES, step: int = 7,
         seed: int = 0) -> str:
  """Writes MODEL_DIR/checkpoints/<step>/params of a random network (drawn from `seed`);
  returns model_dir."""
  params = nn.meta.unbox(Decoder(config).init(jax.random.PRNGKey(seed),
                                              jnp.zeros((1, 4), jnp.int32))["params"])
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(os.path.join(model_dir, "checkpoints", str(step), "params"), params)
  return str(model_dir)
