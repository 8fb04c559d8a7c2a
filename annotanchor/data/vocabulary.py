"""SentencePiece vocabularies: trained (cached) with our markers as single pieces, or loaded
(and Hugging Face tokenizers loaded by path, see `hf_vocabulary.py`).

Trained models use pad=0, eos=1, unk=2 (the SeqIO convention), no BOS, identity
normalization (newlines survive), byte fallback (no UNK on unseen characters)
and no dummy prefix, so that text tokenized piece by piece (see
`segments.py`) decodes back to exactly the concatenated text. The annotation
delimiters and prompt markers are user-defined symbols: one token each.

CLI:

  python -m annotanchor.data.vocabulary --output=spm.model --vocab_size=2048 \
      corpus.jsonl [more.txt ...]
"""
import argparse
import hashlib
import io
import json
import os
from typing import Callable, Iterable, Optional, Sequence

import gin
import seqio
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2
import tensorflow as tf

from annotanchor.atomic_files import write_atomic
from annotanchor.data.hf_vocabulary import HuggingFaceVocabulary
from annotanchor.data.prompts import PromptTemplate, marker_symbols
from annotanchor.errors import SettingError


@gin.configurable
def train_sentencepiece(texts: Iterable[str], output_path: str, vocab_size: int = 2048,
                        user_defined_symbols: Sequence[str] = (),
                        model_type: str = "unigram") -> str:
  """Trains a SentencePiece model and writes it atomically to `output_path`.

  Args:
    texts: training sentences (documents are fine; newlines are kept).
    output_path: where to write the `.model` file (any tf.io.gfile path).
    vocab_size: target size; smaller corpora may give fewer pieces.
    user_defined_symbols: strings that always become one token; default the standard
      template's `marker_symbols(PromptTemplate())`.
    model_type: "unigram" or "bpe".

  Returns:
    `output_path`.
  """
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
      model_type=model_type, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
      user_defined_symbols=list(user_defined_symbols or marker_symbols(PromptTemplate())),
      normalization_rule_name="identity", add_dummy_prefix=False,
      remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
      split_digits=True, byte_fallback=True, hard_vocab_limit=False,
      character_coverage=1.0, max_sentence_length=1 << 16, minloglevel=2)
  write_atomic(output_path, model.getvalue())
  return output_path


def cached_sentencepiece(texts_fn: Callable[[], Iterable[str]], cache_dir: str, key: str,
                         vocab_size: int = 2048,
                         user_defined_symbols: Sequence[str] = ()) -> str:
  """Trains a model once per (key, settings) under `cache_dir`; returns its path."""
  symbols = list(user_defined_symbols or marker_symbols(PromptTemplate()))
  digest = hashlib.sha256(json.dumps([key, vocab_size, symbols]).encode()).hexdigest()[:16]
  path = os.path.join(cache_dir, f"spm-{digest}.model")
  if not tf.io.gfile.exists(path):
    train_sentencepiece(texts_fn(), path, vocab_size, symbols)
  return path


def load_vocabulary(path: str, piecewise_exact: bool = True) -> seqio.Vocabulary:
  """Loads an existing vocabulary: SentencePiece (ours, or e.g. a T5 or Gemma one) or
  Hugging Face (a directory holding tokenizer.json, or a tokenizer.json file).

  In a model that did not reserve them, the delimiters and markers are plain
  strings and take several tokens each, which works unchanged. A Hugging Face
  tokenizer is a `HuggingFaceVocabulary` with its gin-bound settings (e.g.
  `HuggingFaceVocabulary.markers = 'special'`).

  Args:
    path: the `.model` file, or the Hugging Face tokenizer.
    piecewise_exact: turn off the dummy prefix so that sequences tokenized
      piece by piece read as the concatenated text (T5 models add a space at
      every piece otherwise).

  Returns:
    The vocabulary.
  """
  if is_huggingface(path):
    return HuggingFaceVocabulary(path)
  if not tf.io.gfile.exists(path):  # seqio would fail only at the first tokenization.
    raise SettingError(f"vocabulary {path!r}: no such file")
  overrides = sentencepiece_model_pb2.NormalizerSpec(add_dummy_prefix=False) \
      if piecewise_exact else None
  return seqio.SentencePieceVocabulary(path, normalizer_spec_overrides=overrides)


def is_huggingface(path: str) -> bool:
  """Whether a vocabulary path names a Hugging Face tokenizer (a directory or a .json)."""
  return path.endswith(".json") or tf.io.gfile.isdir(path)


class LazySentencePieceVocabulary(seqio.SentencePieceVocabulary):
  """A SentencePiece vocabulary whose model file is produced on first use.

  Tasks are registered at import, before gin is parsed; the model file of a
  generated corpus depends on gin settings, so it is built only when a
  pipeline first tokenizes.
  """

  def __init__(self, model_path_fn: Callable[[], str]):
    self._model_path_fn = model_path_fn
    super().__init__(sentencepiece_model_file="")

  def _model_context(self):
    if not self._model:
      self._sentencepiece_model_file = self._model_path_fn()
    return super()._model_context()


