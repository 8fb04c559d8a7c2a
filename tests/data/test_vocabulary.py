"""SentencePiece training (CLI), markers as single tokens, exact piece-wise decoding."""
import json

from annotanchor.data import vocabulary
from annotanchor.data.prompts import PromptTemplate, marker_symbols
from annotanchor.data.segments import encode_pieces

import tensorflow as tf

TEXTS = ["The fox ran home.\n\nThe dog slept.", "<ann> animal:fox </ann> A fox.",
         "<user> Tell me.\n<assistant> Fine, the end."] * 20


def test_cli_trains_a_model_with_markers_as_single_tokens(tmp_path, capsys):
  corpus = tmp_path / "corpus.jsonl"
  corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
  path = str(tmp_path / "spm.model")
  vocabulary.main([str(corpus), f"--output={path}", "--vocab_size=400"])
  assert "wrote" in capsys.readouterr().out
  vocab = vocabulary.load_vocabulary(path)
  assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2)
  for marker in marker_symbols(PromptTemplate()):
    assert len(vocab.encode(marker)) == 1
  pieces = ["<user> Tell me.\n<assistant>", "<ann>", " animal:", "fox", " </ann>", " A fox.\n\nZ!"]
  ids = encode_pieces(vocab, tf.constant(pieces)).flat_values.numpy().tolist()
  assert vocab.decode(ids) == "".join(pieces)  # byte fallback: no UNK for "Z!"


def test_cached_model_is_trained_once(tmp_path):
  calls = []
  def texts():
    calls.append(1)
    return iter(TEXTS)
  first = vocabulary.cached_sentencepiece(texts, str(tmp_path), "k", vocab_size=400)
  assert vocabulary.cached_sentencepiece(texts, str(tmp_path), "k", vocab_size=400) == first
  assert len(calls) == 1
