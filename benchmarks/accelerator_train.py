"""Train-step tokens/s and measured MFU of the paper-size models on the machine's accelerator,
plus KV-cache decode tokens/s.

For each model (`gin/models/<name>.gin`, default 600m and 1b) the real train step is built
as `training/loop.py` builds it (DecoderOnlyModel, make_optimizer(OptimizerConfig()),
make_mesh(MESH) over every local device, abstract_state + init_state, make_train_step +
jit_train_step with donated state and the NaN guard) and run on random packed rows (several
segments per row, segment ids and positions as the packer writes them). After --warmup
steps (the first compiles) --steps steps are timed back to back, blocking once at the end.

  tokens/s = rows x length x steps / wall seconds
  MFU      = tokens/s x TransformerConfig.flops_per_token(length) / (devices x peak)

with the peak the chip's spec-sheet dense bf16 rate (`annotanchor/hardware.py`, sources
there; `training.flops.peak_flops_per_device`). On a host whose device is not in that table
(a CPU) the peak is its measured float32 matmul rate, and the JSON says so.

Decode: `DecoderSampler` (the sampler `infer` and `serve` use) draws --decode_rows samples
of exactly --new_tokens tokens from prompts of --prompt_len random tokens (temperature 1,
no EOS); tokens/s = rows x new tokens / wall seconds of one call after a warm-up call.

  python benchmarks/accelerator_train.py                       # 600m and 1b, 8 x 2048 rows
  python benchmarks/accelerator_train.py --models 1b --batch 16 --steps 20
  python benchmarks/accelerator_train.py --dry                 # tiny config, CPU (tests)

Writes JSON to stdout and (not with --dry) to
benchmarks/results/accelerator_train_<platform>.json, or to --output.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def model_config(name: str, bindings: list[str]):
  """The TransformerConfig of gin/models/<name>.gin, with extra gin bindings."""
  import gin

  from annotanchor.model.config import TransformerConfig
  gin.clear_config()
  gin.parse_config_files_and_bindings([os.path.join(ROOT, "gin", "models", f"{name}.gin")],
                                      bindings, finalize_config=False)
  return gin.get_configurable(TransformerConfig)()


def packed_batch(rows: int, length: int, vocab: int, seed: int = 0):
  """Random tokens packed into 1-4 segments per row, every decoder_* feature (numpy)."""
  import numpy as np
  rng = np.random.default_rng(seed)
  targets = rng.integers(2, vocab, (rows, length), dtype=np.int32)
  segment_ids = np.empty((rows, length), np.int32)
  positions = np.empty((rows, length), np.int32)
  for row in range(rows):
    cuts = np.sort(rng.choice(np.arange(1, length), rng.integers(0, 4), replace=False))
    bounds = [0, *cuts, length]
    for seg, (start, end) in enumerate(zip(bounds[:-1], bounds[1:]), 1):
      segment_ids[row, start:end] = seg
      positions[row, start:end] = np.arange(end - start)
  inputs = np.concatenate([np.zeros((rows, 1), np.int32), targets[:, :-1]], axis=1)
  inputs[positions == 0] = 0
  return {"decoder_input_tokens": inputs, "decoder_target_tokens": targets,
          "decoder_loss_weights": np.ones((rows, length), np.float32),
          "decoder_segment_ids": segment_ids, "decoder_positions": positions}


def train_figures(config, args, mesh, peak: float) -> dict:
  import jax

  from annotanchor.model import attention_kernels
  from annotanchor.model.model import DecoderOnlyModel
  from annotanchor.training import partitioning, step as step_lib, train_state
  from annotanchor.training.optim import OptimizerConfig, make_optimizer

  model = DecoderOnlyModel(config)
  optimizer, schedule = make_optimizer(OptimizerConfig(), args.warmup + args.steps)
  partitioning.check_batch(args.batch, mesh, args.microbatches)
  _, shardings = train_state.abstract_state(model, optimizer, mesh)
  step = step_lib.jit_train_step(step_lib.make_train_step(
      model, optimizer, schedule, microbatches=args.microbatches, mesh=mesh), shardings, mesh)
  state = train_state.init_state(model, optimizer, jax.random.PRNGKey(0), shardings)
  batch = jax.device_put(packed_batch(args.batch, args.seq_len, config.vocab_size),
                         partitioning.batch_sharding(mesh))
  start = time.perf_counter()
  for _ in range(args.warmup):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  warmup_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(args.steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - start) / args.steps
  tokens_per_s = args.batch * args.seq_len / step_s
  with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
    kernel = attention_kernels.resolve(config.attention, config.compute_dtype)
  flops_per_token = config.flops_per_token(args.seq_len)
  return {"attention_kernel": kernel, "rows": args.batch, "length": args.seq_len,
          "microbatches": args.microbatches, "steps": args.steps,
          "warmup_s_including_compile": warmup_s, "step_s": step_s,
          "tokens_per_s": tokens_per_s, "flops_per_token": flops_per_token,
          "mfu": tokens_per_s * flops_per_token / (mesh.size * peak),
          "final_loss": float(metrics["loss"])}


def decode_figures(config, args, mesh) -> dict:
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  import numpy as np

  from annotanchor.decoding.model_sampler import DecoderSampler
  from annotanchor.decoding.sampler import SamplingConfig
  from annotanchor.model.transformer import Decoder

  sampler = DecoderSampler(config, mesh)
  params = jax.jit(lambda: nn.meta.unbox(Decoder(config).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32))["params"]),
                   out_shardings=sampler.param_shardings)()
  rng = np.random.default_rng(1)
  prompts = rng.integers(2, config.vocab_size, (args.decode_rows, args.prompt_len), np.int32)
  lengths = np.full((args.decode_rows,), args.prompt_len, np.int32)
  sampling = SamplingConfig(max_new_tokens=args.new_tokens, temperature=1.0, eos_id=-1)
  seconds = []
  for call in range(2):  # The first call compiles.
    start = time.perf_counter()
    out = jax.block_until_ready(sampler(params, prompts, lengths, jax.random.key(call), sampling))
    seconds.append(time.perf_counter() - start)
  assert int(jnp.min(out.lengths)) == args.new_tokens
  return {"rows": args.decode_rows, "prompt_len": args.prompt_len,
          "new_tokens": args.new_tokens, "first_call_s_including_compile": seconds[0],
          "call_s": seconds[1], "tokens_per_s": args.decode_rows * args.new_tokens / seconds[1]}


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="600m,1b", help="gin/models/ names, comma-separated")
  parser.add_argument("--batch", type=int, default=8, help="rows per step")
  parser.add_argument("--seq_len", type=int, default=2048)
  parser.add_argument("--microbatches", type=int, default=1)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--mesh", default='{"data": -1}', help="MESH degrees as JSON")
  parser.add_argument("--attention", default=None, help="override TransformerConfig.attention")
  parser.add_argument("--gin", action="append", default=[], help="extra gin bindings")
  parser.add_argument("--decode_rows", type=int, default=64)
  parser.add_argument("--prompt_len", type=int, default=128)
  parser.add_argument("--new_tokens", type=int, default=128)
  parser.add_argument("--skip_decode", action="store_true")
  parser.add_argument("--dry", action="store_true",
                      help="gin/models/tiny.gin on 2 x 128 rows, 2 steps: checks the script")
  parser.add_argument("--output", default=None)
  args = parser.parse_args(argv)
  if args.dry:
    args.models, args.batch, args.seq_len, args.steps, args.warmup = "tiny", 2, 128, 2, 1
    args.decode_rows, args.prompt_len, args.new_tokens = 2, 8, 8
  return args


def main(argv=None) -> dict:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  sys.path.insert(0, ROOT)
  from annotanchor import platforms
  platforms.choose_platform()  # Before JAX is imported: the GPU where one is.
  import jax
  import jaxlib

  from annotanchor.training import partitioning
  from annotanchor.training.flops import peak_flops_per_device

  mesh = partitioning.make_mesh(json.loads(args.mesh))
  peak, peak_source = peak_flops_per_device()
  device = jax.devices()[0]
  bindings = list(args.gin)
  if args.attention:
    bindings.append(f"config.TransformerConfig.attention={args.attention!r}")
  report = {"dry": args.dry, "platform": device.platform, "device_kind": device.device_kind,
            "devices": mesh.size, "mesh": dict(mesh.shape), "peak_flops_per_device": peak,
            "peak_source": peak_source, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""), "models": {}}
  for name in args.models.split(","):
    config = model_config(name, bindings)
    entry = {"config": dataclasses.asdict(config), "train": train_figures(config, args, mesh, peak)}
    if not args.skip_decode:
      entry["decode"] = decode_figures(config, args, mesh)
    report["models"][name] = entry
  text = json.dumps(report, indent=2)
  print(text)
  output = args.output or (None if args.dry else os.path.join(
      ROOT, "benchmarks", "results", f"accelerator_train_{device.platform}.json"))
  if output:
    with open(output, "w") as f:
      f.write(text + "\n")
  return report


if __name__ == "__main__":
  main()
