"""Label sources."""
import pytest

from annotanchor.data.annotations import AnnotationFormat
from annotanchor.evaluation import labels


def test_annotation_tags():
  lab = labels.AnnotationTagLabeller(fmt=AnnotationFormat())
  out = lab("p", "<ann> genre:mystery hero:ada bad entity:b entity:a </ann>", "text")
  assert out == {"genre": "mystery", "hero": "ada", "entity": "a|b"}
  assert lab("p", "", "text") == {}
  assert lab("p", "<ann> genre:myth", "") == {"genre": "myth"}  # never closed


def test_annotation_tags_fixed_keys():
  lab = labels.AnnotationTagLabeller(keys=["genre", "tone"], fmt=AnnotationFormat())
  assert lab("p", "<ann> genre:myth </ann>", "") == {"genre": "myth", "tone": labels.UNKNOWN}


def _hero_of(response):
  return {"hero": response.split()[0] if response else None}


def test_function_labeller_and_import_path():
  lab = labels.FunctionLabeller(_hero_of, inputs=("response",))
  assert lab("p", "a", "Ada went") == {"hero": "Ada"}
  assert lab("p", "a", "") == {"hero": labels.UNKNOWN}
  lab = labels.labeller_from_path("tests.evaluation.test_labels:_hero_of", ("response",))
  assert lab("p", "", "Bo ran") == {"hero": "Bo"}
  from annotanchor.evaluation.hooks import import_object
  assert import_object("os.path.join") is __import__("os").path.join


@pytest.mark.parametrize("path, message", [
    ("nonexistent_module_xyz:f", "cannot import module"),
    ("os:no_such_function", "has no 'no_such_function'"),
    ("justaname", "not an import path"),
])
def test_bad_import_paths(path, message):
  with pytest.raises(ValueError, match=message):
    labels.labeller_from_path(path)


def test_bad_labeller_inputs_and_output():
  with pytest.raises(ValueError, match="subset"):
    labels.FunctionLabeller(_hero_of, inputs=("text",))
  with pytest.raises(TypeError, match="not a mapping"):
    labels.FunctionLabeller(lambda r: "x", inputs=("response",))("p", "a", "r")


def test_annotation_tags_are_read_in_the_samples_format():
  brackets = labels.AnnotationTagLabeller(keys=["genre"]).with_format(AnnotationFormat("[[", "]]"))
  assert brackets("p", "[[ genre:myth ]]", "r") == {"genre": "myth"}
  assert brackets("p", "<ann> genre:myth </ann>", "r") == {"genre": labels.UNKNOWN}
  with pytest.raises(ValueError, match="no annotation format"):
    labels.AnnotationTagLabeller()("p", "<ann> genre:myth </ann>", "r")
