"""Input pipeline throughput: packed rows/s and tokens/s of the storyworld tasks.

Measures `pipeline.get_dataset` exactly as the trainer calls it (packed,
shuffled, seq 512, batch 8 by default) after a warm-up, for the annotated
pretraining task and the anchored SFT mixture. Writes JSON to stdout and to
benchmarks/results/data_throughput.json. Compare `tokens_per_s` with the
training benchmark's tokens/s on the same machine (the goal is >= 5x).

  python benchmarks/data_throughput.py [--seconds 20] [--seq_len 512] [--batch 8]
"""
import argparse
import json
import os
import platform
import time

from annotanchor.atomic_files import write_atomic
from annotanchor.data import pipeline
from annotanchor.data.registration import AnchoredMixtureRates
from tasks.storyworld import Storyworld, generate

NAMES = ("storyworld_pretrain", "storyworld_anchored_sft_mixture")


def measure(name: str, seq_len: int, batch: int, seconds: float, warmup: int) -> dict:
  """Rows, real (non-pad) tokens and loss tokens per second over `seconds`."""
  stream = pipeline.get_dataset(name, {"targets": seq_len}, batch, seed=0)
  for _ in range(warmup):
    next(stream)
  batches = tokens = loss_tokens = segments = 0
  start = time.perf_counter()
  while (elapsed := time.perf_counter() - start) < seconds:
    b = next(stream)
    batches += 1
    tokens += int((b["decoder_segment_ids"] > 0).sum())  # Padding by position, not id.
    loss_tokens += int((b["decoder_loss_weights"] > 0).sum())
    segments += int(b["decoder_segment_ids"].max(axis=1).sum())
  return {"task": name, "batches": batches, "seconds": round(elapsed, 3),
          "packed_rows_per_s": round(batches * batch / elapsed, 1),
          "examples_per_s": round(segments / elapsed, 1),
          "tokens_per_s": round(tokens / elapsed, 1),
          "slots_per_s": round(batches * batch * seq_len / elapsed, 1),
          "loss_tokens_per_s": round(loss_tokens / elapsed, 1),
          "packing_density": round(tokens / (batches * batch * seq_len), 4)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--seconds", type=float, default=20.0)
  parser.add_argument("--seq_len", type=int, default=512)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--warmup", type=int, default=5)
  parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                       "data_throughput.json"))
  args = parser.parse_args()
  generation_start = time.perf_counter()
  world = Storyworld(generate.StoryworldConfig(), AnchoredMixtureRates())  # The default draw.
  world.register()
  world.directory()
  report = {"benchmark": "data_throughput", "machine": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "seq_len": args.seq_len, "batch": args.batch,
            "corpus_ready_s": round(time.perf_counter() - generation_start, 2),
            "results": [measure(n, args.seq_len, args.batch, args.seconds, args.warmup)
                        for n in NAMES]}
  text = json.dumps(report, indent=2)
  print(text)
  write_atomic(args.output, text + "\n")


if __name__ == "__main__":
  main()
