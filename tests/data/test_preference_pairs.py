"""Preference records: the layouts users have, laid out as SFT lays out the same answer
(prompt and annotation weight 0), one-line errors naming file and record, and the
registered tasks through `get_dataset` as unpacked pairs."""
import json

import numpy as np
import pytest
import seqio
import tensorflow as tf

from annotanchor.data import pipeline, preprocessors, sources, vocabulary
from annotanchor.data.chat_template import ChatTemplate
from annotanchor.data.feature_converter import LOSS_WEIGHTS, PreferenceFeatureConverter
from annotanchor.data.preference_corpus import PreferenceCorpus
from annotanchor.data.preference_records import PreferenceExamples, preference_example
from annotanchor.data.preference_sequences import preference_features, preference_pairs
from annotanchor.data.prompts import PromptTemplate
from annotanchor.errors import SettingError
from tests.data.test_chat_template import CHATML
from tests.data.test_preprocessors import layout

TEMPLATE = PromptTemplate()
BYTES = seqio.ByteVocabulary()
PAIR = {"prompt": " Tell it. ", "chosen": "Done.", "rejected": "No way.",
        "chosen_annotation": "<ann> g:x h:big_y </ann>", "rejected_annotation": {"g": "z"}}


def _sequences(example, anchored):
  signature = {k: tf.TensorSpec([None], tf.string) for k in example}
  ds = tf.data.Dataset.from_generator(lambda: iter([example]), output_signature=signature)
  (out,) = preference_pairs(ds, preference_features(BYTES), anchored=anchored).as_numpy_iterator()
  return out


def _sft(prompt, response, annotation, anchored):
  ds = tf.data.Dataset.from_tensors({"prompt": prompt, "response": response,
                                     "annotation": annotation})
  features = {"targets": seqio.Feature(BYTES)}
  with seqio.utils.map_seed_manager(7):
    out = (preprocessors.anchored_sft(ds, features, template=TEMPLATE, key_only_rate=0.0)
           if anchored else preprocessors.standard_sft(ds, features, template=TEMPLATE))
    (ex,) = out.as_numpy_iterator()
  return ex["targets"], ex[LOSS_WEIGHTS]


def test_each_answer_is_laid_out_as_its_sft_pair():
  """Anchored: `P A R EOS` with weights 0 0 1 1 on both sides, each with its own
  annotation, exactly anchored SFT's sequence; standard: `P R EOS`, standard SFT's."""
  out = _sequences(preference_example(PAIR, "p.jsonl, record 1", TEMPLATE), anchored=True)
  targets, weights, _ = layout(("<user> Tell it.\n<assistant>", 0, False),
                               ("<ann> g:x h:big_y </ann>", 0, True), (" Done.", 1, False))
  np.testing.assert_array_equal(out["chosen_targets"], targets)
  np.testing.assert_array_equal(out[f"chosen_{LOSS_WEIGHTS}"], weights)
  for side, annotation in (("chosen", "g:x h:big_y"), ("rejected", "g:z")):
    want = _sft(PAIR["prompt"], PAIR[side], annotation, anchored=True)
    np.testing.assert_array_equal(out[f"{side}_targets"], want[0])
    np.testing.assert_array_equal(out[f"{side}_{LOSS_WEIGHTS}"], want[1])
  plain = _sequences(preference_example(PAIR, "p.jsonl, record 1", TEMPLATE, anchored=False),
                     anchored=False)
  for side in ("chosen", "rejected"):
    want = _sft(PAIR["prompt"], PAIR[side], "", anchored=False)
    np.testing.assert_array_equal(plain[f"{side}_targets"], want[0])
    np.testing.assert_array_equal(plain[f"{side}_{LOSS_WEIGHTS}"], want[1])


def _message(text, annotation):
  return {"role": "assistant", "content": text, "annotation": annotation}


