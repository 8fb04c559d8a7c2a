"""Malformed sampled annotations: the docstring's worked example and the evaluate report."""
import pytest

from annotanchor import evaluate as evaluate_mod
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.evaluation.wellformed import malformed_cause, malformed_share

FMT = AnnotationFormat()
EXAMPLE = {
    "<ann> genre:myth hero:Mira </ann>": None,
    "<ann> genre:myth </ann> a story </ann>": "delimiter",
    "<ann> </ann>": "empty",
    "<ann> kind an:story </ann>": "malformed_tag",
    "<ann> genre:myth genre:epic </ann>": "repeated_key",
}


@pytest.mark.parametrize("text,cause", EXAMPLE.items())
def test_cause_of_each_example(text, cause):
  assert malformed_cause(text, FMT) == cause


def test_worked_example_share():
  out = malformed_share(list(EXAMPLE), FMT)
  assert out == {"share": 0.8, "count": 5, "by_cause": dict.fromkeys(
      ("delimiter", "empty", "malformed_tag", "repeated_key"), 1)}


def test_unclosed_and_other_delimiters():
  assert malformed_cause("<ann> genre:myth", FMT) == "delimiter"
  assert malformed_cause("genre:myth </ann>", FMT) == "delimiter"
  assert malformed_cause("[[ genre:myth ]]", AnnotationFormat("[[", "]]")) is None
  assert malformed_cause("<ann> genre:myth </ann>", AnnotationFormat("[[", "]]")) == "delimiter"


def test_evaluate_counts_sampled_annotations_only(tmp_path, write_arm):
  """Per arm that samples annotations; a given annotation (the ablation's `<ann> </ann>`)
  is not model output and is not counted."""
  responses = {"p0": ["a.", "b.", "c.", "d."]}
  files = {
      "base": write_arm("base", responses),
      "sft": write_arm("sft", responses),
      "anchored": write_arm("anchored", responses, {"p0": [
          "<ann> genre:myth </ann>", "<ann> kind an:story </ann>", "<ann> genre:a genre:b </ann>",
          "<ann> hero:Mira </ann>"]}, mode="anchored"),
      "given": write_arm("given", responses, {"p0": ["<ann> </ann>"] * 4},
                         mode="given_annotation"),
  }
  rep = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      files, str(tmp_path / "e"), labeller="annotation_tags", embedder=None, num_resamples=20,
      write_plots=False))
  assert rep["malformed_annotations"] == {"anchored": {
      "share": 0.5, "count": 4,
      "by_cause": {"delimiter": 0, "empty": 0, "malformed_tag": 1, "repeated_key": 1}}}
  md = open(tmp_path / "e" / "report.md").read()
  assert "## Malformed sampled annotations" in md and "| anchored | 50.0% | 4 | 0 | 0 | 1 | 1 |" in md
