"""The annotation format and the prompt template."""
import pytest

from annotanchor.data import annotations as A
from annotanchor.data.prompts import PromptTemplate

FMT = A.AnnotationFormat()

TAGS = (("genre", "fairy_tale"), ("hero", "Mira"))


def test_format_parse_round_trip_and_pieces():
  text = A.format_annotation(A.make_tags({"genre": "fairy tale", "hero": "Mira"}), FMT)
  assert text == "<ann> genre:fairy_tale hero:Mira </ann>"
  assert A.parse_annotation(text, FMT) == TAGS
  pieces = A.annotation_pieces(TAGS, FMT)
  assert "".join(p for p, _ in pieces) == text
  assert [p for p, is_value in pieces if is_value] == ["fairy_tale", "Mira"]


def test_custom_delimiters():
  fmt = A.AnnotationFormat("[[", "]]")
  assert A.parse_annotation(A.format_annotation(TAGS, fmt), fmt) == TAGS
  with pytest.raises(A.AnnotationError):
    A.AnnotationFormat("<a b>", "</a>")


@pytest.mark.parametrize("value", ["cd<ann>", "x</ann>", "<ann>"])
def test_format_refuses_a_tag_that_holds_a_delimiter(value):
  # Its text would not parse back (strict parsing finds a second delimiter).
  with pytest.raises(A.AnnotationError, match="holds a delimiter"):
    A.format_annotation([("topic", "sea"), ("topic", value)], FMT)
  assert A.format_annotation([("topic", value)], A.AnnotationFormat("[[", "]]"))


@pytest.mark.parametrize("text", ["genre:x", "<ann> </ann>", "<ann> Genre:x </ann>",
                                  "<ann> genre: </ann>", "<ann> a:b <ann> c:d </ann>"])
def test_strict_parse_rejects(text):
  with pytest.raises(A.AnnotationError):
    A.parse_annotation(text, FMT, strict=True)


def test_tolerant_parse_of_model_output():
  assert A.parse_annotation("junk <ann> genre:x bad Hero:y hero:z", FMT, strict=False) == (
      ("genre", "x"), ("hero", "z"))
  assert A.parse_annotation("no annotation here", FMT, strict=False) == ()
  assert A.strip_annotations("<ann> a:b </ann> Text <ann> c:d", FMT) == "Text"


def test_split_chunks():
  assert A.split_chunks("One\nline.\n\n  \n\nTwo.\r\n\r\nThree.\n") == ["One\nline.", "Two.", "Three."]


def test_prompt_template_build_and_split():
  template = PromptTemplate()
  assert template.build(" Hi ") == "<user> Hi\n<assistant>"
  g = template.split_generation("<ann> genre:x hero:y </ann> Title: T\n\nBody.<user> more")
  assert (g.annotation, g.tags, g.response) == (
      "<ann> genre:x hero:y </ann>", (("genre", "x"), ("hero", "y")), "Title: T\n\nBody.")
  assert template.split_generation(" Just text.").response == "Just text."
  unclosed = template.split_generation("<ann> genre:x")
  assert (unclosed.tags, unclosed.response) == ((("genre", "x"),), "")
