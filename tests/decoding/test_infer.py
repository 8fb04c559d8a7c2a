"""`annotanchor infer` end to end on a tiny random checkpoint saved with Orbax."""
import dataclasses
import json
import os

import gin
import pytest
import seqio

from annotanchor import infer as infer_lib
from annotanchor.data.prompt_files import PromptsError
from annotanchor.decoding.generate import DecodeSettings
from annotanchor.evaluation.samples import read_samples
from annotanchor.training.given_model import GivenModel
from tests import random_checkpoint

CFG = random_checkpoint.TINY_BYTES
PROMPTS = [{"id": "a", "prompt": "Tell a story."}, {"id": "b", "prompt": "A dragon."},
           {"prompt": "Sea."}]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  """MODEL_DIR/checkpoints/7/params, as the trainer lays it out."""
  return random_checkpoint.save(str(tmp_path_factory.mktemp("model")), CFG, step=7)


@pytest.fixture()
def prompts_file(tmp_path):
  path = tmp_path / "prompts.jsonl"
  path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
  return str(path)


def run(checkpoint, prompts_file, output_dir, **kwargs):
  """infer with these settings; kwargs that are DecodeSettings fields go to `decoding`."""
  fields = {f.name for f in dataclasses.fields(DecodeSettings)}
  decoding = DecodeSettings(**{"num_samples": 3, "max_new_tokens": 12,
                               **{k: v for k, v in kwargs.items() if k in fields}})
  settings = dict(checkpoint_path=checkpoint, output_dir=str(output_dir), arm="sft",
                  model=GivenModel(config=CFG), prompts_file=prompts_file, vocabulary=seqio.ByteVocabulary(),
                  decoding=decoding, batch_size=2,
                  mesh={"data": 4, "model": 2}, progress_bar=False)
  return infer_lib.infer(**{**settings, **{k: v for k, v in kwargs.items() if k not in fields}})


def test_cli_writes_samples_marks_the_run_skips_a_rerun_refuses_a_clash(
    checkpoint, prompts_file, tmp_path):
  out = tmp_path / "out"
  # `@module.fn()` references resolve inside gin files (dynamic registration), not in flags.
  vocab_gin = tmp_path / "bytes.gin"
  vocab_gin.write_text("from __gin__ import dynamic_registration\nimport seqio\n"
                       "from annotanchor import infer\n"
                       "infer.infer.vocabulary = @seqio.ByteVocabulary()\n")
  gin.clear_config()
  argv = ["--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/infer.gin",
          f"--gin.CHECKPOINT_PATH='{checkpoint}'", f"--gin.OUTPUT_DIR='{out}'",
          f"--gin.PROMPTS_FILE='{prompts_file}'", "--gin.ARM='sft'", "--gin.NUM_SAMPLES=2",
          "--gin.MAX_NEW_TOKENS=8", "--gin.VOCAB_SIZE=264", "--gin.MESH={'data': -1, 'model': 2}",
          f"--gin_file={vocab_gin}", "--gin.config.TransformerConfig.max_len=64"]
  def main(*extra):
    try:
      return infer_lib.main(argv + list(extra))
    finally:
      gin.clear_config()

  assert main() == 0
  samples = read_samples(str(out / "samples.jsonl"))
  assert [(s.prompt_id, s.sample_index) for s in samples] == [
      ("a", 0), ("a", 1), ("b", 0), ("b", 1), ("p3", 0), ("p3", 1)]
  assert all(s.arm == "sft" and s.annotation == "" for s in samples)
  assert samples[0].decoding["mode"] == "direct" and samples[0].decoding["max_new_tokens"] == 8
  assert (out / "samples.jsonl.done").exists() and not (out / "samples.jsonl.partial").exists()
  assert (out / "config.gin").exists()
  # A rerun with the same settings leaves the finished run alone; other settings are refused.
  mtime = os.stat(out / "samples.jsonl").st_mtime_ns
  assert main() == 0
  assert os.stat(out / "samples.jsonl").st_mtime_ns == mtime
  assert main("--gin.TEMPERATURE=0.5") == 2
  assert read_samples(str(out / "samples.jsonl")) == samples


def test_resume_keeps_finished_prompts_and_matches_an_uninterrupted_run(
    checkpoint, prompts_file, tmp_path):
  whole = read_samples(run(checkpoint, prompts_file, tmp_path / "whole"))
  # An interrupted run: prompt "a" finished, "b" half written, then a torn line.
  out = tmp_path / "resumed"
  out.mkdir()
  kept = [s for s in whole if s.prompt_id == "a"]
  kept = [type(s)(**{**s.__dict__, "response": f"kept {i}"}) for i, s in enumerate(kept)]
  lines = [s.to_json() for s in kept] + [whole[3].to_json(), whole[4].to_json()[:20]]
  (out / "samples.jsonl.partial").write_text("\n".join(lines))
  resumed = read_samples(run(checkpoint, prompts_file, out))
  assert [s.response for s in resumed[:3]] == ["kept 0", "kept 1", "kept 2"]  # Not redone.
  # Samples depend on (seed, prompt id, index) only, not on what shared their batch.
  assert resumed[3:] == whole[3:]


def test_unconditional_samples_ignore_the_prompt_but_not_its_id(checkpoint, prompts_file,
                                                                tmp_path):
  samples = read_samples(run(checkpoint, prompts_file, tmp_path / "none", prompt_format="none",
                             num_samples=2))
  assert {s.decoding["prompt_format"] for s in samples} == {"none"}
  # The model sees [BOS] only: other prompt texts under the same ids draw the same samples,
  # and each prompt id seeds its own draws.
  other = tmp_path / "other.jsonl"
  other.write_text("".join(json.dumps({**p, "prompt": f"Something else {i}."}) + "\n"
                           for i, p in enumerate(PROMPTS)))
  again = read_samples(run(checkpoint, str(other), tmp_path / "again", prompt_format="none",
                           num_samples=2, batch_size=1))
  assert [s.response for s in again] == [s.response for s in samples]
  assert len({s.response for s in samples}) == len(samples)


@pytest.mark.slow
def test_anchored_and_given_annotation_modes(checkpoint, prompts_file, tmp_path):
  anchored = read_samples(run(checkpoint, prompts_file, tmp_path / "anchored", mode="anchored",
                              max_annotation_tokens=6, annotation_temperature=0.7))
  for s in anchored:
    # A random model never closes the annotation: the sampler closes it after 6 tokens.
    assert s.annotation.startswith("<ann>") and s.annotation.endswith("</ann>")
    assert "<ann>" not in s.response
    assert s.decoding["annotation_temperature"] == 0.7
  given = read_samples(run(checkpoint, prompts_file, tmp_path / "given", mode="given_annotation",
                           given_annotation="<ann> genre:myth </ann>"))
  assert {s.annotation for s in given} == {"<ann> genre:myth </ann>"}
  empty = read_samples(run(checkpoint, prompts_file, tmp_path / "empty", mode="given_annotation"))
  assert {s.annotation for s in empty} == {"<ann> </ann>"}


def test_bad_prompts_are_named(checkpoint, tmp_path):
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
  with pytest.raises(PromptsError, match="bad.jsonl:2"):
    run(checkpoint, str(bad), tmp_path / "out")
  with pytest.raises(infer_lib.InferError, match="exactly one"):
    run(checkpoint, None, tmp_path / "out")
