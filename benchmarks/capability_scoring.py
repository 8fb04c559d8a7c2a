"""Capability scoring throughput: questions/s of `ContinuationScorer` against scoring one row at a time.

Ours is the scorer `annotanchor capability` runs (annotanchor/decoding/choice_scoring.py):
every (context, choice) row of the task sorted by length, cut into calls of 32 rows padded
to a multiple of 32 tokens, jitted on a mesh of every local device. The naive version is
the loop a first implementation writes (and lm-eval-harness runs at batch size 1): the
same scorer at one row per forward pass (the same 32-token buckets, so it compiles as few
shapes). Both score the same questions with the same parameters and must agree (checked,
1e-4); compilation is excluded (one warm-up pass each). Calls alternate in rounds (ours, naive, ours, ...) so load
from other processes hits both alike; figures are medians over rounds.

Shape: the d=512, 8-layer network of the other benchmarks (vocab 8192, float32), random
parameters, and 64 four-choice questions of random byte text (context 96-160 bytes,
choices 8-24 bytes: about ARC/OBQA lengths), ByteVocabulary.

  python benchmarks/capability_scoring.py [--repeats 3]
  python benchmarks/capability_scoring.py --quick   # smoke test of the script

Writes JSON to stdout and (not with --quick) to benchmarks/results/capability_scoring.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

NETWORK = dict(d_model=512, num_layers=8, num_heads=8, num_kv_heads=8, head_dim=64,
               mlp_dim=1536, vocab_size=8192)
QUICK_NETWORK = dict(d_model=64, num_layers=2, num_heads=4, num_kv_heads=4, head_dim=16,
                     mlp_dim=128, vocab_size=264)


def questions(count: int, context_bytes=(96, 160), choice_bytes=(8, 24),
              seed: int = 0) -> list[tuple[str, list[str]]]:
  """`count` random four-choice questions, lengths drawn from the [low, high) ranges."""
  import numpy as np
  rng = np.random.default_rng(seed)
  text = lambda lo, hi: "".join(chr(c) for c in rng.integers(97, 123, rng.integers(lo, hi)))
  return [(text(*context_bytes), [" " + text(*choice_bytes) for _ in range(4)])
          for _ in range(count)]


def build(network: dict, rows_per_call: int):
  """(params on the mesh, the scorer, the one-row scorer) for a random network of that shape."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp

  from annotanchor.decoding.choice_scoring import ContinuationScorer
  from annotanchor.model.config import TransformerConfig
  from annotanchor.model.transformer import Decoder
  from annotanchor.training import partitioning

  config = TransformerConfig(**network, max_len=512)
  mesh = partitioning.make_mesh({"data": -1})
  boxed = Decoder(config).init(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))["params"]
  _, shardings = partitioning.sharded_abstract(jax.eval_shape(lambda: boxed), mesh)
  params = jax.device_put(nn.meta.unbox(boxed), shardings)
  scorer = ContinuationScorer(config, mesh, shardings, rows_per_call=rows_per_call)
  # One row per call needs a one-device mesh (rows are split over the batch axes).
  one_mesh = partitioning.make_mesh({"data": 1}, jax.devices()[:1])
  _, one_shardings = partitioning.sharded_abstract(jax.eval_shape(lambda: boxed), one_mesh)
  one_params = jax.device_put(nn.meta.unbox(boxed), one_shardings)
  one_row = ContinuationScorer(config, one_mesh, one_shardings, rows_per_call=1)
  return params, scorer, one_params, one_row


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--questions", type=int, default=64)
  parser.add_argument("--rows_per_call", type=int, default=32,
                      help="our scorer's rows per forward pass (capability.rows_per_call)")
  parser.add_argument("--quick", action="store_true", help="tiny shape, one round, no file")
  args = parser.parse_args(argv)
  import jax
  import numpy as np
  import seqio

  network = QUICK_NETWORK if args.quick else NETWORK
  count, repeats = (4, 1) if args.quick else (args.questions, args.repeats)
  vocab = seqio.ByteVocabulary()
  pairs = [(c, x) for c, choices in questions(count) for x in choices]
  params, scorer, one_params, one_row = build(network, args.rows_per_call)

  fast = lambda: [s.loglik for s in scorer.score(params, vocab, pairs)]
  slow = lambda: [s.loglik for s in one_row.score(one_params, vocab, pairs)]
  ours_scores, naive = fast(), slow()  # Warm-up: every shape compiles here.
  worst = float(np.max(np.abs(np.array(ours_scores) - np.array(naive))))
  if worst > 1e-4 * max(1.0, float(np.max(np.abs(naive)))):
    raise SystemExit(f"the scorers disagree: max |difference| {worst}")
  rounds = {"ours": [], "naive": []}
  for _ in range(repeats):
    for name, fn in (("ours", fast), ("naive", slow)):
      start = time.perf_counter()
      fn()
      rounds[name].append(time.perf_counter() - start)
  seconds = {k: statistics.median(v) for k, v in rounds.items()}
  result = {
      "benchmark": "capability_scoring", "network": network, "questions": count,
      "choices_per_question": 4, "rows": len(pairs), "rows_per_call": args.rows_per_call,
      "devices": [str(d) for d in jax.devices()], "machine": platform.processor() or
      platform.machine(), "cpu_count": os.cpu_count(),
      "questions_per_s": {k: round(count / s, 2) for k, s in seconds.items()},
      "speedup_vs_naive": round(seconds["naive"] / seconds["ours"], 2),
      "round_seconds": {k: [round(x, 3) for x in v] for k, v in rounds.items()},
      "max_abs_loglik_difference": worst,
      "command": "python benchmarks/capability_scoring.py " + " ".join(argv or sys.argv[1:]),
  }
  print(json.dumps(result, indent=1))
  if not args.quick:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                        "capability_scoring.json")
    with open(path, "w") as f:
      f.write(json.dumps(result, indent=1) + "\n")
  return result


if __name__ == "__main__":
  main()
