"""evaluate's settings become one typed EvaluateConfig, each choice resolved once: a bad
value is one SettingError naming `evaluate.SETTING`, before any sample file is read."""
import re

import gin
import pytest

from annotanchor import evaluate as evaluate_mod
from annotanchor.errors import SettingError
from annotanchor.evaluation import config as evaluation_config
from annotanchor.evaluation.clusters import EmbeddingClusterLabeller
from annotanchor.evaluation.labels import AnnotationTagLabeller, FunctionLabeller


def embed(texts):
  raise AssertionError("building the config embeds nothing")


def score(response):
  return {"ok": 1.0}


@pytest.mark.parametrize("setting,value,needle", [
    ("labeller", 3, "evaluate.labeller=3: expected"),
    ("labeller", "no_colon_or_dot", "is not an import path"),
    ("embedder", "bert", "evaluate.embedder='bert': expected"),
    ("quality_fn", 0.5, "evaluate.quality_fn=0.5: expected"),
    ("prompt_constraints", 7, "evaluate.prompt_constraints=7: expected"),
    ("unknown", "skip", "evaluate.unknown='skip': expected"),
    ("distinct_ns", (0,), "evaluate.distinct_ns=(0,): expected"),
    ("num_resamples", 0, "evaluate.num_resamples=0: expected"),
    ("confidence", 1.5, "evaluate.confidence=1.5: expected"),
    ("sft_arm", "base", "arms must differ"),
    ("quality_inputs", ("score",), "evaluate.quality_inputs=('score',): expected"),
])
def test_a_bad_setting_is_refused_naming_it(tmp_path, setting, value, needle):
  settings = {"embedder": None, "quality_fn": score, setting: value}
  with pytest.raises(SettingError, match=re.escape(needle)):
    evaluate_mod.evaluate_config(["missing.jsonl"], str(tmp_path / "e"), **settings)


def test_each_choice_is_resolved_once_into_its_type(tmp_path):
  config = evaluate_mod.evaluate_config(
      ["s.jsonl"], str(tmp_path), embedder=embed, quality_fn="tests.evaluation."
      "test_evaluate_config:score", quality_inputs=("response",),
      labeller="tests.evaluation.test_evaluate_config:score", labeller_inputs=("response",))
  assert isinstance(config.labeller.labeller, FunctionLabeller)
  assert config.quality.source == "function: tests.evaluation.test_evaluate_config:score"
  assert config.quality.score("p", "a", "r") == {"ok": 1.0} and not config.quality.is_judge
  assert config.embedder.embed is embed
  assert config.metrics.distinct_k_threshold == evaluation_config.DISTINCT_K_THRESHOLD
  auto = evaluate_mod.evaluate_config(["s.jsonl"], str(tmp_path), embedder=embed)
  assert isinstance(auto.labeller.labeller, EmbeddingClusterLabeller) and auto.labeller.clusters
  none = evaluate_mod.evaluate_config(["s.jsonl"], str(tmp_path), embedder=None)
  assert none.labeller.labeller is None and none.metrics.distinct_k_threshold is None
  tags = evaluate_mod.evaluate_config(["s.jsonl"], str(tmp_path), embedder=None,
                                      labeller="annotation_tags")
  assert isinstance(tags.labeller.labeller, AnnotationTagLabeller)
  with pytest.raises(AttributeError):  # Frozen: read where used, never changed on the way.
    config.arms = None


def test_the_command_refuses_a_bad_choice_in_one_line(tmp_path, capsys):
  gin.clear_config()
  try:
    assert evaluate_mod.main([f"--gin.evaluate.sample_files=['{tmp_path}/s.jsonl']",
                              f"--gin.evaluate.output_dir='{tmp_path}/e'",
                              "--gin.evaluate.embedder='bert'"]) == 2
  finally:
    gin.clear_config()
  err = capsys.readouterr().err.strip()
  assert err == ("annotanchor evaluate: SettingError: evaluate.embedder='bert': expected "
                 "'minilm', None or a callable")
  assert not (tmp_path / "e").exists()
