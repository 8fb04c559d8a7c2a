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


@pytest.mark.slow
def test_roofline_counts_the_splash_kernels_flops():
  """XLA counts a Pallas kernel as 0 FLOPs; with the attention FLOPs added back the splash
  step's cost comes within a few percent of the same step with the xla kernel (which XLA
  counts itself, softmax included), rematerialised forward included."""
  import dataclasses

  from annotanchor.model.config import TransformerConfig
  from annotanchor.model.model import DecoderOnlyModel
  from annotanchor.tpu.chips import parse_topology
  from annotanchor.training import optim, partitioning

  mesh = partitioning.make_mesh({"data": 4}, aot.topology_devices(parse_topology("v5e:2x2")))
  config = TransformerConfig(vocab_size=256, d_model=256, num_layers=1, num_heads=2,
                             num_kv_heads=2, head_dim=128, mlp_dim=512, max_len=2048,
                             dtype="bfloat16", remat_policy="full")
  tx, schedule = optim.make_optimizer(optim.OptimizerConfig(), 10)
  cost = {}
  for attention in ("xla", "splash"):
    model = DecoderOnlyModel(dataclasses.replace(config, attention=attention))
    cost[attention] = aot.compile_train_step(model, tx, schedule, mesh, batch_size=4,
                                             length=2048).cost
  added = aot.kernel_attention_flops(dataclasses.replace(config, attention="splash"), mesh, 4, 2048)
  assert added > 0.4 * cost["xla"].flops  # attention is most of this step's work
  assert abs(cost["splash"].flops / cost["xla"].flops - 1) < 0.05
  assert aot.kernel_attention_flops(config, mesh, 4, 2048) == added  # auto: splash on TPU
  assert aot.kernel_attention_flops(dataclasses.replace(config, attention="xla"), mesh, 4,
                                    2048) == 0.0
