"""On-policy preference pairs: a model's samples scored by a quality function, a passing
one chosen against a failing one to the same prompt, each with its own annotation; the
output is what the anchored preference task reads, and `annotanchor pair` writes it."""
import json

import pytest

from annotanchor.data import sources
from annotanchor.data.preference_records import PreferenceExamples
from annotanchor.data.prompts import PromptTemplate
from annotanchor.evaluation.preference_pairs import PairingCounts, pair_samples
from tests.evaluation.conftest import make_samples
from tests.evaluation.pair_quality import good_quality
from tests.faults.conftest import assert_one_line_error, run

RESPONSES = {"p1": ["good one", "bad one", "good two", "bad two", "good three"],
             "p2": ["good", "good"],  # All pass: no pair.
             "p3": ["bad", "bad", "good"]}
ANNOTATIONS = {"p1": ["<ann> k:a </ann>", "<ann> k:b </ann>", "<ann> k:c </ann>",
                      "<ann> k:d </ann>", "<ann> k:e broken"],  # The last does not parse.
               "p2": ["<ann> k:a </ann>"] * 2,
               "p3": ["<ann> k:a </ann>", "<ann> k:b </ann>", ""]}  # No annotation.


def test_pairs_pass_against_fail_with_their_annotations(tmp_path):
  samples = make_samples("anchored", RESPONSES, ANNOTATIONS, mode="anchored")
  quality = lambda prompt, annotation, response: good_quality(response)
  records, counts = pair_samples(samples, quality, pairs_per_prompt=2, seed=3)
  # p1: 'good three' has a malformed annotation, p3: 'good' has none; both left out, so p3
  # has no passing sample and p2 no failing one.
  assert counts == PairingCounts(prompts=3, prompts_paired=1, samples_passing=4,
                                 samples_failing=4, samples_without_annotation=2, pairs=2)
  assert [r["id"] for r in records] == ["p1-0", "p1-1"]
  for record in records:
    assert record["chosen"].startswith("good") and record["rejected"].startswith("bad")
    assert record["prompt"] == "Tell story p1."
  assert len({r["chosen"] for r in records}) == len({r["rejected"] for r in records}) == 2
  by_response = dict(zip(RESPONSES["p1"], ANNOTATIONS["p1"]))
  assert all(r["chosen_annotation"] == by_response[r["chosen"]]
             and r["rejected_annotation"] == by_response[r["rejected"]] for r in records)
  assert pair_samples(samples, quality, pairs_per_prompt=2, seed=3)[0] == records
  # Standard DPO takes unannotated samples too: p3 pairs, without annotations.
  plain, counts = pair_samples(samples, quality, require_annotations=False)
  assert counts.pairs == 2 and "chosen_annotation" not in plain[-1]
  # The anchored preference source reads the pairs as written.
  path = tmp_path / "pairs.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  examples = list(sources.read_examples([str(path)], PreferenceExamples(PromptTemplate())))
  assert len(examples) == 2 and "<ann>" in examples[0]["chosen_pieces"]


def test_the_pair_command_writes_pairs_and_refuses_samples_without_any(tmp_path, write_arm):
  samples = write_arm("anchored", RESPONSES, ANNOTATIONS, mode="anchored")
  flags = ["--gin_file=gin/runs/pair.gin", f"--gin.SAMPLES='{samples}'",
           "--gin.QUALITY_FN='tests.evaluation.pair_quality:good_quality'",
           "--gin.QUALITY_INPUTS=('response',)"]
  out = tmp_path / "pairs.jsonl"
  done = run(["pair", *flags, f"--gin.OUTPUT='{out}'"])
  assert done.returncode == 0, done.stderr[-2000:]
  assert "pairs=1" in done.stdout and "samples_without_annotation=2" in done.stdout
  assert [json.loads(l)["id"] for l in out.read_text().splitlines()] == ["p1-0"]
  all_pass = write_arm("anchored", {"p2": RESPONSES["p2"]}, {"p2": ANNOTATIONS["p2"]},
                       name="all_pass.jsonl", mode="anchored")
  done = run(["pair", *flags[:1], f"--gin.SAMPLES='{all_pass}'", *flags[2:],
              f"--gin.OUTPUT='{tmp_path / 'none.jsonl'}'"])
  assert_one_line_error(done, "pair", "NoPairsError", "no prompt has both a passing and a "
                        "failing sample")
  assert not (tmp_path / "none.jsonl").exists()
