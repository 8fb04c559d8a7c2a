"""`python -m tasks.storyworld.build`: generate the storyworld corpus and vocabulary (cached).

  python -m tasks.storyworld.build --gin_file=gin/experiments/storyworld_data.gin

Prints the cache directory and what it holds. Every storyworld task builds the corpus
on first use anyway; this makes it an explicit, timed step (the demo's first).
"""
if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("tasks.storyworld.build")

import json
import os
import time
from typing import Sequence

from annotanchor import gin_utils
from tasks.storyworld import generate
from tasks.storyworld.tasks import configured


def build() -> dict:
  """Generates (or finds) the corpus of the configured Storyworld; returns a summary."""
  start = time.perf_counter()
  world = configured()
  directory = world.directory()
  counts = {}
  for name in sorted(os.listdir(directory)):
    if name.endswith(".jsonl"):
      with open(os.path.join(directory, name)) as f:
        counts[name] = sum(1 for _ in f)
  return {"directory": directory, "records": counts,
          "sft_entropy_bits_per_attribute": round(generate.sft_entropy_bits(world.config), 4),
          "seconds": round(time.perf_counter() - start, 1)}


def check_settings() -> None:
  """Builds the configured Storyworld (for `annotanchor.gin_check`): a bad draw is refused
  before the demo's first step."""
  configured()


def main(argv: Sequence[str] | None = None) -> int:
  def report(summary: dict) -> int:
    print(json.dumps(summary, indent=1))
    return 0
  return gin_utils.run_main("storyworld build", build, argv, doc=__doc__,
                            exit_code=report)
