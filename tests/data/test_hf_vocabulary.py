"""HuggingFaceVocabulary: exact round trips, python/tf agreement, transformers' ids, markers."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import transformers

from annotanchor.data import vocabulary as vocabulary_lib
from annotanchor.data.hf_vocabulary import HuggingFaceVocabulary
from annotanchor.data.prompts import PromptTemplate, marker_symbols
from annotanchor.data.segments import encode_pieces
from annotanchor.errors import SettingError
from tests import hf_tokenizer

MARKERS = marker_symbols(PromptTemplate())
TEXTS = ["the cat sat on the mat.", "", " ", "\n\n", "héllo wörld\n你好 🙂\tend \r\n",
         "<user> Tell a story.\n<assistant> <ann> genre:myth hero:Mira </ann> Once, the cat...",
         "</ann><ann><user><assistant>", "  two  spaces  ", "unseen: ÆØÅ ∑ 𝔸 \u200b é"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
  return hf_tokenizer.build(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module", params=["plain", "special"])
def vocab(request, tokenizer_dir):
  return HuggingFaceVocabulary(tokenizer_dir, markers=request.param)


def test_ids_zero_and_one_are_words_and_eos_is_reused(tokenizer_dir):
  v = HuggingFaceVocabulary(tokenizer_dir)
  assert v.encode(hf_tokenizer.WORD_0 + hf_tokenizer.WORD_1) == [0, 1]
  eos = v.tokenizer.token_to_id("<|endoftext|>")
  assert (v.eos_id, v.bos_id, v.pad_id, v.decoder_start_id) == (eos, eos, eos, eos)
  assert v.vocab_size == eos + 1


def test_tokens_named_in_the_config_give_pad_and_bos(tmp_path):
  v = HuggingFaceVocabulary(hf_tokenizer.build(tmp_path, pad_token="<|pad|>",
                                               bos_token="<|bos|>"))
  t = v.tokenizer.token_to_id
  assert (v.pad_id, v.bos_id, v.eos_id) == (t("<|pad|>"), t("<|bos|>"), t("<|endoftext|>"))
  assert len({v.pad_id, v.bos_id, v.eos_id, 0, 1}) == 5


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_is_exact(vocab, text):
  assert vocab.decode(vocab.encode(text)) == text


def test_piecewise_tokens_decode_to_the_concatenated_text(vocab):
  pieces = ["<user> Tell.\n<assistant>", "<ann>", " genre:", "myth", " </ann>", " Once.\n\nEnd"]
  ids = [t for p in pieces for t in vocab.encode(p)]
  assert vocab.decode(ids) == "".join(pieces)
  ragged = encode_pieces(vocab, tf.constant(pieces))
  assert ragged.to_list() == [vocab.encode(p) for p in pieces]


def test_python_and_tf_agree(vocab):
  for text in TEXTS:
    ids = vocab.encode_tf(tf.constant(text))
    assert ids.dtype == tf.int32 and ids.shape.rank == 1
    assert ids.numpy().tolist() == vocab.encode(text)
    assert vocab.decode_tf(ids).numpy().decode("utf-8") == text
  batch = vocab.encode_tf(tf.constant(TEXTS))
  assert batch.to_list() == [vocab.encode(t) for t in TEXTS]
  # decode_tf of a padded batch: what follows EOS is padding, as in seqio.
  rows = [vocab.encode(t)[:6] + [vocab.eos_id] for t in TEXTS[:3]]
  width = max(map(len, rows)) + 2
  padded = np.full((len(rows), width), vocab.pad_id, np.int32)
  for i, r in enumerate(rows):
    padded[i, :len(r)] = r
  got = [s.decode("utf-8") for s in vocab.decode_tf(tf.constant(padded)).numpy()]
  assert got == [vocab.decode(r) for r in rows]


def test_tf_encoding_runs_inside_a_dataset_map(vocab):
  ds = tf.data.Dataset.from_tensor_slices(TEXTS).map(vocab.encode_tf)
  assert [x.tolist() for x in ds.as_numpy_iterator()] == [vocab.encode(t) for t in TEXTS]


def test_ids_equal_transformers_fast_tokenizer(tokenizer_dir, vocab):
  reference = transformers.PreTrainedTokenizerFast(
      tokenizer_file=os.path.join(tokenizer_dir, "tokenizer.json"), eos_token="<|endoftext|>")
  if vocab.markers == "special":
    reference.add_special_tokens({"additional_special_tokens": MARKERS})
  for text in TEXTS:
    assert vocab.encode(text) == reference.encode(text, add_special_tokens=False), text
  assert vocab.vocab_size == len(reference)
  assert vocab.eos_id == reference.eos_token_id


def test_special_markers_are_one_id_each_after_the_tokenizer(tokenizer_dir):
  plain = HuggingFaceVocabulary(tokenizer_dir, markers="plain")
  special = HuggingFaceVocabulary(tokenizer_dir, markers="special")
  assert special.vocab_size == plain.vocab_size + len(MARKERS)
  marker_ids = [special.encode(m) for m in MARKERS]
  assert marker_ids == [[plain.vocab_size + i] for i in range(len(MARKERS))]
  assert all(len(plain.encode(m)) > 1 for m in MARKERS)
  # Ids below the tokenizer's own size are the same in both modes.
  assert special.encode("the cat sat.") == plain.encode("the cat sat.")
  assert special.sha256 != plain.sha256 and special != plain
  assert HuggingFaceVocabulary(tokenizer_dir, markers="special") == special


def test_markers_already_in_the_tokenizer_do_not_grow_it(tmp_path):
  directory = hf_tokenizer.build(tmp_path)
  spec_path = os.path.join(directory, "tokenizer.json")
  grown = HuggingFaceVocabulary(directory, markers="special")
  grown.tokenizer.save(spec_path)  # Markers now part of tokenizer.json.
  again = HuggingFaceVocabulary(directory, markers="special")
  assert again.vocab_size == grown.vocab_size
  assert [again.encode(m) for m in MARKERS] == [grown.encode(m) for m in MARKERS]


def test_a_tokenizer_json_path_and_its_directory_agree(tokenizer_dir):
  by_file = HuggingFaceVocabulary(os.path.join(tokenizer_dir, "tokenizer.json"))
  by_dir = vocabulary_lib.load_vocabulary(tokenizer_dir)
  assert isinstance(by_dir, HuggingFaceVocabulary) and by_file == by_dir
  assert [os.path.basename(p) for p in by_dir.files()] == ["tokenizer.json",
                                                          "tokenizer_config.json"]


def test_a_prefix_space_is_turned_off(tmp_path):
  directory = hf_tokenizer.build(tmp_path)
  path = os.path.join(directory, "tokenizer.json")
  with open(path) as f:
    spec = json.load(f)
  spec["pre_tokenizer"]["add_prefix_space"] = True
  with open(path, "w") as f:
    json.dump(spec, f)
  v = HuggingFaceVocabulary(directory)
  assert v.decode(v.encode("cat") + v.encode("sat")) == "catsat"


def test_a_tokenizer_that_normalizes_text_is_refused(tmp_path):
  directory = hf_tokenizer.build(tmp_path)
  path = os.path.join(directory, "tokenizer.json")
  with open(path) as f:
    spec = json.load(f)
  spec["normalizer"] = {"type": "Lowercase"}
  with open(path, "w") as f:
    json.dump(spec, f)
  with pytest.raises(SettingError, match="does not decode back"):
    HuggingFaceVocabulary(directory)


def test_bad_settings_are_one_line_errors(tmp_path, tokenizer_dir):
  with pytest.raises(SettingError, match="no such file"):
    HuggingFaceVocabulary(str(tmp_path / "missing"))
  with pytest.raises(SettingError, match="markers='both'"):
    HuggingFaceVocabulary(tokenizer_dir, markers="both")
  with pytest.raises(SettingError, match="has no token '<pad>'"):
    HuggingFaceVocabulary(tokenizer_dir, pad_token="<pad>")
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "tokenizer.json").write_text("{not json")
  with pytest.raises(SettingError, match="cannot be read"):
    HuggingFaceVocabulary(str(tmp_path / "bad"))


def test_export_gives_transformers_the_same_ids(tokenizer_dir, vocab, tmp_path):
  written = vocab.export(str(tmp_path / "export"))
  assert [os.path.basename(p) for p in written] == vocab.file_names()
  reference = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "export"))
  for text in TEXTS:
    assert reference.encode(text, add_special_tokens=False) == vocab.encode(text), text
  assert reference.eos_token_id == vocab.eos_id
  if vocab.markers == "special":
    assert [reference.convert_tokens_to_ids(m) for m in MARKERS] == [
        vocab.encode(m)[0] for m in MARKERS]