class UnconvertibleVocabulary(ValueError):
  """A SentencePiece model that no Hugging Face tokenizer.json reproduces exactly (why)."""


# sentencepiece_model_pb2.ModelProto.SentencePiece.Type / TrainerSpec.ModelType.
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6
_UNIGRAM = 1


def sentencepiece_to_tokenizers(vocabulary: seqio.SentencePieceVocabulary):
  """The vocabulary's SentencePiece model as a `tokenizers.Tokenizer` with the same ids.

  What the vocabulary runs (its normalizer overrides applied: no dummy prefix when
  loaded piecewise-exact) is expressed in Hugging Face's tokenizer.json terms: a Unigram
  model over every piece and its score (SentencePiece's unigram encoder is one Viterbi
  pass over the whole normalized text, so there is no pre-tokenizer), byte fallback,
  spaces escaped to "▁" (and the model's own normalization rule, if any, as the
  precompiled character map SentencePiece applies); control pieces (pad, EOS, BOS) are
  special tokens, user-defined pieces (the markers) added tokens kept as text.

  Raises:
    UnconvertibleVocabulary: a model this cannot express (a BPE, word or char model,
      unescaped whitespace, whitespace as suffix, a denormalizer), naming it.
  """
  import tokenizers
  from tokenizers import decoders, models, normalizers

  proto = sentencepiece_model_pb2.ModelProto.FromString(vocabulary.sp_model)
  trainer, spec = proto.trainer_spec, proto.normalizer_spec
  if trainer.model_type != _UNIGRAM:
    kind = sentencepiece_model_pb2.TrainerSpec.ModelType.Name(trainer.model_type)
    raise UnconvertibleVocabulary(f"it is a {kind} SentencePiece model; only unigram models "
                                  f"convert exactly")
  if not spec.escape_whitespaces or trainer.treat_whitespace_as_suffix:
    raise UnconvertibleVocabulary("it does not escape whitespace as a '▁' prefix")
  if proto.denormalizer_spec.precompiled_charsmap:
    raise UnconvertibleVocabulary("it has a denormalizer, which tokenizer.json cannot express")
  pieces = list(proto.pieces)
  unk = [i for i, p in enumerate(pieces) if p.type == _UNKNOWN]
  model = models.Unigram([(p.piece, p.score) for p in pieces], unk[0] if unk else None,
                         trainer.byte_fallback)
  tokenizer = tokenizers.Tokenizer(model)
  steps = []
  if spec.precompiled_charsmap:
    steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
  if spec.remove_extra_whitespaces:
    steps += [normalizers.Replace(tokenizers.Regex("^ +| +$"), ""),
              normalizers.Replace(tokenizers.Regex(" {2,}"), " ")]
  if spec.add_dummy_prefix:
    steps.append(normalizers.Prepend(" "))
  steps.append(normalizers.Replace(" ", "\u2581"))
  tokenizer.normalizer = normalizers.Sequence(steps)
  tokenizer.pre_tokenizer = None
  parts = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
  if spec.add_dummy_prefix:
    parts.append(decoders.Strip(" ", 1, 0))
  tokenizer.decoder = decoders.Sequence(parts)
  tokenizer.add_tokens([tokenizers.AddedToken(p.piece, special=False, normalized=False)
                        for p in pieces if p.type == _USER_DEFINED])
  tokenizer.add_special_tokens([tokenizers.AddedToken(p.piece, special=True, normalized=False)
                                for p in pieces if p.type == _CONTROL])
  return tokenizer


def _read_texts(paths: Sequence[str], text_fields: Sequence[str]) -> Iterable[str]:
  for path in paths:
    with tf.io.gfile.GFile(path) as f:
      for line in f:
        if not path.endswith(".jsonl"):
          yield line.rstrip("\n")
          continue
        record = json.loads(line)
        for field in text_fields:
          value = record.get(field)
          for text in (value if isinstance(value, list) else [value]):
            if isinstance(text, str):
              yield text


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("inputs", nargs="+", help="text files (a sentence per line) or JSONL")
  parser.add_argument("--output", required=True, help="path of the .model file to write")
  parser.add_argument("--vocab_size", type=int, default=2048)
  parser.add_argument("--text_fields", default="text,annotations,prompt,response,annotation",
                      help="JSONL fields to train on (strings or lists of strings)")
  args = parser.parse_args(argv)
  path = train_sentencepiece(_read_texts(args.inputs, args.text_fields.split(",")), args.output,
                             args.vocab_size)
  print(f"wrote {path} ({spm.SentencePieceProcessor(model_file=path).vocab_size()} pieces)")


if __name__ == "__main__":
  main()
