"""Sample-file schema, reading and the cross-arm checks."""
import dataclasses
import json

import pytest

from annotanchor.data.annotations import AnnotationFormat
from annotanchor.evaluation.samples import (FORMAT_KEY, Sample, SampleFileError,
                                            annotation_format, decoding_record, load_arms,
                                            read_samples, write_samples)
from tests.evaluation.conftest import DECODING, make_samples


def test_round_trip(tmp_path):
  samples = make_samples("base", {"p0": ["a", "b"], "p1": ["c", "d"]})
  path = str(tmp_path / "s.jsonl")
  write_samples(path, samples)
  assert read_samples(path) == samples
  assert Sample.from_json(samples[0].to_json()) == samples[0]


def _line(**overrides):
  obj = {"prompt_id": "p0", "prompt": "x", "annotation": "", "response": "r",
         "sample_index": 0, "arm": "base", "decoding": dict(DECODING)}
  obj.update(overrides)
  return json.dumps({k: v for k, v in obj.items() if v is not ...})


@pytest.mark.parametrize("bad, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (_line(response=...), "missing field(s) response"),
    (_line(sample_index="0"), "'sample_index' should be int"),
    (_line(sample_index=True), "'sample_index' should be int"),
    (_line(sample_index=-1), "negative"),
    (_line(decoding={"temperature": 1.0}), "decoding lacks top_k"),
])
def test_bad_line_names_file_and_line(tmp_path, bad, message):
  path = tmp_path / "s.jsonl"
  path.write_text(_line() + "\n\n" + bad + "\n")
  with pytest.raises(SampleFileError) as e:
    read_samples(str(path))
  assert f"{path}:3" in str(e.value)
  assert message in str(e.value)


def test_empty_and_missing_files(tmp_path):
  (tmp_path / "e.jsonl").write_text("\n")
  with pytest.raises(SampleFileError, match="holds no samples"):
    read_samples(str(tmp_path / "e.jsonl"))
  with pytest.raises(SampleFileError, match="no such sample file"):
    read_samples(str(tmp_path / "absent.jsonl"))


def test_load_arms_aligns_prompts(write_arm):
  files = [write_arm("base", {"p1": ["a", "b"], "p0": ["c", "d"]}),
           write_arm("sft", {"p0": ["e", "f"], "p1": ["g", "h"]})]
  arms = load_arms(files, required_arms=["base", "sft"])
  assert arms.prompt_ids == ["p0", "p1"] and arms.num_samples == 2
  assert [s.response for s in arms.by_arm["base"][0]] == ["c", "d"]
  assert arms.arms == ["base", "sft"]


def test_mapping_renames_arm(write_arm):
  arms = load_arms({"sft": write_arm("sft-v3", {"p0": ["a"]}),
                    "base": write_arm("base", {"p0": ["b"]})})
  assert sorted(arms.by_arm) == ["base", "sft"]


def test_missing_arm(write_arm):
  with pytest.raises(SampleFileError, match="arm\\(s\\) 'anchored' missing"):
    load_arms([write_arm("base", {"p0": ["a"]})], required_arms=["base", "anchored"])


def test_prompts_differ(write_arm):
  files = [write_arm("base", {"p0": ["a"], "p1": ["b"]}), write_arm("sft", {"p0": ["c"]})]
  with pytest.raises(SampleFileError, match="prompts differ between arms 'base' and 'sft'"):
    load_arms(files)


def test_prompt_text_differs(tmp_path, write_arm):
  base = write_arm("base", {"p0": ["a"]})
  s = make_samples("sft", {"p0": ["b"]})[0]
  path = str(tmp_path / "sft.jsonl")
  write_samples(path, [Sample(**{**s.__dict__, "prompt": "Another prompt"})])
  with pytest.raises(SampleFileError, match=f"{path}:1: prompt text of 'p0' differs"):
    load_arms([base, path])


def test_sample_counts_differ(write_arm):
  files = [write_arm("base", {"p0": ["a", "b"]}), write_arm("sft", {"p0": ["c"]})]
  with pytest.raises(SampleFileError, match="different sample counts"):
    load_arms(files)


def test_duplicate_and_gap(tmp_path, write_arm):
  path = write_arm("base", {"p0": ["a", "b"]})
  with pytest.raises(SampleFileError, match="duplicate sample_index 0"):
    load_arms([path, path])
  s = make_samples("base", {"p0": ["a", "b", "c"]})
  gap = str(tmp_path / "gap.jsonl")
  write_samples(gap, [s[0], s[2]])
  with pytest.raises(SampleFileError, match="are not 0..1"):
    load_arms([gap])


def test_mapping_with_mixed_file(tmp_path):
  path = str(tmp_path / "mixed.jsonl")
  write_samples(path, make_samples("base", {"p0": ["a"]}) + make_samples("sft", {"p0": ["b"]}))
  with pytest.raises(SampleFileError, match="holds several arms"):
    load_arms({"base": path})


BRACKETS = AnnotationFormat("[[", "]]")


def _in_format(samples, record):
  return [dataclasses.replace(s, decoding={**s.decoding, FORMAT_KEY: record}) for s in samples]


def test_a_non_standard_format_is_recorded_and_read_back():
  assert decoding_record(DECODING, AnnotationFormat()) == DECODING  # Standard runs unchanged.
  record = decoding_record(DECODING, BRACKETS)
  assert record == {**DECODING, FORMAT_KEY: {"open": "[[", "close": "]]"}}
  samples = make_samples("a", {"p0": ["x", "y"]})
  assert annotation_format(samples) == AnnotationFormat()
  assert annotation_format(_in_format(samples, record[FORMAT_KEY])) == BRACKETS


def test_samples_in_two_formats_or_a_bad_record_are_refused():
  standard = make_samples("sft", {"p0": ["x"]})
  brackets = _in_format(make_samples("anchored", {"p0": ["y"]}), {"open": "[[", "close": "]]"})
  with pytest.raises(SampleFileError, match="arm 'sft': null, arm 'anchored'"):
    annotation_format(standard + brackets)
  with pytest.raises(SampleFileError, match="arm 'anchored'.*is not an annotation format"):
    annotation_format(_in_format(brackets, {"open": "[[", "close": "[["}))
  with pytest.raises(SampleFileError, match="is not an annotation format"):
    annotation_format(_in_format(brackets, "[["))
