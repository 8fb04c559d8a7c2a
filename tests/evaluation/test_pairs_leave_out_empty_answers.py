"""A sample with an empty response is no answer to pair: the preference records refuse one,
and a model can stop right after its annotation (the tiny anchored model of the preference
experiment did, 18 of 68 samples)."""
from annotanchor.evaluation.preference_pairs import pair_samples
from tests.evaluation.conftest import make_samples


def test_empty_answers_are_left_out_and_counted():
  samples = make_samples("sft", {"p1": ["", "  ", "good", "bad"], "p2": ["", "good"]})
  passes = lambda prompt, annotation, response: float(response in ("", "  ", "good"))
  records, counts = pair_samples(samples, passes, require_annotations=False)
  assert [(r["chosen"], r["rejected"]) for r in records] == [("good", "bad")]
  assert (counts.samples_without_answer, counts.samples_passing, counts.samples_failing,
          counts.prompts_paired) == (3, 2, 1, 1)
