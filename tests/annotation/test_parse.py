"""Prompt, parse, validate: recorded annotator answers and what the schema keeps of them."""
import pytest

from annotanchor.annotation.parse import ResponseParseError, parse_response
from annotanchor.annotation.prompt import AnnotationPrompt
from annotanchor.annotation.schema import PAPER_KEYS, TagSchema

SCHEMA = TagSchema()

# Answers as instruct models gave them (Qwen-, Llama- and Mistral-style), and their tags.
RECORDED = [
    ("topic:dragons genre:fairy_tale location:glass_harbor",
     [("topic", "dragons"), ("genre", "fairy_tale"), ("location", "glass_harbor")]),
    ("Tags: topic:sea_monsters sentiment:ominous style:descriptive.",
     [("topic", "sea_monsters"), ("sentiment", "ominous"), ("style", "descriptive")]),
    ("<ann> topic:trade entity:Guild_of_Salt </ann>",
     [("topic", "trade"), ("entity", "guild_of_salt")]),
    ("- Topic: Sea Dragons\n- Location: The Glass Harbor\n- Sentiment: hopeful\n",
     [("topic", "sea_dragons"), ("location", "the_glass_harbor"), ("sentiment", "hopeful")]),
    ('```json\n{"topic": "harvest", "entity": ["Mira", "the old mill"], "time": "autumn"}\n```',
     [("topic", "harvest"), ("entity", "mira"), ("entity", "the_old_mill"), ("time", "autumn")]),
    ("topic:war, mood:grim, genre:epic, topic:war",  # unknown key and duplicate dropped
     [("topic", "war"), ("genre", "epic")]),
    ("1. domain: biology\n2. action: migration", [("domain", "biology"), ("action", "migration")]),
    # A value holding a delimiter would write an annotation that does not parse back (a
    # tiny model's answer through `annotanchor serve` held "topic:cd<ann>").
    ("<ann> topic:sea topic:cd<ann> </ann>", [("topic", "sea")]),
    ("topic:sea location:the</ann>", [("topic", "sea")]),
]


@pytest.mark.parametrize("answer, tags", RECORDED)
def test_recorded_answers_parse_to_schema_valid_tags(answer, tags):
  assert parse_response(answer, SCHEMA) == tuple(tags)


@pytest.mark.parametrize("answer", [
    "", "I cannot annotate this passage.", "mood:grim colour:red",  # keys outside the schema
    "topic:" + "x" * 41,  # value over max_value_chars
    "<ann> </ann>", "topic:cd<ann>",
])
def test_answers_without_a_valid_tag_are_refused_not_emptied(answer):
  with pytest.raises(ResponseParseError, match="no valid key:value tag"):
    parse_response(answer, SCHEMA)


def test_schema_limits_and_open_keys():
  schema = TagSchema(allowed_keys=None, max_tags=2, lowercase_values=False)
  assert schema.normalize([("Hero Name", "Mira Vale"), ("x-y", "1"), ("z", "3")]) == (
      ("hero_name", "Mira_Vale"), ("x_y", "1"))
  with pytest.raises(ValueError, match="allowed_keys"):
    TagSchema(allowed_keys=("Bad Key",))


def test_prompt_renders_the_chunk_and_keys_and_refuses_unknown_fields():
  text = AnnotationPrompt().render("  A dragon slept.\n", ("topic", "location"))
  assert "Keys: topic, location." in text and text.endswith("Passage:\nA dragon slept.\n\nTags:")
  assert ", ".join(PAPER_KEYS) in AnnotationPrompt().render("x", None)
  with pytest.raises(ValueError, match=r"\['chunk', 'doc'\]"):
    AnnotationPrompt(template="{chunk} {doc}")
