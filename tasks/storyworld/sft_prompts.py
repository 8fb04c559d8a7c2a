"""`python -m tasks.storyworld.sft_prompts`: a share of the SFT prompts, to sample on-policy.

  python -m tasks.storyworld.sft_prompts --gin_file=gin/experiments/storyworld_data.gin \
    --gin.sft_prompts.output_dir="'runs/sft_prompts'" --gin.sft_prompts.count=256

Writes OUTPUT_DIR/prompts.jsonl, `{"id", "prompt"}` records for `annotanchor infer`'s
PROMPTS_FILE (the preference experiment samples them K times to make DPO pairs), and
OUTPUT_DIR/spm.model, the corpus's vocabulary, for the DPO run's VOCABULARY: the corpus
directory is named by a hash of the draw, which an experiment cannot know when it writes its
steps. The prompts are the first `count` distinct prompts of the training SFT file (all of
them when it has fewer), in its order, which the draw fixes.
"""
if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("tasks.storyworld.sft_prompts")

import json
import os
from typing import Sequence

import gin

from annotanchor import gin_utils
from annotanchor.atomic_files import write_atomic
from annotanchor.errors import is_count, require
from tasks.storyworld.tasks import configured

PROMPTS, VOCABULARY = "prompts.jsonl", "spm.model"


@gin.configurable("sft_prompts")
def write(*, output_dir: str = gin.REQUIRED, count: int = gin.REQUIRED) -> dict:
  """Writes OUTPUT_DIR/prompts.jsonl and OUTPUT_DIR/spm.model (module docstring); returns a
  summary.

  Raises:
    SettingError: `count` is not a positive int.
  """
  require(is_count(count), "sft_prompts.count", count, "a positive int")
  directory = configured().directory()
  with open(os.path.join(directory, "sft_train.jsonl")) as f:
    prompts = [json.loads(line)["prompt"] for line in f if line.strip()]
  # A prompt repeats in the set (74 distinct in the demo's 1000 examples): each is
  # sampled once, K times, so that its samples can be paired with each other.
  chosen = list(dict.fromkeys(prompts))[:count]
  write_atomic(os.path.join(output_dir, PROMPTS), "".join(
      json.dumps({"id": f"sft-train-{i}", "prompt": prompt}, ensure_ascii=False) + "\n"
      for i, prompt in enumerate(chosen)))
  with open(os.path.join(directory, VOCABULARY), "rb") as f:
    write_atomic(os.path.join(output_dir, VOCABULARY), f.read())
  return {"prompts": len(chosen), "output_dir": output_dir}


def check_settings() -> None:
  """Builds the configured Storyworld (for `annotanchor.gin_check`): a bad draw is refused
  before the experiment's first step."""
  configured()


def main(argv: Sequence[str] | None = None) -> int:
  def report(summary: dict) -> int:
    print(json.dumps(summary))
    return 0
  return gin_utils.run_main("storyworld sft_prompts", write, argv, doc=__doc__,
                            exit_code=report)
