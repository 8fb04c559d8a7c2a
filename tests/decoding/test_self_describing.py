"""A checkpoint describes itself: `infer` and `serve` need only CHECKPOINT_PATH.

A tiny anchored-SFT run on storyworld is trained once; then, as processes:
- `infer` with only CHECKPOINT_PATH and a prompts file draws exactly the samples of the
  fully specified command (model gin, data gin, task);
- `serve` with only CHECKPOINT_PATH answers a seeded request as the fully specified
  server does;
- a template or a model field that contradicts the checkpoint is refused in one line
  naming it, as is a MODEL_OVERRIDES field that is no TransformerConfig field; one that
  only changes how the weights run (max_len) applies.
"""
import json
import os
import signal
import subprocess
import urllib.request

import pytest

from annotanchor.evaluation.samples import read_samples
from tests.faults.conftest import ANNOTANCHOR, ENV, REPO, assert_one_line_error, run

DATA = "--gin_file=gin/experiments/storyworld_data.gin"
TINY = "--gin_file=gin/models/tiny.gin"
SAMPLING = ["--gin.ARM='anchored'", "--gin.MODE='anchored'", "--gin.NUM_SAMPLES=2",
            "--gin.MAX_NEW_TOKENS=8", "--gin.DecodeSettings.max_annotation_tokens=8"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("anchored") / "run")
  done = run(["train", TINY, "--gin_file=gin/runs/pretrain.gin", DATA, f"--gin.MODEL_DIR='{path}'",
              "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=2", "--gin.TASK_FEATURE_LENGTHS={'targets': 64}",
              "--gin.MIXTURE_OR_TASK_NAME='storyworld_sft_anchored'"], timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  return path


def _infer(model_dir, out, *flags):
  return run(["infer", "--gin_file=gin/runs/infer.gin", f"--gin.CHECKPOINT_PATH='{model_dir}'",
              f"--gin.OUTPUT_DIR='{out}'", *SAMPLING, *flags], timeout=300)


@pytest.fixture(scope="module")
def full_samples(model_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("full")
  done = _infer(model_dir, out, TINY, DATA, "--gin.MIXTURE_OR_TASK_NAME='storyworld_eval_prompts'")
  assert done.returncode == 0, done.stderr[-3000:]
  return read_samples(str(out / "samples.jsonl"))


@pytest.fixture(scope="module")
def prompts_file(full_samples, tmp_path_factory):
  """The task's prompts under their ids, as a PROMPTS_FILE."""
  path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
  seen = {}
  for s in full_samples:
    seen.setdefault(s.prompt_id, s.prompt)
  path.write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in seen.items()))
  return str(path)


def test_infer_with_only_the_checkpoint_draws_the_fully_specified_samples(
    model_dir, full_samples, prompts_file, tmp_path):
  done = _infer(model_dir, tmp_path / "minimal", f"--gin.PROMPTS_FILE='{prompts_file}'")
  assert done.returncode == 0, done.stderr[-3000:]
  minimal = read_samples(str(tmp_path / "minimal" / "samples.jsonl"))
  assert [(s.prompt_id, s.annotation, s.response) for s in minimal] == [
      (s.prompt_id, s.annotation, s.response) for s in full_samples]


def test_a_template_other_than_the_checkpoints_is_refused_naming_it(model_dir, prompts_file,
                                                                    tmp_path):
  other = tmp_path / "other_template.gin"  # A new @reference needs a gin file.
  other.write_text("from __gin__ import dynamic_registration\n"
                   "from annotanchor import infer\nfrom annotanchor.data import prompts\n"
                   "infer.infer.template = @prompts.PromptTemplate()\n"
                   "prompts.PromptTemplate.user_marker = '<human>'\n")
  result = _infer(model_dir, tmp_path / "other", f"--gin.PROMPTS_FILE='{prompts_file}'",
                  f"--gin_file={other}")
  assert_one_line_error(result, "infer", "PromptTemplate.user_marker='<human>'",
                        "contradicts the checkpoint", "'<user>'")
  assert not os.path.exists(tmp_path / "other" / "samples.jsonl")