def test_the_record_layouts_agree():
  """trl's string and conversational layouts, a `messages` context and Tulu 3's whole
  conversations give the same pieces; a multi-turn context is weight 0 throughout."""
  user = {"role": "user", "content": "Tell it."}
  chosen = _message("Done.", "<ann> g:x h:big_y </ann>")
  rejected = _message("No way.", {"g": "z"})
  layouts = [PAIR,
             {"prompt": [user], "chosen": [chosen], "rejected": [rejected]},
             {"messages": [user], "chosen": [chosen], "rejected": [rejected]},
             {"prompt": "Tell it.", "chosen": [user, chosen], "rejected": [user, rejected]}]
  examples = [preference_example(r, "p.jsonl, record 1", TEMPLATE) for r in layouts]
  for example in examples[1:]:
    assert example == examples[0]
  turns = [user, _message("Once.", "<ann> g:a </ann>"), {"role": "user", "content": "More?"}]
  out = _sequences(preference_example({"messages": turns, "chosen": [chosen],
                                       "rejected": [rejected]}, "w", TEMPLATE), anchored=True)
  targets, weights, _ = layout(("<user> Tell it.\n<assistant>", 0, False),
                               ("<ann> g:a </ann>", 0, True), (" Once.\n<user>", 0, False),
                               (" More?\n<assistant>", 0, False),
                               ("<ann> g:z </ann>", 0, True), (" No way.", 1, False))
  np.testing.assert_array_equal(out["rejected_targets"], targets)
  np.testing.assert_array_equal(out[f"rejected_{LOSS_WEIGHTS}"], weights)


@pytest.mark.parametrize("record, anchored, message", [
    ({**PAIR, "rejected": "  "}, True, "field 'rejected' is empty"),
    ({k: v for k, v in PAIR.items() if k != "chosen_annotation"}, True,
     "no 'chosen_annotation' for the string answer in 'chosen'"),
    ({**PAIR, "chosen_annotation": "<ann> nocolon </ann>"}, True,
     "field 'chosen': messages[1].annotation does not parse"),
    ({**PAIR, "messages": [{"role": "user", "content": "x"}]}, False,
     "both 'prompt' and 'messages' given"),
    ({"chosen": "a", "rejected": "b"}, False, "field 'chosen' is an answer alone"),
    ({"chosen": [{"role": "user", "content": "A?"}, _message("a", "<ann> g:a </ann>")],
      "rejected": [{"role": "user", "content": "B?"}, _message("b", "<ann> g:b </ann>")]}, False,
     "'chosen' and 'rejected' answer different prompts"),
    ({"prompt": "P", "chosen": [_message("a", "<ann> g:a </ann>"),
                                _message("b", "<ann> g:b </ann>")], "rejected": "c"}, False, "field 'chosen' must be a string, one assistant message in a list"),
    ({"prompt": "P", "rejected": "c"}, False, "missing field 'chosen'"),
])
def test_a_bad_record_is_named_with_its_file_and_line(tmp_path, record, anchored, message):
  path = tmp_path / "pairs.jsonl"
  path.write_text(json.dumps(PAIR) + "\n" + json.dumps(record) + "\n")
  convert = PreferenceExamples(TEMPLATE, anchored=anchored)
  with pytest.raises(sources.SourceError) as raised:
    list(sources.read_examples([str(path)], convert))
  assert str(raised.value).startswith(f"{path}, record 2: "), str(raised.value)
  assert message in str(raised.value) and "\n" not in str(raised.value)


def test_the_converter_docstring_example():
  def pairs(chosen, chosen_weights, rejected, rejected_weights):
    return tf.data.Dataset.from_tensors({
        "chosen_targets": tf.constant(chosen, tf.int32),
        f"chosen_{LOSS_WEIGHTS}": tf.constant(chosen_weights, tf.float32),
        "rejected_targets": tf.constant(rejected, tf.int32),
        f"rejected_{LOSS_WEIGHTS}": tf.constant(rejected_weights, tf.float32)})
  ds = pairs([7, 8, 3, 9, 1], [0, 0, 1, 1, 1], [7, 8, 4, 1], [0, 0, 1, 1])
  lengths = {"chosen_targets": 6, "rejected_targets": 6}
  (out,) = PreferenceFeatureConverter()(ds, lengths).as_numpy_iterator()
  want = {"chosen_decoder_target_tokens": [7, 8, 3, 9, 1, 0],
          "chosen_decoder_input_tokens": [0, 7, 8, 3, 9, 1],
          "chosen_decoder_loss_weights": [0, 0, 1, 1, 1, 0],
          "rejected_decoder_target_tokens": [7, 8, 4, 1, 0, 0],
          "rejected_decoder_input_tokens": [0, 7, 8, 4, 1, 0],
          "rejected_decoder_loss_weights": [0, 0, 1, 1, 0, 0]}
  assert sorted(out) == sorted(want)
  for key, value in want.items():
    np.testing.assert_array_equal(out[key], value, err_msg=key)
  # A prompt that fills the row (the task trimmed the answer off) leaves the chosen side
  # nothing to score: the pair is left out.
  cut = pairs([7, 8], [0, 0], [7, 8], [0, 1])
  assert not list(PreferenceFeatureConverter()(cut, {"chosen_targets": 2,
                                                     "rejected_targets": 2}))


