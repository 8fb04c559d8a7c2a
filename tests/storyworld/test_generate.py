"""storyworld generation: exact parsing, SFT entropy, quality checks, determinism."""
import collections
import math

import pytest

from annotanchor.data import annotations
from tasks.storyworld import generate, parse
from tasks.storyworld.generate import TEMPLATE
from tasks.storyworld.world import ATTRIBUTES


def test_world_sizes():
  assert len(ATTRIBUTES) >= 6
  assert all(8 <= len(values) <= 40 for values in ATTRIBUTES.values())


def test_generation_is_deterministic_and_seeded(small_config):
  again = generate.pretraining_documents(small_config, "train")
  assert generate.pretraining_documents(small_config, "train") == again
  other = generate.StoryworldConfig(seed=6, num_pretrain_docs=400)
  assert generate.pretraining_documents(other, "train") != again


def test_parser_recovers_every_paragraph_and_document_annotation(small_config):
  docs = generate.pretraining_documents(small_config, "train")
  kinds = collections.Counter()
  for doc in docs:
    chunks = annotations.split_chunks(doc["text"])
    assert len(chunks) == len(doc["annotations"]) >= 2
    document_tags = {}
    for chunk, annotation in zip(chunks, doc["annotations"]):
      tags = dict(annotations.parse_annotation(annotation, TEMPLATE.annotation_format, strict=True))
      kinds[tags.get("kind")] += 1
      document_tags.update(tags)
      assert parse.parse_attributes(chunk) == {a: tags.get(a, parse.UNKNOWN) for a in ATTRIBUTES}
    assert parse.parse_attributes(doc["text"]) == {
        a: document_tags.get(a, parse.UNKNOWN) for a in ATTRIBUTES}
  assert {"story", "place", "character", "dialogue"} <= set(kinds)


def test_pretraining_attributes_are_broad(small_config):
  docs = generate.pretraining_documents(small_config, "train")
  heroes = {parse.parse_attributes(d["text"])["hero"] for d in docs} - {parse.UNKNOWN}
  assert len(heroes) == len(ATTRIBUTES["hero"])


def _entropy(counts):
  total = sum(counts.values())
  return -sum(c / total * math.log2(c / total) for c in counts.values())


def test_sft_entropy_matches_configuration(small_config):
  expected = generate.sft_entropy_bits(small_config)
  # Support 4 with probabilities proportional to 1, 1/2, 1/3, 1/4.
  p = [1, 1 / 2, 1 / 3, 1 / 4]
  assert expected == pytest.approx(-sum(x / sum(p) * math.log2(x / sum(p)) for x in p), abs=1e-12)
  examples = generate.sft_examples(small_config, "train")
  for attribute in ATTRIBUTES:
    counts = collections.Counter(parse.parse_attributes(ex["response"])[attribute]
                                 for ex in examples if attribute not in ex["constraints"])
    assert len(counts) == small_config.sft_support
    # Plug-in entropy of ~1.5k draws from 4 values: bias and spread are both < 0.02 bits.
    assert _entropy(counts) == pytest.approx(expected, abs=0.05)


def test_sft_responses_match_their_annotations_and_pass_quality(small_config):
  for ex in generate.sft_examples(small_config, "validation"):
    tags = dict(annotations.parse_annotation(ex["annotation"], TEMPLATE.annotation_format))
    assert parse.parse_attributes(ex["response"]) == {a: tags[a] for a in ATTRIBUTES}
    assert parse.check_quality(ex["response"], ex["constraints"]).ok


def test_quality_checker_rejects_each_failure(small_config):
  ex = next(e for e in generate.sft_examples(small_config, "train") if e["constraints"])
  response, constraints = ex["response"], ex["constraints"]
  plain_story = generate.pretraining_documents(small_config, "train")[0]["text"]
  assert not parse.check_quality(response.replace("Title: ", ""), constraints).assistant_style
  assert not parse.check_quality(response.replace("\n\nThe End.", ""), constraints).assistant_style
  assert not parse.check_quality("<ann> x:y </ann> " + response, constraints).well_formed
  assert not parse.check_quality(plain_story, {}).assistant_style
  (attribute, value), = constraints.items()
  other = next(v.tag for v in ATTRIBUTES[attribute] if v.tag != value)
  assert not parse.check_quality(response, {attribute: other}).prompt_followed


def test_eval_prompts_are_held_out_and_some_constrained(small_config):
  prompts = generate.eval_prompts(small_config)
  sft_prompts = {ex["prompt"] for ex in generate.sft_examples(small_config, "train")}
  assert not {p["prompt"] for p in prompts} & sft_prompts
  constrained = [p for p in prompts if p["constraints"]]
  assert 0 < len(constrained) < len(prompts)
  for p in constrained:
    (attribute, value), = p["constraints"].items()
    assert parse.parse_attributes(p["prompt"])[attribute] == value


def test_parser_gives_unknown_for_unrelated_text():
  assert set(parse.parse_attributes("A plain sentence about nothing.").values()) == {parse.UNKNOWN}


def test_prompt_constraints_are_read_back_exactly_from_every_eval_prompt(small_config):
  prompts = generate.eval_prompts(small_config)
  assert any(p["constraints"] for p in prompts) and any(not p["constraints"] for p in prompts)
  for p in prompts:
    assert parse.prompt_constraints(p["prompt"]) == p["constraints"], p["prompt"]


def test_prompted_quality_judges_prompt_adherence_from_the_prompt(small_config):
  example = next(ex for ex in generate.sft_examples(small_config, "train") if ex["constraints"])
  (attribute, value), = example["constraints"].items()
  assert parse.check_prompted_quality(example["prompt"], example["response"]).ok
  other = next(v.tag for v in ATTRIBUTES[attribute] if v.tag != value)
  phrase = next(v.phrases[0] for v in ATTRIBUTES[attribute] if v.tag == other)
  wrong = parse.check_prompted_quality(f"Write a story about {phrase}.", example["response"])
  assert wrong.well_formed and wrong.assistant_style and not wrong.prompt_followed