def test_a_model_field_other_than_the_checkpoints_is_refused_naming_it(model_dir, tmp_path):
  result = _infer(model_dir, tmp_path / "other", TINY, DATA,
                  "--gin.MIXTURE_OR_TASK_NAME='storyworld_eval_prompts'",
                  "--gin.config.TransformerConfig.num_layers=3")
  assert_one_line_error(result, "infer", "TransformerConfig.num_layers=3",
                        "trained with num_layers=2")


def test_model_overrides_set_a_run_setting_over_the_checkpoint(model_dir, full_samples,
                                                               prompts_file, tmp_path):
  done = _infer(model_dir, tmp_path / "over", f"--gin.PROMPTS_FILE='{prompts_file}'",
                "--gin.MODEL_OVERRIDES={'max_len': 128}")
  assert done.returncode == 0, done.stderr[-3000:]
  config = (tmp_path / "over" / "config.gin").read_text()
  assert "MODEL_OVERRIDES = {'max_len': 128}" in config
  samples = read_samples(str(tmp_path / "over" / "samples.jsonl"))
  assert len(samples) == len(full_samples)


@pytest.mark.parametrize("overrides, message", [
    ("{'max_lenn': 128}", "SettingError: MODEL_OVERRIDES={'max_lenn': 128}: 'max_lenn' is no "
                          "TransformerConfig field (did you mean 'max_len'?)"),
    ("{'num_layers': 3}", "CheckpointSettingsError: MODEL_OVERRIDES['num_layers']=3 "
                          "contradicts the checkpoint, trained with num_layers=2"),
])
def test_a_bad_model_override_is_one_line_naming_it(model_dir, prompts_file, tmp_path,
                                                    overrides, message):
  result = _infer(model_dir, tmp_path / "bad", f"--gin.PROMPTS_FILE='{prompts_file}'",
                  f"--gin.MODEL_OVERRIDES={overrides}")
  assert_one_line_error(result, "infer", message)
  assert not os.path.exists(tmp_path / "bad" / "samples.jsonl")


def test_a_model_binding_without_a_model_file_is_refused_not_ignored(model_dir):
  """Only a gin/models/ file hands a TransformerConfig to the command: a field bound
  without one would change nothing, so it is refused (MODEL_OVERRIDES is the way)."""
  binding = "--gin.config.TransformerConfig.max_len=128"
  result = run(["serve", "--gin_file=gin/runs/serve.gin",
                f"--gin.CHECKPOINT_PATH='{model_dir}'", binding])
  assert_one_line_error(result, "serve", binding)


def _serve_completion(model_dir, *flags):
  """Starts `serve`, asks one seeded completion, stops it with SIGTERM; the text."""
  server = subprocess.Popen(
      [ANNOTANCHOR, "serve", "--gin_file=gin/runs/serve.gin", f"--gin.CHECKPOINT_PATH='{model_dir}'",
       "--gin.PORT=0", *flags], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  try:
    line = server.stdout.readline()  # "serving NAME on http://HOST:PORT/v1"
    assert line.startswith("serving"), server.stderr.read()[-3000:] if not line else line
    url = line.split(" on ")[1].strip()
    body = json.dumps({"model": "annotanchor", "prompt": "Tell a story.", "max_tokens": 8,
                       "seed": 3, "annotation": "return"}).encode()
    request = urllib.request.Request(f"{url}/completions", body,
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
      text = json.load(response)["choices"][0]["text"]
  finally:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
  assert server.returncode == 0
  return text


# Slow (33 s of CPU): serve restores through restore_for_sampling, the function the infer
# test above checks with only the checkpoint; serve's own start-up and answers are in the
# default run (tests/faults/test_annotate_serve_faults.py).
@pytest.mark.slow
def test_serve_with_only_the_checkpoint_answers_as_the_fully_specified_server(model_dir):
  vocab = os.path.join(model_dir, "vocabulary")
  (copy,) = os.listdir(vocab)
  full = _serve_completion(model_dir, TINY, DATA, f"--gin.VOCABULARY_PATH='{vocab}/{copy}'")
  assert _serve_completion(model_dir) == full
