"""Task files, shots and accuracy of multiple-choice capability, and its place in the report."""
import json

import gin
import numpy as np
import pytest

from annotanchor import evaluate as evaluate_mod
from annotanchor.evaluation import capability as cap
from annotanchor.evaluation.samples import write_samples
from tests.evaluation.conftest import make_samples


def ex(gold, *choices, context="c"):
  return cap.ChoiceExample(id=context, context=context, choices=tuple(choices), gold=gold)


def test_acc_and_acc_norm_by_hand():
  examples = [ex(1, "ab", "abcdefgh"),   # lls -2, -4: acc picks "ab"; per char -1 vs -0.5
              ex(0, "x", "y"),          # both pick "x"
              ex(1, "no", "ok")]        # a tie goes to the first choice: both wrong
  report = cap.accuracy(examples, [[-2.0, -4.0], [-1.0, -3.0], [-1.0, -1.0]])
  assert report["num_examples"] == 3
  assert report["acc"]["value"] == pytest.approx(1 / 3)
  assert report["acc_norm"]["value"] == pytest.approx(2 / 3)
  p = 2 / 3  # lm-eval-harness's sample standard error of a mean of 0/1 hits
  assert report["acc_norm"]["stderr"] == pytest.approx(np.std([1, 1, 0], ddof=1) / np.sqrt(3))
  assert report["acc_norm"]["stderr"] == pytest.approx(np.sqrt(p * (1 - p) / 2))


def test_one_question_has_no_stderr():
  assert cap.accuracy([ex(0, "a", "b")], [[0.0, -1.0]])["acc"] == {"value": 1.0, "stderr": None}


@pytest.mark.parametrize("record,needle", [
    ({"context": "a", "choices": ["x", "y"], "gold": 2}, "'gold' must be an index into the 2"),
    ({"context": "a", "choices": ["x", "y"], "gold": True}, "'gold' must be an index"),
    ({"context": "a", "choices": ["x"], "gold": 0}, "at least two non-empty strings"),
    ({"context": "a", "choices": ["x", ""], "gold": 0}, "at least two non-empty strings"),
    ({"context": "a", "choices": ["x", "x"], "gold": 0}, "repeats a choice"),
    ({"choices": ["x", "y"], "gold": 0}, "'context' must be a string"),
    (["a"], "expected a JSON object")])
def test_bad_records_name_the_line(tmp_path, record, needle):
  path = tmp_path / "t.jsonl"
  path.write_text(json.dumps({"context": "a", "choices": ["x", "y"], "gold": 0}) + "\n\n"
                  + json.dumps(record) + "\n")
  with pytest.raises(cap.CapabilityFileError, match=needle) as e:
    cap.read_choice_file(str(path))
  assert f"{path}:3" in str(e.value)


def test_files_ids_and_import_paths(tmp_path):
  path = tmp_path / "t.jsonl"
  rows = [{"context": "a", "choices": ["x", "y"], "gold": 1},
          {"id": "q", "context": "b", "choices": ["x", "y"], "gold": 0}]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  got = cap.read_choice_task(str(path))
  assert [(e.id, e.context, e.choices, e.gold) for e in got] == [
      ("1", "a", ("x", "y"), 1), ("q", "b", ("x", "y"), 0)]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows + rows[1:]))
  with pytest.raises(cap.CapabilityFileError, match="id 'q' occurs twice"):
    cap.read_choice_file(str(path))
  with pytest.raises(cap.CapabilityFileError, match="does not exist"):
    cap.read_choice_file(str(tmp_path / "missing.jsonl"))
  with gin.unlock_config():
    gin.parse_config(["import tasks.storyworld",
                      "configured_corpora.corpora = [@Storyworld()]",
                      "Storyworld.config = @StoryworldConfig()",
                      "Storyworld.mixture_rates = @AnchoredMixtureRates()"])
  try:
    probes = cap.read_choice_task("tasks.storyworld.probes:probe_records")
  finally:
    gin.clear_config()
  assert len(probes) > 100 and all(len(p.choices) == 4 for p in probes)


def test_shots_are_other_solved_questions_fixed_by_the_seed():
  examples = [ex(0, f"a{i}", "b", context=f"q{i}") for i in range(6)]
  shots = cap.pick_shots(examples, 2, 3, seed=5)
  assert len(shots) == 3 and examples[2] not in shots
  assert shots == cap.pick_shots(examples, 2, 3, seed=5)
  assert cap.fewshot_context(examples[2], shots[:1], " ", "\n\n") == (
      f"{shots[0].context} {shots[0].choices[0]}\n\nq2")
  assert cap.pick_shots(examples, 0, 0, seed=5) == []
  with pytest.raises(cap.UserError, match="num_fewshot=6 needs more than 6"):
    cap.pick_shots(examples, 0, 6, seed=5)


def _result(tmp_path, arm, acc, name=None):
  path = tmp_path / f"{name or arm}.json"
  accuracy = cap.accuracy([ex(0, "a", "b")] * 4, [[0.0, -1.0]] * acc + [[-1.0, 0.0]] * (4 - acc))
  path.write_text(cap.CapabilityResult(arm, {"checkpoint_path": arm}, {"facts": accuracy})
                  .to_json())
  return str(path)


@pytest.fixture
def sample_files(tmp_path):
  files = {}
  for arm in ("base", "sft", "anchored"):
    files[arm] = str(tmp_path / f"{arm}.jsonl")
    write_samples(files[arm], make_samples(arm, {"p0": ["a.", "b."], "p1": ["c.", "d."]}))
  return files


def test_the_report_carries_each_arms_capability(tmp_path, sample_files):
  files = {"base": _result(tmp_path, "base", 4), "anchored": _result(tmp_path, "anchored", 3)}
  rep = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      sample_files, str(tmp_path / "e"), capability_files=files, embedder=None, num_resamples=20,
      write_plots=False))
  assert list(rep["capability"]) == ["base", "anchored"]
  assert rep["capability"]["anchored"]["facts"]["acc"]["value"] == 0.75
  md = (tmp_path / "e" / "report.md").read_text()
  assert "facts acc |" in md.splitlines()[md.splitlines().index("## Per arm") + 2]
  assert "| anchored |" in md and "0.750 ± 0.250" in md and "## Capability (multiple choice)" in md


@pytest.mark.parametrize("files,needle", [
    (lambda t: {"ablation": _result(t, "ablation", 1)}, "names arm 'ablation', which no sample"),
    (lambda t: {"sft": str(t / "none.json")}, "does not exist")])
def test_bad_capability_files_fail_before_any_report(tmp_path, sample_files, files, needle):
  with pytest.raises(cap.CapabilityFileError, match=needle):
    evaluate_mod.evaluate(evaluate_mod.evaluate_config(
        sample_files, str(tmp_path / "e"), capability_files=files(tmp_path), embedder=None,
        num_resamples=20, write_plots=False))
  assert not (tmp_path / "e").exists()
