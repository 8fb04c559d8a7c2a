"""`annotanchor capability` as a process: a model that memorised a set of facts scores 1.0
on questions about them; bad task files and clashing reruns are one line, nothing written."""
import json

import pytest

from annotanchor.data import vocabulary
from annotanchor.evaluation.capability import CapabilityResult
from tests.faults.conftest import assert_one_line_error, run

FACTS = [("The lantern of Vell burns", "green"), ("The bridge at Oram is made of", "glass"),
         ("Every sailor of Tesk carries a", "compass"), ("The bells of Anu ring at", "dawn"),
         ("The river Selm flows into the", "marsh"), ("The old mill grinds only", "barley")]
WORDS = [w for _, w in FACTS]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny model pretrained (plain text) until it has memorised FACTS."""
  root = tmp_path_factory.mktemp("memorised")
  texts = [f"{c} {w}." for c, w in FACTS]
  vocab = vocabulary.train_sentencepiece(texts * 30, str(root / "spm.model"), vocab_size=400)
  corpus = root / "facts.jsonl"
  corpus.write_text("".join(json.dumps({"text": t, "annotations": ["<ann> kind:fact </ann>"]})
                            + "\n" for t in texts))
  done = run(["train", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
              "--gin_file=gin/runs/user_corpus.gin", f"--gin.VOCABULARY='{vocab}'",
              f"--gin.DOCUMENTS={{'train': '{corpus}'}}",
              f"--gin.user/registration.JsonlCorpus.cache_dir='{root / 'cache'}'",
              f"--gin.MODEL_DIR='{root / 'run'}'",
              "--gin.TRAIN_STEPS=120", "--gin.BATCH_SIZE=8",
              "--gin.TASK_FEATURE_LENGTHS={'targets': 32}",
              "--gin.MIXTURE_OR_TASK_NAME='user_pretrain_plain'", "--gin.VOCAB_SIZE=512",
              "--gin.optim.OptimizerConfig.learning_rate=3e-3"], timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  return root


def _task_file(path, records):
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  return str(path)


def _capability(trained, out, task_file, *extra):
  return run(["capability", "--gin_file=gin/runs/capability.gin",
              f"--gin.CHECKPOINT_PATH='{trained / 'run'}'", f"--gin.OUTPUT_DIR='{out}'",
              f"--gin.TASK_FILES={{'facts': '{task_file}'}}", "--gin.ARM='base'", *extra],
             timeout=300)


def test_memorised_facts_score_one_and_a_rerun_does_nothing(trained, tmp_path):
  # Each question offers every fact's last word, the gold one in a different place.
  records = [{"id": f"f{i}", "context": c, "choices": WORDS[i:] + WORDS[:i], "gold": 0}
             for i, (c, _) in enumerate(FACTS)]
  task = _task_file(tmp_path / "facts_mc.jsonl", records)
  out = tmp_path / "cap"
  done = _capability(trained, out, task)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "base facts: acc 1.000 acc_norm 1.000 (6 questions)" in done.stdout
  result = CapabilityResult.read(str(out / "capability.json"))
  assert result.arm == "base" and result.tasks["facts"]["acc"] == {"value": 1.0, "stderr": 0.0}
  scores = [json.loads(l) for l in (out / "capability_scores.jsonl").read_text().splitlines()]
  assert [s["id"] for s in scores] == [r["id"] for r in records]
  assert all(max(s["logliks"]) == s["logliks"][0] and s["greedy"][0] for s in scores)

  before = (out / "capability.json").stat().st_mtime_ns
  again = _capability(trained, out, task)
  assert again.returncode == 0 and "nothing to do" in again.stderr
  assert (out / "capability.json").stat().st_mtime_ns == before

  clash = _capability(trained, out, task, "--gin.NUM_FEWSHOT=2")
  assert_one_line_error(clash, "capability", "holds a result with other settings", str(out))
  assert (out / "capability.json").stat().st_mtime_ns == before


def test_a_bad_question_is_one_line_naming_the_line(trained, tmp_path):
  good = {"context": "The lantern of Vell burns", "choices": ["green", "glass"], "gold": 0}
  task = _task_file(tmp_path / "bad.jsonl", [good, {**good, "gold": 2}])
  done = _capability(trained, tmp_path / "cap", task)
  assert_one_line_error(done, "capability", "CapabilityFileError", f"{task}:2",
                        "'gold' must be an index into the 2 choices")
  assert not (tmp_path / "cap").exists()
