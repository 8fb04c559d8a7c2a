"""Chat SFT: exact token and loss-weight layout of multi-turn `messages` examples (standard
and anchored, loss on all or the last assistant turn), through the validating source."""
import numpy as np
import pytest
import seqio
import tensorflow as tf

from annotanchor.data import chat_sft, preprocessors, sources
from annotanchor.data.feature_converter import LOSS_WEIGHTS
from annotanchor.data.prompts import PromptTemplate
from annotanchor.data.segments import ANNOTATION_MASK
from tests.data.test_preprocessors import FEATURES, check, layout

TEMPLATE = PromptTemplate()
RECORD = {"messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Tell a story."},
    {"role": "assistant", "content": "Once.", "annotation": "<ann> genre:myth </ann>"},
    {"role": "user", "content": " Again? "},
    {"role": "assistant", "content": "Twice.", "annotation": {"genre": "epic", "hero": "Ada"}},
]}


def run(examples, **kwargs):
  ds = tf.data.Dataset.from_generator(
      lambda: iter(examples), output_signature={k: tf.TensorSpec([None], tf.string)
                                                for k in ("pieces", "kinds")})
  with seqio.utils.map_seed_manager(7):
    return list(chat_sft.chat_sft(ds, FEATURES, **kwargs).as_numpy_iterator())


def example(record=RECORD):
  return sources.chat_example(record, "chat.jsonl:1", "messages", TEMPLATE)


def test_anchored_loss_on_all_turns():
  (ex,) = run([example()], anchored=True, loss_on="all", key_only_rate=0.0)
  check(ex, layout(("<user> Be brief.\n\nTell a story.\n<assistant>", 0, False),
                   ("<ann> genre:myth </ann>", 0, True),
                   (" Once.\n<user>", 1, False),
                   (" Again?\n<assistant>", 0, False),
                   ("<ann> genre:epic hero:Ada </ann>", 0, True),
                   (" Twice.", 1, False)))


def test_anchored_loss_on_the_last_turn():
  (ex,) = run([example()], anchored=True, loss_on="last", key_only_rate=0.0)
  check(ex, layout(("<user> Be brief.\n\nTell a story.\n<assistant>", 0, False),
                   ("<ann> genre:myth </ann>", 0, True),
                   (" Once.\n<user>", 0, False),
                   (" Again?\n<assistant>", 0, False),
                   ("<ann> genre:epic hero:Ada </ann>", 0, True),
                   (" Twice.", 1, False)))


def test_standard_leaves_the_annotations_out():
  (ex,) = run([example()], anchored=False, loss_on="all")
  check(ex, layout(("<user> Be brief.\n\nTell a story.\n<assistant>", 0, False),
                   (" Once.\n<user>", 1, False),
                   (" Again?\n<assistant>", 0, False),
                   (" Twice.", 1, False)))


def test_key_only_examples_train_keys_and_delimiters_not_values():
  (ex,) = run([example()], anchored=True, loss_on="last", key_only_rate=1.0)
  check(ex, layout(("<user> Be brief.\n\nTell a story.\n<assistant>", 0, False),
                   ("<ann> genre:", 1, True), ("myth", 0, True), (" </ann>", 1, True),
                   (" Once.\n<user>", 0, False),
                   (" Again?\n<assistant>", 0, False),
                   ("<ann> genre:", 1, True), ("epic", 0, True), (" hero:", 1, True),
                   ("Ada", 0, True), (" </ann>", 1, True),
                   (" Twice.", 1, False)))


def test_one_turn_is_exactly_the_prompt_response_layout():
  record = {"messages": [{"role": "user", "content": " Tell it. "},
                         {"role": "assistant", "content": "Done. ", "annotation": "<ann> g:x h:big_y </ann>"}]}
  pair = tf.data.Dataset.from_tensor_slices(
      {"prompt": [" Tell it. "], "response": ["Done. "], "annotation": ["g:x h:big_y"]})
  with seqio.utils.map_seed_manager(7):
    standard = next(preprocessors.standard_sft(pair, FEATURES, template=TEMPLATE).as_numpy_iterator())
    anchored = next(preprocessors.anchored_sft(
        pair, FEATURES, template=TEMPLATE, key_only_rate=0.0).as_numpy_iterator())
  for expected, kwargs in ((standard, {"anchored": False}), (anchored, {"anchored": True})):
    (ex,) = run([example(record)], key_only_rate=0.0, **kwargs)
    for key in ("targets", LOSS_WEIGHTS, ANNOTATION_MASK):
      np.testing.assert_array_equal(ex[key], expected[key])


@pytest.mark.parametrize("messages,needle", [
    ([{"role": "user", "content": "hi"}], "last message of an SFT conversation"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
     "messages[1] (assistant) has no 'annotation'"),
    ([{"role": "user", "content": "hi"},
      {"role": "assistant", "content": "yo", "annotation": "genre myth"}],
     "messages[1].annotation does not parse"),
    ([{"role": "assistant", "content": "yo", "annotation": "<ann> a:b </ann>"}],
     "alternates user and assistant"),
    ([{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}], "messages[1].role"),
    ([{"role": "user", "content": " "}, {"role": "assistant", "content": "x",
                                        "annotation": "<ann> a:b </ann>"}], "messages[0] (user) is empty"),
    ("hello", "non-empty list"),
])
def test_bad_conversations_name_the_record_and_message(messages, needle):
  with pytest.raises(sources.SourceError, match=r"chat\.jsonl:1: field 'messages': .*") as e:
    example({"messages": messages})
  assert needle in str(e.value)


def test_bad_settings():
  with pytest.raises(ValueError, match="loss_on"):
    run([example()], loss_on="first")
