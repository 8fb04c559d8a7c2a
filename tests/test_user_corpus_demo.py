"""The whole method on a user's own files in one command: `annotanchor demo` with
gin/experiments/user_corpus_demo.gin, a Hugging Face tokenizer directory, annotated
documents and chat SFT records (issue 30); and the held-out prompts it samples."""
import json
import os
import subprocess
import sys

import gin
import numpy as np
import pytest
import seqio

from annotanchor.data import registration
from tests import hf_tokenizer
from tests.xla_flags import xla_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The console script of the environment running the tests (.venv/bin/annotanchor).
ANNOTANCHOR = os.path.join(os.path.dirname(sys.executable), "annotanchor")
CATEGORIES = ("sea", "forest", "desert", "city")
PLACES = {"sea": "the waves rolled over the harbour", "forest": "the old trees stood still",
          "desert": "the sand was hot and dry", "city": "the streets were loud at night"}


def write_corpus(directory) -> dict:
  """A small corpus as a user would bring it: an HF tokenizer, 40 documents whose every
  paragraph is annotated with the document's category, 30 chat SFT records (an annotated
  assistant message each, 30 distinct prompts). Returns the demo's file macros."""
  directory.mkdir(parents=True, exist_ok=True)
  tokenizer = hf_tokenizer.build(directory / "tok")
  with open(directory / "docs.jsonl", "w") as f:
    for i in range(40):
      category = CATEGORIES[i % len(CATEGORIES)]
      paragraphs = [f"A story of the {category}: {PLACES[category]}.",
                    f"the cat saw it, day {i}."]
      f.write(json.dumps({"text": "\n\n".join(paragraphs), "category": category,
                          "annotations": [f"<ann> category:{category} </ann>"] * 2}) + "\n")
  with open(directory / "chat.jsonl", "w") as f:
    for i in range(30):
      category = CATEGORIES[(i * 3) % len(CATEGORIES)]
      messages = [{"role": "user", "content": f"Tell me a short story, number {i}."},
                  {"role": "assistant", "content": f"A story of the {category}: "
                   f"{PLACES[category]}.", "annotation": f"<ann> category:{category} </ann>"}]
      f.write(json.dumps({"messages": messages}) + "\n")
  return {"VOCABULARY": tokenizer, "DOCUMENTS": {"train": str(directory / "docs.jsonl")},
          "SFT_FILES": {"train": str(directory / "chat.jsonl")}}


def _gin_flags(files: dict) -> list[str]:
  return [f"--gin.{name}={value!r}" for name, value in files.items()]


# The demo at tiny sizes (tests/test_demo.py's tiny_flags, for a user corpus).
TINY = ["--gin.MODEL_GIN='gin/models/tiny.gin'", "--gin.PRETRAIN_STEPS=4",
        "--gin.SFT_STEPS=2", "--gin.ANCHORED_SFT_STEPS=2", "--gin.NUM_SAMPLES=3",
        "--gin.MAX_NEW_TOKENS=16", "--gin.NUM_EVAL_PROMPTS=4",
        "--gin.demo.plan.bindings={'TASK_FEATURE_LENGTHS': {'targets': 128}, 'BATCH_SIZE': 8}"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("user_demo")
  files = write_corpus(root / "corpus")
  argv = [ANNOTANCHOR, "demo", "--gin_file=gin/experiments/user_corpus_demo.gin",
          f"--gin.OUTPUT_DIR={str(root / 'out')!r}", *_gin_flags(files),
          "--gin.SFT_FORMAT='messages'", *TINY]
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags(), "PYTHONPATH": REPO,
         "ANNOTANCHOR_CACHE_DIR": str(root / "cache")}
  result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900, stdin=subprocess.DEVNULL)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  return root / "out", result


