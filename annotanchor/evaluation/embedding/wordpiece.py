"""BERT's uncased WordPiece tokenizer in plain Python (what all-MiniLM-L6-v2 uses).

Mirrors the `tokenizers` pipeline in the model's tokenizer.json: BertNormalizer
(clean text, spaces around CJK characters, accents stripped, lower case),
BertPreTokenizer (split on whitespace, each punctuation character its own word),
WordPiece (greedy longest match, "##" continuations, "[UNK]" for a word that cannot
be covered or is over 100 characters), then [CLS] ... [SEP] and truncation.
"""
import unicodedata
from typing import Dict, List


def _is_control(ch: str) -> bool:
  if ch in "\t\n\r":
    return False
  return unicodedata.category(ch) in ("Cc", "Cf")


def _is_whitespace(ch: str) -> bool:
  return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_punctuation(ch: str) -> bool:
  cp = ord(ch)
  # BERT counts every non-alphanumeric ASCII symbol as punctuation ("$", "^", "`").
  if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
    return True
  return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
  return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
          or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
          or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def normalize(text: str) -> str:
  """BertNormalizer with lowercase=True (which also strips accents)."""
  out = []
  for ch in text:
    if ch == "\0" or ch == "\ufffd" or _is_control(ch):
      continue
    if _is_whitespace(ch):
      out.append(" ")
    elif _is_cjk(ord(ch)):
      out.append(f" {ch} ")
    else:
      out.append(ch)
  text = unicodedata.normalize("NFD", "".join(out))
  text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
  return text.lower()


def pre_tokenize(text: str) -> List[str]:
  """Whitespace split, then every punctuation character becomes its own word."""
  words = []
  for chunk in text.split():
    current = []
    for ch in chunk:
      if _is_punctuation(ch):
        if current:
          words.append("".join(current))
          current = []
        words.append(ch)
      else:
        current.append(ch)
    if current:
      words.append("".join(current))
  return words


class WordPieceTokenizer:
  """Text -> ids for a BERT vocabulary.

  Args:
    vocab: token -> id (vocab.txt, one token a line, id = line number).
    max_length: the longest id sequence, [CLS] and [SEP] included (the model's
      max_seq_length; longer texts are truncated as sentence-transformers does).
  """

  def __init__(self, vocab: Dict[str, int], max_length: int = 256):
    self.vocab = vocab
    self.max_length = max_length
    self.unk, self.cls, self.sep = vocab["[UNK]"], vocab["[CLS]"], vocab["[SEP]"]

  @classmethod
  def from_file(cls, path: str, max_length: int = 256) -> "WordPieceTokenizer":
    with open(path, encoding="utf-8") as f:
      vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    return cls(vocab, max_length)

  def _word(self, word: str) -> List[int]:
    if len(word) > 100:
      return [self.unk]
    ids, start = [], 0
    while start < len(word):
      end = len(word)
      while end > start:
        piece = word[start:end] if start == 0 else "##" + word[start:end]
        if piece in self.vocab:
          ids.append(self.vocab[piece])
          break
        end -= 1
      if end == start:
        return [self.unk]
      start = end
    return ids

  def encode(self, text: str) -> List[int]:
    """[CLS] pieces [SEP], truncated to max_length."""
    ids = [i for w in pre_tokenize(normalize(text)) for i in self._word(w)]
    return [self.cls] + ids[:self.max_length - 2] + [self.sep]
