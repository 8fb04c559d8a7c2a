"""Sampling throughput: our KV-cache sampler, the same sampler without a cache, and HF generate().

Ours is `DecoderSampler` (jitted `temperature_sample` over the Decoder's KV cache) on a
mesh of every local device. The naive version is the same sampler with
`use_cache=False`: every new token reruns the full forward pass over the whole token
buffer. The peer is `transformers.LlamaForCausalLM.generate()` in PyTorch eager with its
KV cache, on the same shape (untied embeddings, sdpa attention). All three draw 64 samples
(64 prompts of 16 random tokens, one sample each) of exactly 128 new tokens by plain
temperature-1 sampling (no EOS, no top-k/top-p), in float32.

tokens/s = samples * new tokens / wall seconds of one call, compilation excluded (one
warm-up call each). Per decode step (`per_decode_step` in the JSON), ours and the peer are
also timed drawing one token (the prefill and one draw, no decode step), so a step's ms =
(seconds of the 128-token call - seconds of the 1-token call) / 127. For ours: MFU = the
step's model FLOPs (2 per weight per row, plus the attention products over the written
slots) / XLA's own float32 matmul rate, measured in the same run as
benchmarks/train_throughput.py measures it; bandwidth = bytes read per step (every weight
but the embedding table, and the whole K and V cache as large as the growing cache is at
that step: `model_sampler.cache_sizes`) / the step's seconds, beside XLA's own rate of
reading a 256 MiB float32 array (a jitted sum), measured in the same run. The no-cache run draws only --nocache_new_tokens (default 16) new tokens,
so its buffer is 32 slots rather than 144: its figure at 128 tokens would be lower still,
and the ratio against it is a lower bound. Calls are timed in interleaved rounds (ours, no-cache, peer, ours,
...) so that load from other processes hits all alike; figures are medians over rounds.

  python benchmarks/decode_throughput.py [--repeats 3]
  python benchmarks/decode_throughput.py --quick --skip_peer   # smoke test of the script

The peer needs PyTorch and transformers, which are not part of annotanchor's install:

  pip install torch==2.13.0 transformers==5.24.0

Writes JSON to stdout and (not with --quick) to benchmarks/results/decode_throughput.json.
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


# The d=512, 8-layer shape of the training benchmark, as TransformerConfig fields.
NETWORK = dict(d_model=512, num_layers=8, num_heads=8, num_kv_heads=8, head_dim=64,
               mlp_dim=1536, vocab_size=8192)


@dataclasses.dataclass(frozen=True)
class Shape:
  network: dict
  samples: int = 64
  prompt_len: int = 16
  new_tokens: int = 128

  @property
  def vocab_size(self) -> int:
    return self.network["vocab_size"]


def step_costs(shape: Shape) -> dict:
  """Model FLOPs and bytes read per decode step, averaged over the call's decode steps.

  Step s (1 .. new_tokens - 1) feeds slot prompt_len + s - 1: it attends to prompt_len + s
  written slots and reads the whole cache of its phase (model_sampler.cache_sizes).
  """
  from annotanchor.decoding.model_sampler import cache_sizes
  from annotanchor.model.config import TransformerConfig
  net, rows = shape.network, shape.samples
  config = TransformerConfig(**net)
  prompt, steps = shape.prompt_len, range(1, shape.new_tokens)
  sizes = cache_sizes(prompt, prompt + shape.new_tokens - 1)
  read_slots = [min(n for n in sizes if s <= n - prompt) for s in steps]
  written_slots = [prompt + s for s in steps]
  weights = config.num_params(include_embeddings=False) + net["vocab_size"] * net["d_model"]
  # Scores and values: 2 FLOPs per multiply-add, two products per head and slot.
  per_slot = 4 * rows * net["num_layers"] * net["num_heads"] * net["head_dim"]
  kv_per_slot = 2 * net["num_layers"] * rows * net["num_kv_heads"] * net["head_dim"] * 4
  mean = lambda xs: sum(xs) / len(xs)
  return {"model_flops": 2.0 * rows * weights + per_slot * mean(written_slots),
          "weight_bytes": 4.0 * weights, "kv_bytes": kv_per_slot * mean(read_slots),
          "mean_cache_slots_read": mean(read_slots),
          "mean_slots_written": mean(written_slots)}


def read_rate(mib: int = 256, repeats: int = 10) -> float:
  """Bytes/s at which a jitted float32 sum reads `mib` MiB (XLA's own streaming rate)."""
  import jax
  import jax.numpy as jnp
  x = jnp.ones((mib * 2**20 // 4,), jnp.float32)
  total = jax.jit(jnp.sum)
  total(x).block_until_ready()
  best = min(timed(lambda: total(x).block_until_ready()) for _ in range(repeats))
  return x.nbytes / best


FULL = Shape(NETWORK)
QUICK = Shape(dict(d_model=64, num_layers=2, num_heads=4, num_kv_heads=4, head_dim=16,
                   mlp_dim=128, vocab_size=256), samples=8, prompt_len=4, new_tokens=8)


def make_prompts(shape: Shape, seed: int = 0):
  import numpy as np
  rng = np.random.default_rng(seed)
  return rng.integers(3, shape.vocab_size, (shape.samples, shape.prompt_len), dtype=np.int32)


def ours(shape: Shape, use_cache: bool):
  """A zero-argument callable that samples once and waits for the result."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  import numpy as np

  from annotanchor.decoding.model_sampler import DecoderSampler
  from annotanchor.decoding.sampler import SamplingConfig
  from annotanchor.model.config import TransformerConfig
  from annotanchor.model.transformer import Decoder

  config = TransformerConfig(**shape.network, max_len=shape.prompt_len + shape.new_tokens)
  sampler = DecoderSampler(config, use_cache=use_cache)
  params = jax.jit(lambda: nn.meta.unbox(Decoder(config).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32))["params"]),
                   out_shardings=sampler.param_shardings)()
  prompts = make_prompts(shape)
  lengths = np.full((shape.samples,), shape.prompt_len, np.int32)
  sampling = SamplingConfig(max_new_tokens=shape.new_tokens, temperature=1.0, eos_id=-1)
  calls = [0]

  def call():
    calls[0] += 1
    out = sampler(params, prompts, lengths, jax.random.key(calls[0]), sampling)
    jax.block_until_ready(out)
    assert int(jnp.min(out.lengths)) == shape.new_tokens
  return call


def peer(shape: Shape):
  """HF LlamaForCausalLM.generate() on the same shape, sampling, KV cache on."""
  import torch
  import transformers

  net = shape.network
  config = transformers.LlamaConfig(
      vocab_size=net["vocab_size"], hidden_size=net["d_model"], intermediate_size=net["mlp_dim"],
      num_hidden_layers=net["num_layers"], num_attention_heads=net["num_heads"],
      num_key_value_heads=net["num_kv_heads"], head_dim=net["head_dim"],
      max_position_embeddings=shape.prompt_len + shape.new_tokens, tie_word_embeddings=False,
      attn_implementation="sdpa", pad_token_id=0, bos_token_id=None, eos_token_id=None)
  torch.manual_seed(0)
  model = transformers.LlamaForCausalLM(config).eval()
  prompts = torch.as_tensor(make_prompts(shape), dtype=torch.long)
  mask = torch.ones_like(prompts)

  def call():
    with torch.inference_mode():
      out = model.generate(prompts, attention_mask=mask, do_sample=True, temperature=1.0,
                           top_k=0, top_p=1.0, max_new_tokens=shape.new_tokens,
                           min_new_tokens=shape.new_tokens, use_cache=True)
    assert out.shape == (shape.samples, shape.prompt_len + shape.new_tokens)
  return call, {"torch": torch.__version__, "transformers": transformers.__version__,
                "torch_threads": torch.get_num_threads()}


def per_decode_step(shape: Shape, results: dict, matmul_rate: float, read_rate: float) -> dict:
  """ms per decode step of each contender timed with one token too; MFU and bandwidth of ours.

  A step's seconds = (the full call's median - the one-token call's median) / (new_tokens - 1).
  """
  steps = {}
  for name in ("ours", "hf_generate"):
    if f"{name}_one_token" not in results:
      continue
    seconds = (results[name]["seconds_median"] - results[f"{name}_one_token"]["seconds_median"]
               ) / (shape.new_tokens - 1)
    steps[name] = {"ms": round(seconds * 1e3, 3)}
  if "ours" in steps:
    costs = step_costs(shape)
    seconds = steps["ours"]["ms"] / 1e3
    bytes_read = costs["weight_bytes"] + costs["kv_bytes"]
    steps["ours"].update({
        "model_flops": costs["model_flops"],
        "xla_matmul_flops_per_s": round(matmul_rate, 1),
        "mfu": round(costs["model_flops"] / seconds / matmul_rate, 4),
        "bytes_read": bytes_read, "weight_bytes": costs["weight_bytes"],
        "kv_cache_bytes": costs["kv_bytes"],
        "mean_cache_slots_read": round(costs["mean_cache_slots_read"], 2),
        "mean_slots_written": round(costs["mean_slots_written"], 2),
        "bytes_per_s": round(bytes_read / seconds, 1),
        "xla_read_bytes_per_s": round(read_rate, 1),
        "fraction_of_read_rate": round(bytes_read / seconds / read_rate, 4)})
  return steps


def timed(call) -> float:
  start = time.perf_counter()
  call()
  return time.perf_counter() - start


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--repeats", type=int, default=3, help="timed rounds")
  parser.add_argument("--quick", action="store_true", help="tiny shape (smoke test)")
  parser.add_argument("--skip_peer", action="store_true")
  parser.add_argument("--skip_nocache", action="store_true")
  parser.add_argument("--nocache_new_tokens", type=int, default=16,
                      help="new tokens of the no-cache run (it reruns the whole buffer per "
                           "token: at 128 it takes most of an hour on a 2-core CPU)")
  parser.add_argument("--output", default=None,
                      help="default results/decode_throughput.json (none with --quick)")
  args = parser.parse_args(argv)
  shape = QUICK if args.quick else FULL

  import jax
  from annotanchor.training.flops import measure_matmul_flops
  one_token = dataclasses.replace(shape, new_tokens=1)
  contenders = {"ours": ours(shape, use_cache=True),
                "ours_one_token": ours(one_token, use_cache=True)}
  if not args.skip_nocache:
    nocache_shape = dataclasses.replace(shape, new_tokens=min(args.nocache_new_tokens,
                                                              shape.new_tokens))
    contenders["ours_no_cache"] = ours(nocache_shape, use_cache=False)
  versions = {"jax": jax.__version__}
  if not args.skip_peer:
    try:
      contenders["hf_generate"], peer_versions = peer(shape)
      contenders["hf_generate_one_token"], _ = peer(one_token)
      versions.update(peer_versions)
    except ImportError as e:
      print(f"peer skipped ({e}); install it with: {PEER_INSTALL}", file=sys.stderr)
  # Load from other processes distorts the ratio (torch's threads suffer more from
  # oversubscription than XLA's): the 1-minute load average is kept beside the figures.
  load = {"before": os.getloadavg()[0]}
  for call in contenders.values():  # Warm-up: compilation, allocation.
    call()
  # XLA's matmul and read rates, best of two measurements around the timed rounds (as
  # train_throughput.py measures the matmul rate).
  rates = {"matmul": [measure_matmul_flops()], "read": [read_rate()]}
  seconds = {name: [] for name in contenders}
  for _ in range(args.repeats):
    for name, call in contenders.items():
      seconds[name].append(timed(call))
  rates["matmul"].append(measure_matmul_flops())
  rates["read"].append(read_rate())
  load["after"] = os.getloadavg()[0]

  new_tokens = {name: (1 if name.endswith("_one_token") else shape.new_tokens)
                for name in contenders}
  if "ours_no_cache" in contenders:
    new_tokens["ours_no_cache"] = nocache_shape.new_tokens
  results = {name: {"new_tokens": new_tokens[name], "seconds_median": statistics.median(s),
                    "seconds": s,
                    "tokens_per_second": shape.samples * new_tokens[name] / statistics.median(s)}
             for name, s in seconds.items()}
  ratios = {f"ours_over_{name}": results["ours"]["tokens_per_second"] /
            results[name]["tokens_per_second"] for name in results
            if name != "ours" and not name.endswith("_one_token")}
  report = {"benchmark": "decode_throughput", "shape": dataclasses.asdict(shape),
            "results": results, "ratios": ratios,
            "per_decode_step": per_decode_step(shape, results, max(rates["matmul"]),
                                               max(rates["read"])),
            "rate_measurements": {"xla_matmul_flops_per_s": rates["matmul"],
                                  "xla_read_bytes_per_s": rates["read"]},
            "devices": [str(d) for d in jax.devices()], "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "load_average_1min": load, "versions": versions,
            "repeats": args.repeats,
            "quick": args.quick}
  text = json.dumps(report, indent=2)
  print(text)
  output = args.output or (None if args.quick else os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "results", "decode_throughput.json"))
  if output:
    from annotanchor.atomic_files import write_atomic
    write_atomic(output, text + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