# The two tests of the process run are slow (about 6 minutes of a 2-core CPU): the default
# suite runs the same pipeline machinery as a process on storyworld (tests/test_demo.py),
# checks every step of this demo's plan against its recorded configuration in process
# (tests/experiment/test_demo_configs_unchanged.py), and the user corpus's parts below
# (held-out prompts, the vocabulary size) and in tests/data, tests/evaluation (label-free
# evaluation) and tests/faults (chat SFT, an HF tokenizer through train and infer).
@pytest.mark.slow
def test_one_command_runs_the_method_on_a_user_corpus(demo_run):
  out, result = demo_run
  report = json.loads((out / "report" / "report.json").read_text())
  assert list(report["arms"]) == ["base", "sft", "anchored"]
  assert report["num_prompts"] == 4 and report["num_samples"] == 3
  # Four trainings, three samplings, the report: no corpus build step.
  assert "[8/8] evaluate every arm" in result.stdout
  assert "build the corpus" not in result.stdout
  # Each arm sampled the held-out prompts: SFT prompts that no SFT run trained on.
  prompts = {arm: {json.loads(l)["prompt"]
                   for l in (out / "samples" / arm / "samples.jsonl").read_text().splitlines()}
             for arm in ("base", "sft", "anchored")}
  assert prompts["sft"] == prompts["anchored"] == prompts["base"]
  assert len(prompts["sft"]) == 4
  assert all(p.startswith("Tell me a short story, number ") for p in prompts["sft"])
  # The model's embedding followed the tokenizer (no VOCAB_SIZE given; tiny.gin's is 128):
  # its size rounded up to 128.
  size = len(json.loads((out.parent / "corpus" / "tok" / "tokenizer.json").read_text())
                        ["model"]["vocab"]) + 1  # <|endoftext|>, added.
  for run in ("pretrain_annotated", "pretrain_plain", "sft_standard", "sft_anchored"):
    step = max((d for d in os.listdir(out / run / "checkpoints") if d.isdigit()), key=int)
    meta = json.loads((out / run / "checkpoints" / step / "meta" / "metadata").read_text())
    assert meta["model"]["vocab_size"] == -(-size // 128) * 128 > 128, run
  # No labeller or quality checker is given: evaluate's label-free defaults measure
  # semantic entropy over embedding clusters of the responses, for every arm.
  assert report["settings"]["labeller"] == "EmbeddingClusterLabeller"
  assert report["settings"]["quality_source"] is None
  for arm, metrics in report["arms"].items():
    entropy = metrics["diversity"]["semantic_entropy"]["value"]
    assert isinstance(entropy, float) and entropy >= 0.0, (arm, metrics["diversity"])
  # Four steps of pretraining leave the base no more diverse than SFT, and the anchored
  # model's annotations unreadable: the report says its comparisons mean nothing, at the
  # top of report.md and on the terminal, and still writes them.
  kinds = {(c["kind"], c["arm"], c["metric"]) for c in report["caveats"]}
  assert ("base_not_more_diverse", "base", "semantic_entropy") in kinds
  assert ("malformed_annotations", "anchored", None) in kinds
  markdown = (out / "report" / "report.md").read_text()
  assert markdown.startswith("# Diversity report\n\n**Read with care:**")
  assert "gap_closed" in report["comparisons"]["semantic_entropy"]["anchored"]
  printed = result.stdout[result.stdout.index("Read with care:"):]
  assert all(c["message"] in printed for c in report["caveats"])

@pytest.mark.slow
def test_the_steps_receive_the_users_files(demo_run):
  out, result = demo_run
  config = (out / "sft_standard" / "step.gin").read_text().splitlines()
  assert "include 'gin/experiments/user_corpus_data.gin'" in config
  assert "SFT_FORMAT = 'messages'" in config and "NUM_EVAL_PROMPTS = 4" in config
  assert "MIXTURE_OR_TASK_NAME = 'user_sft'" in config
  assert not any(line.startswith("VOCAB_SIZE") for line in config)
  record = json.loads((out / "sft_standard" / "demo_step.json").read_text())
  assert record["command"] in result.stdout


# ---------------------------------------------------------------- the held-out prompts


def _register(tmp_path, files, **corpus):
  gin.clear_config()
  return registration.JsonlCorpus(
      name="heldout", vocabulary_path=files["VOCABULARY"], documents=files["DOCUMENTS"],
      sft=files["SFT_FILES"], sft_format="messages", cache_dir=str(tmp_path / "cache"),
      mixture_rates=registration.AnchoredMixtureRates(), **corpus).register()


def _examples(task: str, split: str = "train") -> list[dict]:
  dataset = seqio.get_mixture_or_task(task).get_dataset(
      sequence_length=None, split=split, shuffle=False, use_cached=False)
  return list(dataset.as_numpy_iterator())


def test_sft_prompts_held_out_are_left_out_of_sft(tmp_path):
  files = write_corpus(tmp_path / "corpus")
  names = _register(tmp_path, files, num_eval_prompts=5)
  assert "heldout_eval_prompts" in names
  held = _examples("heldout_eval_prompts", "test")
  assert len(held) == 5 and len({ex["id"] for ex in held}) == 5
  texts = {ex["prompt"].decode() for ex in held}
  # Deterministic, by the prompts alone.
  with open(files["SFT_FILES"]["train"]) as f:
    all_prompts = [json.loads(l)["messages"][0]["content"] for l in f]
  assert texts == {p for _, p in registration.hold_out_sft_prompts(all_prompts, 5)}
  vocab = seqio.get_mixture_or_task("heldout_sft").output_features["targets"].vocabulary
  for task in ("heldout_sft", "heldout_sft_anchored"):
    trained = [vocab.decode([int(t) for t in ex["targets"]]) for ex in _examples(task)]
    assert len(trained) == 25, task
    assert not any(p in text for text in trained for p in texts), task
  # The prompts task's targets: the model prompt, no loss.
  assert vocab.decode([int(t) for t in held[0]["targets"]]).startswith("<user> Tell me")
  assert not np.any(held[0]["targets_loss_weights"])


def test_an_eval_prompts_file_is_sampled_and_left_out_of_sft(tmp_path):
  files = write_corpus(tmp_path / "corpus")
  prompts = tmp_path / "prompts.jsonl"
  prompts.write_text(json.dumps({"prompt": "Tell me a short story, number 3."}) + "\n"
                     + json.dumps({"id": "new", "prompt": "A prompt of my own."}) + "\n")
  _register(tmp_path, files, eval_prompts=str(prompts), num_eval_prompts=5)
  held = _examples("heldout_eval_prompts", "test")
  assert [(ex["id"].decode(), ex["prompt"].decode()) for ex in held] == [
      ("p1", "Tell me a short story, number 3."), ("new", "A prompt of my own.")]
  assert len(_examples("heldout_sft")) == 29  # Number 3 is left out of SFT.


def test_prompt_response_pairs_are_held_out_by_their_prompt(tmp_path):
  files = write_corpus(tmp_path / "corpus")
  pairs = tmp_path / "pairs.jsonl"
  pairs.write_text("".join(json.dumps({"prompt": f"Question {i % 10}?", "response": "Yes.",
                                       "annotation": "<ann> category:sea </ann>"}) + "\n"
                           for i in range(30)))  # 10 distinct prompts, 3 copies each.
  gin.clear_config()
  registration.JsonlCorpus(name="heldout", vocabulary_path=files["VOCABULARY"],
                           sft={"train": str(pairs)}, cache_dir=str(tmp_path / "cache"),
                           num_eval_prompts=2).register()
  assert len(_examples("heldout_eval_prompts", "test")) == 2
  # Every copy of a held-out prompt is left out.
  assert len(_examples("heldout_sft")) == len(_examples("heldout_sft_anchored")) == 24


def test_without_held_out_prompts_nothing_changes(tmp_path):
  files = write_corpus(tmp_path / "corpus")
  names = _register(tmp_path, files)
  assert "heldout_eval_prompts" not in names
  assert len(_examples("heldout_sft")) == 30


def test_holding_out_more_than_half_is_refused(tmp_path):
  with pytest.raises(registration.EvalPromptsError,
                     match=r"num_eval_prompts=16 would hold out more than half of the 30 "):
    registration.hold_out_sft_prompts([f"p{i}" for i in range(30)] * 2, 16)


def test_vocabulary_size_follows_the_tokenizer(tmp_path):
  directory = hf_tokenizer.build(tmp_path / "tok")
  from annotanchor.data.vocabulary import load_vocabulary
  size = load_vocabulary(directory).vocab_size
  assert registration.vocabulary_size(directory) == -(-size // 128) * 128 >= size
  assert registration.vocabulary_size(directory, multiple_of=1) == size
