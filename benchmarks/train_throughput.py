"""Train-step throughput: our jitted train step against a PyTorch/Hugging Face peer.

Ours is the real train step, built the way the trainer builds it (DecoderOnlyModel,
make_optimizer(OptimizerConfig()), make_mesh({"data": -1}), abstract_state + init_state,
make_train_step + jit_train_step). The peer is `transformers.LlamaForCausalLM` with the same
shape (sdpa attention, untied embeddings) trained in PyTorch eager with AdamW: forward,
cross-entropy on the same targets, backward, global-norm clipping, optimizer step.

Both see the same random batch. Steps are timed in interleaved rounds (ours, peer, ours,
peer, ...) so that load from other processes hits both alike; each figure is the median
over rounds. MFU = model FLOPs/s / the framework's own float32 matmul rate, measured in the
same run; model FLOPs per token come from TransformerConfig.flops_per_token for both.

  python benchmarks/train_throughput.py [--steps 3] [--warmup 2] [--repeats 5]
  python benchmarks/train_throughput.py --quick --skip_peer   # smoke test of the script

The peer needs PyTorch and transformers, which are not part of annotanchor's install:

  pip install torch==2.13.0 transformers==5.24.0
  (CPU-only wheels: add --index-url https://download.pytorch.org/whl/cpu for torch)

Writes JSON to stdout and to benchmarks/results/train_throughput.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time

PEER_INSTALL = "pip install torch==2.13.0 transformers==5.24.0"


@dataclasses.dataclass(frozen=True)
class Shape:
  d_model: int = 512
  num_layers: int = 8
  num_heads: int = 8
  num_kv_heads: int = 8
  head_dim: int = 64
  mlp_dim: int = 1536
  vocab_size: int = 8192
  seq_len: int = 512
  batch: int = 8


FULL = Shape()
QUICK = Shape(d_model=64, num_layers=2, num_heads=4, num_kv_heads=4, head_dim=16, mlp_dim=128,
              vocab_size=256, seq_len=32, batch=2)


def make_batch(shape: Shape, seed: int = 0):
  """Random unpacked tokens with every decoder_* feature, as numpy arrays."""
  import numpy as np
  rng = np.random.default_rng(seed)
  tokens = rng.integers(1, shape.vocab_size, (shape.batch, shape.seq_len + 1), dtype=np.int32)
  return {
      "decoder_input_tokens": tokens[:, :-1].copy(),
      "decoder_target_tokens": tokens[:, 1:].copy(),
      "decoder_loss_weights": np.ones((shape.batch, shape.seq_len), np.float32),
  }


def transformer_config(shape: Shape):
  from annotanchor.model.config import TransformerConfig
  return TransformerConfig(
      vocab_size=shape.vocab_size, d_model=shape.d_model, num_layers=shape.num_layers,
      num_heads=shape.num_heads, num_kv_heads=shape.num_kv_heads, head_dim=shape.head_dim,
      mlp_dim=shape.mlp_dim, max_len=shape.seq_len, tie_embeddings=False, dtype="float32",
      param_dtype="float32")


# ---------------------------------------------------------------------------------------
# Ours.


class Ours:
  """Our train step, built as annotanchor.training.loop.train_loop builds it."""

  name = "annotanchor (jax)"

  def __init__(self, shape: Shape, batch_np, train_steps: int):
    import jax
    from annotanchor.model.model import DecoderOnlyModel
    from annotanchor.training import partitioning, step as step_lib, train_state
    from annotanchor.training.optim import OptimizerConfig, make_optimizer

    self._jax = jax
    model = DecoderOnlyModel(transformer_config(shape))
    optimizer, schedule = make_optimizer(OptimizerConfig(), train_steps)
    mesh = partitioning.make_mesh({"data": -1})
    partitioning.check_batch(shape.batch, mesh)
    _, shardings = train_state.abstract_state(model, optimizer, mesh)
    self._step = step_lib.jit_train_step(
        step_lib.make_train_step(model, optimizer, schedule, mesh=mesh), shardings, mesh)
    self._state = train_state.init_state(model, optimizer, jax.random.PRNGKey(0), shardings)
    self._batch = jax.device_put(batch_np, partitioning.batch_sharding(mesh))
    self.loss = None

  def step(self) -> None:
    self._state, metrics = self._step(self._state, self._batch)
    self.loss = float(metrics["loss"])  # blocks until the step is done

  def matmul_flops(self) -> float:
    from annotanchor.training.flops import measure_matmul_flops
    return measure_matmul_flops()

  def facts(self) -> dict:
    import jax
    import jaxlib
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "jax_devices": [str(d) for d in jax.devices()],
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}


# ---------------------------------------------------------------------------------------
# The peer: Hugging Face LlamaForCausalLM in PyTorch eager.


def import_peer():
  """(torch, transformers), or SystemExit with the install command."""
  try:
    import torch
    import transformers
  except ImportError as e:
    raise SystemExit(
        f"The PyTorch peer needs torch and transformers ({e}); they are not part of "
        f"annotanchor's install. Install them with:\n  {PEER_INSTALL}\n"
        f"or run with --skip_peer to measure annotanchor alone.") from e
  return torch, transformers


class Peer:
  """LlamaForCausalLM, AdamW, one full step: forward, backward, clip, optimizer step."""

  name = "transformers LlamaForCausalLM (torch eager)"

  def __init__(self, shape: Shape, batch_np):
    torch, transformers = import_peer()
    self._torch = torch
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=shape.d_model, intermediate_size=shape.mlp_dim,
        num_hidden_layers=shape.num_layers, num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads, head_dim=shape.head_dim,
        vocab_size=shape.vocab_size, max_position_embeddings=shape.seq_len,
        tie_word_embeddings=False, rms_norm_eps=1e-6, attn_implementation="sdpa",
        torch_dtype=torch.float32)
    self._model = transformers.LlamaForCausalLM(config).to(torch.float32).train()
    # Same optimizer settings as OptimizerConfig() (constant LR: the schedule is not the cost).
    self._opt = torch.optim.AdamW(self._model.parameters(), lr=3e-4, betas=(0.9, 0.95),
                                  eps=1e-8, weight_decay=0.1)
    self._inputs = torch.from_numpy(batch_np["decoder_input_tokens"]).long()
    self._targets = torch.from_numpy(batch_np["decoder_target_tokens"]).long()
    self._weights = torch.from_numpy(batch_np["decoder_loss_weights"])
    self._vocab = shape.vocab_size
    self.loss = None

  def step(self) -> None:
    torch = self._torch
    logits = self._model(input_ids=self._inputs).logits.float()
    xent = torch.nn.functional.cross_entropy(
        logits.view(-1, self._vocab), self._targets.view(-1), reduction="none")
    loss = (xent * self._weights.view(-1)).sum() / self._weights.sum()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(self._model.parameters(), 1.0)
    self._opt.step()
    self._opt.zero_grad(set_to_none=True)
    self.loss = float(loss)

  def matmul_flops(self, size: int = 1024, repeats: int = 10) -> float:
    """FLOP/s of a [size, size] @ [size, size] float32 matmul (as measure_matmul_flops)."""
    torch = self._torch
    a = torch.ones(size, size, dtype=torch.float32)
    a @ a
    best = float("inf")
    for _ in range(repeats):
      start = time.perf_counter()
      a @ a
      best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best

  def facts(self) -> dict:
    torch, transformers = import_peer()
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "torch_num_threads": torch.get_num_threads(),
            "torch_num_interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available()}


# ---------------------------------------------------------------------------------------
# Timing.


def timed(runner, steps: int) -> float:
  """Seconds for `steps` consecutive steps."""
  start = time.perf_counter()
  for _ in range(steps):
    runner.step()
  return time.perf_counter() - start


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
  parser.add_argument("--warmup", type=int, default=2,
                      help="untimed steps before timing (ours: the first one compiles)")
  parser.add_argument("--repeats", type=int, default=5,
                      help="interleaved rounds (ours then peer); figures are medians")
  parser.add_argument("--quick", action="store_true",
                      help="tiny shape, 1 warmup, 2 steps, 2 rounds: smoke-tests the script")
  parser.add_argument("--skip_peer", action="store_true", help="measure annotanchor alone")
  parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "results", "train_throughput.json"))
  args = parser.parse_args(argv)
  shape = QUICK if args.quick else FULL
  if args.quick:
    args.steps, args.warmup, args.repeats = min(args.steps, 2), min(args.warmup, 1), 2
  if not args.skip_peer:
    import_peer()  # fail early, with the install command

  cfg = transformer_config(shape)
  flops_per_token = cfg.flops_per_token(shape.seq_len)
  tokens_per_step = shape.batch * shape.seq_len
  batch = make_batch(shape)
  load_start = os.getloadavg()

  runners = [Ours(shape, batch, train_steps=args.warmup + args.steps * args.repeats)]
  if not args.skip_peer:
    runners.append(Peer(shape, batch))

  warmup_s = {}
  for r in runners:
    warmup_s[r.name] = timed(r, args.warmup) if args.warmup else 0.0
  # Matmul rates, each framework's own, best of two measurements around the timed rounds.
  matmul = {r.name: [r.matmul_flops()] for r in runners}
  rounds = {r.name: [] for r in runners}
  for _ in range(args.repeats):
    for r in runners:
      rounds[r.name].append(timed(r, args.steps) / args.steps)
  for r in runners:
    matmul[r.name].append(r.matmul_flops())

  results = {}
  for r in runners:
    step_s = statistics.median(rounds[r.name])
    tokens_per_s = tokens_per_step / step_s
    rate = max(matmul[r.name])
    results[r.name] = {
        "step_s_median": round(step_s, 4),
        "step_s_rounds": [round(s, 4) for s in rounds[r.name]],
        "tokens_per_s": round(tokens_per_s, 1),
        "model_flops_per_s": round(tokens_per_s * flops_per_token, 1),
        "matmul_flops_per_s": round(rate, 1),
        "matmul_flops_per_s_measurements": [round(m, 1) for m in matmul[r.name]],
        "mfu": round(tokens_per_s * flops_per_token / rate, 4),
        "warmup_s": round(warmup_s[r.name], 2),
        "final_loss": r.loss,
        **r.facts(),
    }

  report = {
      "benchmark": "train_throughput",
      "shape": dataclasses.asdict(shape),
      "quick": args.quick,
      "dtype": "float32",
      "flops_per_token": flops_per_token,
      "tokens_per_step": tokens_per_step,
      "warmup_steps": args.warmup,
      "timed_steps_per_round": args.steps,
      "rounds": args.repeats,
      "statistic": "median over interleaved rounds (ours, peer, ours, peer, ...)",
      "machine": {
          "processor": platform.processor() or platform.machine(),
          "cpu_count": os.cpu_count(),
          "python": platform.python_version(),
          "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
          "loadavg_start": [round(x, 2) for x in load_start],
          "loadavg_end": [round(x, 2) for x in os.getloadavg()],
      },
      "results": results,
  }
  if len(runners) == 2:
    ours, peer = (results[r.name] for r in runners)
    report["ratio_tokens_per_s_ours_over_peer"] = round(
        ours["tokens_per_s"] / peer["tokens_per_s"], 3)
    report["ratio_rounds_ours_over_peer"] = [
        round(p / o, 3) for o, p in zip(ours["step_s_rounds"], peer["step_s_rounds"])]

  text = json.dumps(report, indent=2)
  print(text)
  if args.output:
    from annotanchor.atomic_files import write_atomic
    write_atomic(args.output, text + "\n")
  return report


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  main()
