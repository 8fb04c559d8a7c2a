"""The train step with attention="auto" compiles for a TPU slice (XLA:TPU on this CPU host)
with the splash kernel: a Mosaic custom call, sharded over the mesh, fwd and bwd."""
import pytest

from annotanchor.tpu import aot

MISSING = aot.libtpu_missing_reason()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"needs libtpu: {MISSING}")


def test_auto_attention_compiles_splash_for_v5e():
  from annotanchor.model.config import TransformerConfig
  from annotanchor.model.model import DecoderOnlyModel
  from annotanchor.tpu.chips import parse_topology
  from annotanchor.training import optim, partitioning, step as step_lib

  mesh = partitioning.make_mesh({"data": 2, "fsdp": 1, "model": 2},
                                aot.topology_devices(parse_topology("v5e:2x2")))
  config = TransformerConfig(vocab_size=256, d_model=128, num_layers=1, num_heads=4,
                             num_kv_heads=2, head_dim=128, mlp_dim=256, qk_norm=True,
                             dtype="bfloat16")
  tx, schedule = optim.make_optimizer(optim.OptimizerConfig(), 10)
  step, abstract, _ = step_lib.sharded_train_step(DecoderOnlyModel(config), tx, schedule, mesh,
                                                  batch_size=4)
  lowered = step.lower(abstract, aot.abstract_batch(4, 256, mesh, True))
  text = lowered.as_text()
  # Forward, dq and dkv kernels, each inside a shard_map over batch and heads.
  assert text.count("tpu_custom_call") >= 3
  assert '{"data", "fsdp"}, {"model"}' in text
  assert lowered.compile().memory_analysis() is not None