@pytest.fixture(scope="module")
def spm(tmp_path_factory):
  texts = ["Tell it.", "Done.", "No way.", "g:x h:big_y g:z", "<user> <assistant> <ann> </ann>"]
  path = tmp_path_factory.mktemp("vocab") / "spm.model"
  return vocabulary.train_sentencepiece(texts * 20, str(path), vocab_size=400)


def test_the_anchored_task_yields_pairs_whose_weights_cover_the_answer_alone(tmp_path, spm):
  """Through the registered task and get_dataset: row i of both sides is pair i, and the
  weighted tokens of each side decode to its answer and EOS, never the annotation."""
  path = tmp_path / "pairs.jsonl"
  path.write_text((json.dumps(PAIR) + "\n") * 4)
  corpus = PreferenceCorpus(name="dpo_test", vocabulary_path=spm, pairs={"train": str(path)},
                            cache_dir=str(tmp_path / "cache"))
  assert corpus.register() == ["dpo_test_preference", "dpo_test_preference_anchored"]
  vocab = vocabulary.load_vocabulary(spm)
  for task, with_annotation in (("dpo_test_preference", False),
                                ("dpo_test_preference_anchored", True)):
    batch = next(pipeline.get_dataset(task, {"targets": 48}, 2, pack=False, shuffle=False))
    assert {k: v.shape for k, v in batch.items()} == {
        f"{side}_decoder_{name}": (2, 48) for side in ("chosen", "rejected")
        for name in ("input_tokens", "target_tokens", "loss_weights")}
    for side in ("chosen", "rejected"):
      targets = batch[f"{side}_decoder_target_tokens"][0]
      scored = targets[batch[f"{side}_decoder_loss_weights"][0] > 0]
      assert scored[-1] == vocab.eos_id
      assert vocab.decode(scored[:-1].tolist()) == " " + PAIR[side]
      text = vocab.decode(targets[targets != vocab.pad_id].tolist())
      assert ("<ann>" in text) == with_annotation, text
  with pytest.raises(SettingError, match="DataConfig.pack=False"):
    pipeline.get_dataset("dpo_test_preference", {"targets": 48}, 2, pack=True)


def test_a_hugging_face_chat_template_closes_each_answer_with_its_end_of_turn():
  """With a chat template, each side is the template's rendering of its conversation: the
  answer carries the template's end-of-turn text (weight 1) and no EOS of ours."""
  template = ChatTemplate(CHATML)
  example = preference_example(PAIR, "p.jsonl, record 1", TEMPLATE, template)
  # The template renders the content as given (" Tell it. "), as chat SFT does.
  assert example["chosen_pieces"][0] == "<|im_start|>user\n Tell it. <|im_end|>\n" \
      "<|im_start|>assistant\n"
  assert example["chosen_pieces"][-1] == "Done.<|im_end|>\n"
  assert example["rejected_kinds"][-1] == "last_response"
  signature = {k: tf.TensorSpec([None], tf.string) for k in example}
  ds = tf.data.Dataset.from_generator(lambda: iter([example]), output_signature=signature)
  (out,) = preference_pairs(ds, preference_features(BYTES), anchored=True,
                            append_eos=False).as_numpy_iterator()
  weighted = out["chosen_targets"][out[f"chosen_{LOSS_WEIGHTS}"] > 0]
  assert BYTES.decode(weighted.tolist()) == "Done.<|im_end|>\n"
