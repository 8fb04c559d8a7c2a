"""A `seqio.Vocabulary` over a Hugging Face tokenizer (`tokenizer.json`, the `tokenizers` library).

    vocab = HuggingFaceVocabulary("/models/olmo2")           # or ".../tokenizer.json", gs://...
    vocab.encode("<ann> topic:sea </ann> The waves")          # no BOS/EOS added
    vocab.decode(ids)                                         # the text, exactly

Special ids. The tokenizer's own pad/BOS/EOS tokens are read from `tokenizer_config.json`
(or `special_tokens_map.json`) next to `tokenizer.json`, or given as constructor arguments:

  eos_id  the tokenizer's EOS (required: it ends every document and every response);
  bos_id  the tokenizer's BOS, or EOS when it has none (GPT-2 style: `<|endoftext|>`
          separates documents); it is shifted in before every training sequence
          (`decoder_input_tokens`) and starts every prompt at decoding;
  pad_id  the tokenizer's pad, or EOS when it has none. Padding is then known by
          position (segment id 0, loss weight 0), never by its id, so reusing EOS masks
          no real EOS (see `feature_converter.py`).

Ids 0 and 1 are ordinary tokens in most such vocabularies; nothing in annotanchor takes
them for padding or EOS when the vocabulary is this one (`annotanchor.data.ids`).

Markers. The annotation delimiters and prompt markers (`prompts.marker_symbols`) either
become added special tokens, one id each after the tokenizer's last (`markers="special"`:
the vocabulary grows and reports its size, which the model's `vocab_size` must cover), or
stay plain strings of several tokens each (`markers="plain"`, the default: the ids, and
so an imported base model's embedding, stay as they are).

Exact text. Tokens are decoded with special tokens kept (the markers are text); pad, BOS
and EOS stand for no text and are dropped. Sequences are tokenized piece by piece
(`segments.py`), so a prefix space or `▁` that a tokenizer adds at the start of every
encode is turned off (ByteLevel `add_prefix_space`, Metaspace `prepend_scheme`, a
`Prepend` normalizer and its `Strip` decoder), and a tokenizer that still does not decode
a probe text back exactly (e.g. one that normalizes unicode) is refused at load.

tf: `_encode_tf` / `_decode_tf` run the same Rust tokenizer through `tf.py_function`, so
python and tf agree by construction; a batch of pieces is one call.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Optional, Sequence

import gin
import numpy as np
import seqio
import tensorflow as tf
import tokenizers

from annotanchor.data.chat_template import token_text
from annotanchor.data.prompts import PromptTemplate, marker_symbols
from annotanchor.errors import SettingError

MARKER_MODES = ("plain", "special")
TOKENIZER_FILE = "tokenizer.json"
# Read for the special tokens; copied with the checkpoint when present (`files()`).
CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")
# Decoded back exactly by any tokenizer annotanchor can use.
_PROBE = " Hello,  wörld!\n\n<ann> genre:myth hero:Mira </ann>\t你好 🙂 x=1.5e-3\n"


def _read(path: str) -> bytes:
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


def _piecewise_exact(spec: dict[str, Any]) -> dict[str, Any]:
  """Turns off what a tokenizer adds at the start of every encode (module docstring)."""
  def fix(node):
    if isinstance(node, dict):
      if node.get("type") == "ByteLevel" and "add_prefix_space" in node:
        node["add_prefix_space"] = False
      if node.get("type") == "Metaspace":
        node["prepend_scheme"] = "never"
        node.pop("add_prefix_space", None)
      for key in ("pretokenizers", "normalizers", "decoders"):
        if isinstance(node.get(key), list):
          node[key] = [fix(n) for n in node[key] if not _dropped(n)]
    return node

  def _dropped(node):  # Llama-2 style: `Prepend("▁")` on encode, `Strip(" ", 1, 0)` on decode.
    return isinstance(node, dict) and (node.get("type") == "Prepend" or (
        node.get("type") == "Strip" and node.get("start") == 1 and node.get("stop") == 0))

  for part in ("normalizer", "pre_tokenizer", "decoder"):
    if _dropped(spec.get(part)):
      spec[part] = None
    else:
      fix(spec.get(part))
  return spec


@gin.configurable
class HuggingFaceVocabulary(seqio.Vocabulary):
  """A Hugging Face tokenizer as a seqio vocabulary (module docstring).

  Args:
    path: a directory holding `tokenizer.json` (and optionally `tokenizer_config.json` /
      `special_tokens_map.json`), or the `tokenizer.json` file; any tf.io.gfile path.
    markers: "plain" or "special" (module docstring).
    marker_strings: the strings added in "special" mode; default
      `prompts.marker_symbols` of the standard PromptTemplate().
    pad_token, bos_token, eos_token: override the tokenizer's (token strings).

  Raises:
    SettingError: no tokenizer.json, a setting out of range, no EOS, a named token the
      tokenizer lacks, or a tokenizer that does not round-trip text.
  """

  def __init__(self, path: str, markers: str = "plain",
               marker_strings: Optional[Sequence[str]] = None,
               pad_token: Optional[str] = None, bos_token: Optional[str] = None,
               eos_token: Optional[str] = None):
    super().__init__(extra_ids=0)
    if markers not in MARKER_MODES:
      raise SettingError(f"HuggingFaceVocabulary.markers={markers!r}: expected one of "
                         f"{MARKER_MODES}")
    is_dir = tf.io.gfile.isdir(path)
    directory = path if is_dir else os.path.dirname(path)
    tokenizer_file = os.path.join(path, TOKENIZER_FILE) if is_dir else path
    if not tf.io.gfile.exists(tokenizer_file):
      raise SettingError(f"Hugging Face tokenizer {tokenizer_file!r}: no such file")
    self._path, self.markers = path, markers
    self._files = [tokenizer_file] + [p for p in (os.path.join(directory, n) for n in CONFIG_FILES)
                                      if tf.io.gfile.exists(p)]
    contents = {name: _read(p) for name, p in zip(self.file_names(), self._files)}
    try:
      spec = json.loads(contents[TOKENIZER_FILE])
      self._tokenizer = tokenizers.Tokenizer.from_str(json.dumps(_piecewise_exact(spec)))
    except Exception as e:  # A corrupt or foreign file: the library's message, on one line.
      raise SettingError(f"Hugging Face tokenizer {tokenizer_file!r} cannot be read: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    configured = {}
    for name in reversed(CONFIG_FILES):  # tokenizer_config.json wins.
      if name in contents:
        configured.update({k: token_text(v) for k, v in json.loads(contents[name]).items()
                           if k in ("pad_token", "bos_token", "eos_token") and v})
    if markers == "special":
      if marker_strings is None:
        marker_strings = marker_symbols(PromptTemplate())
      self.marker_strings = tuple(marker_strings)
      own = self._size()
      self._tokenizer.add_special_tokens(
          [tokenizers.AddedToken(m, special=True, normalized=False) for m in self.marker_strings])
      logging.info("HuggingFaceVocabulary %s: markers %s are special tokens %s; vocabulary "
                   "size %d (the tokenizer's own %d): the model's vocab_size must be at least "
                   "%d", path, list(self.marker_strings),
                   [self._tokenizer.token_to_id(m) for m in self.marker_strings],
                   self._size(), own, self._size())
    else:
      self.marker_strings = ()
    self._vocab_size = self._size()  # Fixed from here on; get_vocab() builds a dict.
    eos = eos_token or configured.get("eos_token")
    if not eos:
      raise SettingError(f"Hugging Face tokenizer {path!r} names no eos_token (in "
                         f"{' or '.join(CONFIG_FILES)}): set HuggingFaceVocabulary.eos_token")
    self.tokens = {"eos": eos, "bos": bos_token or configured.get("bos_token") or eos,
                   "pad": pad_token or configured.get("pad_token") or eos}
    self._ids = {}
    for role, token in self.tokens.items():
      token_id = self._tokenizer.token_to_id(token)
      if token_id is None:
        raise SettingError(f"Hugging Face tokenizer {path!r} has no token {token!r} (its "
                           f"{role}_token)")
      self._ids[role] = token_id
    self._digest = self._fingerprint(contents)
    self._check_round_trip()

  def _size(self) -> int:
    # Ids may have holes (added tokens placed past the model's padded size): the last + 1.
    return max(self._tokenizer.get_vocab(with_added_tokens=True).values()) + 1

  def _fingerprint(self, contents: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(contents):
      digest.update(name.encode() + b"\0" + hashlib.sha256(contents[name]).digest())
    digest.update(json.dumps(self.settings(), sort_keys=True).encode())
    return digest.hexdigest()

  def _check_round_trip(self) -> None:
    pieces = _PROBE.split(" ")
    ids = [t for i, p in enumerate(pieces) for t in self._encode(p if i == 0 else " " + p)]
    for got in (self._decode(self._encode(_PROBE)), self._decode(ids)):
      if got != _PROBE:
        raise SettingError(
            f"Hugging Face tokenizer {self._path!r} does not decode back the text it encodes "
            f"({_PROBE!r} -> {got!r}): annotanchor needs an exact round trip")

  # What a checkpoint records and copies (training/metadata.py).

  def settings(self) -> dict[str, Any]:
    """The constructor settings besides the path: with the files they give the same ids."""
    return {"markers": self.markers, "marker_strings": list(self.marker_strings),
            "pad_token": self.tokens["pad"], "bos_token": self.tokens["bos"],
            "eos_token": self.tokens["eos"]}

  def files(self) -> list[str]:
    """The tokenizer files to copy alongside a checkpoint (the tokenizer.json first)."""
    return list(self._files)

  def file_names(self) -> list[str]:
    """The names of `files()` in a tokenizer directory: "tokenizer.json" first, whatever
    the given file was called."""
    return [TOKENIZER_FILE] + [os.path.basename(p) for p in self._files[1:]]

  def export(self, directory: str) -> list[str]:
    """Writes the tokenizer files for a Hugging Face model directory; returns their paths.

    In "plain" mode these are copies of `files()`. In "special" mode tokenizer.json also
    holds the markers as added special tokens under the same ids, so that `transformers`
    reads the ids this vocabulary wrote. The tokenizer's own behaviour (a prefix space
    included) is kept: annotanchor's piecewise adjustments are not written.
    """
    tf.io.gfile.makedirs(directory)
    written = []
    for path, name in zip(self._files, self.file_names()):
      target = os.path.join(directory, name)
      if name == TOKENIZER_FILE and self.marker_strings:
        original = tokenizers.Tokenizer.from_str(_read(path).decode("utf-8"))
        original.add_special_tokens([tokenizers.AddedToken(m, special=True, normalized=False)
                                     for m in self.marker_strings])
        with tf.io.gfile.GFile(target, "w") as f:
          f.write(original.to_str())
      else:
        tf.io.gfile.copy(path, target, overwrite=True)
      written.append(target)
    return written

  @property
  def path(self) -> str:
    return self._path

  @property
  def sha256(self) -> str:
    """A digest of the files and the settings: equal digests give the same ids."""
    return self._digest

  @property
  def tokenizer(self) -> tokenizers.Tokenizer:
    """The tokenizer, markers added (in "special" mode) and prefix spaces turned off."""
    return self._tokenizer

  # seqio.Vocabulary.

  @property
  def eos_id(self) -> int:
    return self._ids["eos"]

  @property
  def bos_id(self) -> int:
    return self._ids["bos"]

  @property
  def pad_id(self) -> int:
    return self._ids["pad"]

  @property
  def decoder_start_id(self) -> int:
    """The id shifted in before every sequence (see annotanchor/data/ids.py): BOS."""
    return self._ids["bos"]

  @property
  def unk_id(self) -> Optional[int]:
    model = self._tokenizer.model
    unk = getattr(model, "unk_token", None)
    return self._tokenizer.token_to_id(unk) if unk else None

  @property
  def _base_vocab_size(self) -> int:
    return self._vocab_size

  def _encode(self, s: str) -> list[int]:
    return self._tokenizer.encode(s, add_special_tokens=False).ids

  def _decode(self, ids) -> str:
    size, structural = self._vocab_size, {self.pad_id, self.bos_id, self.eos_id}
    kept = [int(i) for i in ids if 0 <= int(i) < size and int(i) not in structural]
    return self._tokenizer.decode(kept, skip_special_tokens=False)

  def _encode_batch(self, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    encoded = self._tokenizer.encode_batch([t.decode("utf-8") for t in texts.tolist()],
                                           add_special_tokens=False)
    flat = [t for e in encoded for t in e.ids]
    return np.asarray(flat, np.int32), np.asarray([len(e.ids) for e in encoded], np.int64)

  def encode_batch_tf(self, texts: tf.Tensor) -> tf.RaggedTensor:
    """Tokenizes a 1-D string tensor into a `[len(texts), (tokens)]` int32 RaggedTensor."""
    flat, lengths = tf.py_function(lambda t: self._encode_batch(t.numpy()), [texts],
                                   [tf.int32, tf.int64])
    flat.set_shape([None])
    lengths.set_shape([None])
    return tf.RaggedTensor.from_row_lengths(flat, lengths, validate=False)

  def _encode_tf(self, s: tf.Tensor):
    """A scalar string -> [tokens] int32; a 1-D one -> a RaggedTensor (as SentencePiece's)."""
    s = tf.convert_to_tensor(s, tf.string)
    if s.shape.rank == 1:
      return self.encode_batch_tf(s)
    return self.encode_batch_tf(tf.reshape(s, [1])).flat_values

  def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
    """[tokens] -> a scalar string; [batch, tokens] -> [batch] strings."""
    ids = tf.convert_to_tensor(ids)
    rank = ids.shape.rank

    def decode(t):
      rows = [t.numpy().tolist()] if t.shape.rank == 1 else t.numpy().tolist()
      return np.asarray([self._decode(r).encode("utf-8") for r in rows], object)

    texts = tf.py_function(decode, [ids], tf.string)
    return tf.reshape(texts, []) if rank == 1 else tf.reshape(texts, [-1])

  def __eq__(self, other) -> bool:
    return isinstance(other, HuggingFaceVocabulary) and other.sha256 == self.sha256

  def __hash__(self) -> int:
    return hash(self._digest)

  def __str__(self) -> str:
    return (f"HuggingFaceVocabulary(path={self._path}, markers={self.markers}, "
            f"size={self.vocab_size}, pad={self.pad_id}, bos={self.bos_id}, eos={self.eos_id})")
