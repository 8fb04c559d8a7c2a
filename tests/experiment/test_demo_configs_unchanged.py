"""The typed plan configures every step as the demo did before it (issue 30): the same seeds,
the same figures.

steps_before_the_typed_plan.json holds, for the demo, every experiment and the user-corpus
demo, each step's title, inputs and command line as the demo ran them before steps were
typed (`--gin_file=... --gin.NAME=VALUE`, recorded from that code). Each step of the typed
plan must have the same title and inputs, and its step.gin must parse to the same gin
configuration as that command line. The command lines name gin files, not their contents, so
a change to gin/runs/ or gin/models/ reaches both sides alike. One file they named is gone:
gin/experiments/storyworld_eval.gin, whose five `evaluate.*` bindings are now the storyworld
corpus's labeller, quality function and prompt constraints; the evaluate steps' command lines
hold those bindings in its place. One binding was renamed since (issue 31): the annotation
knobs are the corpus's fields, so the recorded `--gin.anchored_sft.mask_annotation=False`
reads `--gin.Storyworld.mask_annotation=False` (the same value, reaching the same
preprocessor argument), replaced by name and nothing else.
"""
import functools
import json
import os

import pytest

from tests.experiment.plans import parsed_config, plan_of

BEFORE = os.path.join(os.path.dirname(__file__), "steps_before_the_typed_plan.json")
OUT = "--gin.OUTPUT_DIR='runs/x'"
# tests/test_demo.py's tiny flags and the user-corpus test's, as they were recorded.
TINY_BINDINGS = {"Storyworld.cache_dir": "/tmp/c", "Storyworld.vocab_size": 512,
                 "VOCAB_SIZE": 512, "StoryworldConfig.num_pretrain_docs": 120,
                 "StoryworldConfig.num_sft_examples": 60,
                 "StoryworldConfig.num_eval_prompts": 4,
                 "TASK_FEATURE_LENGTHS": {"targets": 128}, "BATCH_SIZE": 8}
SMALL = ["--gin.MODEL_GIN='gin/models/tiny.gin'", "--gin.PRETRAIN_STEPS=4", "--gin.SFT_STEPS=2",
         "--gin.ANCHORED_SFT_STEPS=2", "--gin.NUM_SAMPLES=3", "--gin.MAX_NEW_TOKENS=16"]
CONFIGS = {
    "storyworld_demo": ["--gin_file=gin/experiments/storyworld_demo.gin", OUT],
    "tiny": ["--gin_file=gin/experiments/storyworld_demo.gin", "--gin.OUTPUT_DIR='/tmp/o'",
             *SMALL, "--gin.demo.plan.frontier_temperatures=[0.5]",
             f"--gin.demo.plan.bindings={TINY_BINDINGS!r}"],
    # The Makefile's sweep point at support 4.
    "sft_entropy_4": ["--gin_file=gin/experiments/sft_entropy_sweep.gin", "--gin.SFT_SUPPORT=4",
                      OUT],
    "model_size_tiny": ["--gin_file=gin/experiments/model_size_sweep.gin",
                        "--gin.MODEL_GIN='gin/models/tiny.gin'", OUT],
    "user_corpus": ["--gin_file=gin/experiments/user_corpus_demo.gin", OUT,
                    "--gin.VOCABULARY='/tmp/tok'", "--gin.DOCUMENTS={'train': '/tmp/docs.jsonl'}",
                    "--gin.SFT_FILES={'train': '/tmp/chat.jsonl'}",
                    "--gin.SFT_FORMAT='messages'", *SMALL, "--gin.NUM_EVAL_PROMPTS=4",
                    "--gin.demo.plan.bindings={'TASK_FEATURE_LENGTHS': {'targets': 128}, "
                    "'BATCH_SIZE': 8}"],
    **{e: [f"--gin_file=gin/experiments/{e}.gin", OUT] for e in (
        "sft_only_annotations", "no_annotation_sampling", "annotation_only_rate",
        "no_annotation_masking", "temperature_sweep", "sft_steps", "sft_equal_steps",
        "sft_two_values", "pretrain_lr", "model_size_sweep")},
}

with open(BEFORE) as f:
  _BEFORE = json.load(f)


@functools.lru_cache(maxsize=None)
def _config_before(index: int) -> str:
  return parsed_config(_BEFORE["argvs"][index])


@functools.lru_cache(maxsize=None)
def _config_of_step_gin(program: tuple, text: str, path: str) -> str:
  with open(path, "w") as f:
    f.write(text)
  return parsed_config([*program, f"--gin_file={path}"])


def test_every_recorded_configuration_is_compared():
  assert set(CONFIGS) == set(_BEFORE["plans"])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_step_is_configured_as_before(name, tmp_path):
  before = _BEFORE["plans"][name]
  plan = plan_of(CONFIGS[name])
  assert [(s.title, list(s.needs)) for s in plan] == [(b["title"], b["needs"]) for b in before]
  for step, recorded in zip(plan, before):
    path = str(tmp_path / "step.gin")
    assert _config_of_step_gin(step.program, step.gin_text(), path) == _config_before(
        recorded["argv"]), step.title
