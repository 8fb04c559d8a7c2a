"""A checkpoint -> a Hugging Face directory that `AutoModelForCausalLM.from_pretrained` loads.

  HF_DIR/config.json              the family's config (annotanchor/interchange/families.py)
                                  with the token ids the model was trained with
  HF_DIR/model.safetensors        every tensor, in the family's names and layouts
  HF_DIR/generation_config.json   the imported one, else those token ids
  HF_DIR/tokenizer files          the imported ones, else the checkpoint's own vocabulary

Any checkpoint whose TransformerConfig one family computes exactly exports: an imported
model, one fine-tuned from it (INITIAL_CHECKPOINT_PATH), or one trained here (pre-norm
without QK-norm is Llama, with per-head QK-norm Qwen3). The fields of config.json that
change no logit (token ids, max_position_embeddings) and the tokenizer come from the
imported model's MODEL_DIR/hf_source and hf_tokenizer, or from HF_SOURCE (an imported
MODEL_DIR or the original HF directory) for a model trained from one.

A checkpoint trained on another tokenizer than that source's (or with no source: trained
here from scratch) exports the vocabulary its metadata records (MODEL_DIR/vocabulary/):

  Hugging Face   its files (`HuggingFaceVocabulary.export`: markers="special" adds the
                 markers as special tokens under the ids trained with)
  SentencePiece  tokenizer.json converted from the model as the vocabulary runs it
                 (`vocabulary.sentencepiece_to_tokenizers`) and the .model as
                 tokenizer.model; refused (ConversionError) when the conversion cannot
                 be exact or does not encode the probe texts to the vocabulary's ids
  byte, pass-through, other: no tokenizer files (logged)

with tokenizer_config.json naming its pad/BOS/EOS tokens (BOS: the id training shifted in
before every sequence, annotanchor/data/ids.py: the tokenizer's BOS, its EOS when it has
none, SentencePiece's pad 0), tokenizer_class PreTrainedTokenizerFast (tokenizer.json as
written), and a post-processor that starts every encode with that id, so
`tokenizer(text)` and `generate` see what training saw; config.json and
generation_config.json hold the same bos/eos/pad ids, so generation stops at our EOS.
Written to HF_DIR.tmp-<pid> and renamed: a failed export leaves no HF_DIR.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import Any, Callable

import jax
import numpy as np
import seqio

from annotanchor.atomic_files import write_with
from annotanchor.data import ids as ids_lib, vocabulary as vocabulary_lib
from annotanchor.data.hf_vocabulary import _PROBE, HuggingFaceVocabulary
from annotanchor.data.prompts import marker_symbols
from annotanchor.errors import SettingError
from annotanchor.interchange import families, names, safetensors_io
from annotanchor.interchange.import_hf import (
    SOURCE_DIR, TOKENIZER_DIR, TOKENIZER_FILES, ConversionError, abstract_params)
from annotanchor.training import checkpoints, metadata as metadata_lib

EXPORT_DTYPES = ("float32", "bfloat16")
TOKEN_IDS = ("bos_token_id", "eos_token_id", "pad_token_id")
# Texts the written tokenizer must encode as the vocabulary does (with the template's
# markers): every check is of these, besides the tokenizer's own probe.
PROBES = (_PROBE, "the cat sat on the mat.", "A story of the sea:\n\nthe waves rolled.",
          "  two  spaces\tand a tab\n", "x=1.5e-3, 42 and 007", "héllo wörld, 你好 🙂")


def _source_dirs(model_dir: str, hf_source: str | None) -> tuple[str | None, str | None]:
  """(directory with config.json/generation_config.json, directory with tokenizer files)."""
  root = hf_source or model_dir
  for config_dir, tokenizer_dir in ((os.path.join(root, SOURCE_DIR),
                                     os.path.join(root, TOKENIZER_DIR)), (root, root)):
    if os.path.exists(os.path.join(config_dir, "config.json")):
      return config_dir, tokenizer_dir
  if hf_source:
    raise ConversionError(f"HF_SOURCE={hf_source!r} holds neither {SOURCE_DIR}/config.json "
                          f"(an imported MODEL_DIR) nor config.json (a Hugging Face directory)")
  return None, None


def _same_as_source(description, tokenizer_dir: str | None) -> bool:
  """Whether `tokenizer_dir` holds the tokenizer the checkpoint records (True when it
  records none that export could write instead)."""
  kind = description.get("kind")
  if kind not in ("huggingface", "sentencepiece"):
    return True
  if kind == "sentencepiece":
    model = os.path.join(tokenizer_dir, "tokenizer.model")
    if not os.path.exists(model):
      return False
    with open(model, "rb") as f:
      return hashlib.sha256(f.read()).hexdigest() == description["sha256"]
  if not os.path.exists(os.path.join(tokenizer_dir, "tokenizer.json")):
    return False
  try:
    source = HuggingFaceVocabulary(tokenizer_dir, **description["settings"])
  except SettingError:
    return False
  return source.sha256 == description["sha256"]


def _special_ids(vocabulary) -> dict[str, int]:
  """The bos/eos/pad ids training used: BOS is the id shifted in before every sequence."""
  return {"bos_token_id": ids_lib.decoder_start_id(vocabulary),
          "eos_token_id": int(vocabulary.eos_id), "pad_token_id": int(vocabulary.pad_id)}


def _starting(tokenizer, start_token: str, start_id: int, where: str):
  """`tokenizer` with a post-processor that puts `start_id` before every encode (kept
  when it already does)."""
  from tokenizers import processors

  def starts(t):
    return all(t.encode(p).ids == [start_id] + t.encode(p, add_special_tokens=False).ids
               for p in PROBES[:2])

  if starts(tokenizer):
    return tokenizer
  template = processors.TemplateProcessing(
      single=f"{start_token} $A", pair=f"{start_token} $A $B:1",
      special_tokens=[(start_token, start_id)])
  own = tokenizer.post_processor
  tokenizer.post_processor = (processors.Sequence([own, template])
                              if isinstance(own, processors.ByteLevel) else template)
  if not starts(tokenizer):
    raise ConversionError(f"{where}: the exported tokenizer does not start an encode with "
                          f"{start_token!r} (id {start_id}), the id training shifted in")
  return tokenizer


def _write_tokenizer_settings(stage: str, tokens: dict[str, str], max_len: int) -> None:
  """Names the special tokens in tokenizer_config.json (and special_tokens_map.json)."""
  path = os.path.join(stage, "tokenizer_config.json")
  settings = {}
  if os.path.exists(path):
    with open(path) as f:
      settings = json.load(f)
  for key in ("add_bos_token", "add_eos_token"):  # tokenizer.json's post-processor rules.
    settings.pop(key, None)
  settings.update({f"{role}_token": token for role, token in tokens.items()},
                  tokenizer_class="PreTrainedTokenizerFast")
  settings.setdefault("model_max_length", max_len)
  with open(path, "w") as f:
    json.dump(settings, f, indent=2, ensure_ascii=False)
  mapped = os.path.join(stage, "special_tokens_map.json")
  if os.path.exists(mapped):
    with open(mapped) as f:
      special = json.load(f)
    special.update({f"{role}_token": token for role, token in tokens.items()})
    with open(mapped, "w") as f:
      json.dump(special, f, indent=2, ensure_ascii=False)


def write_tokenizer(vocabulary: seqio.Vocabulary, stage: str, *, markers: list[str],
                    max_len: int, where: str) -> str:
  """Writes `vocabulary` as Hugging Face tokenizer files into `stage` (module docstring);
  returns what was written, for the log.

  Raises:
    ConversionError: a SentencePiece model no tokenizer.json reproduces, or a written
      tokenizer that does not encode the probe texts as the vocabulary does.
  """
  import tokenizers

  start = ids_lib.decoder_start_id(vocabulary)
  path = os.path.join(stage, "tokenizer.json")
  probes = [*PROBES, *markers, " ".join(markers)]
  if isinstance(vocabulary, HuggingFaceVocabulary):
    vocabulary.export(stage)
    tokenizer = tokenizers.Tokenizer.from_file(path)
    tokens = {"bos": vocabulary.tokens["bos"], "eos": vocabulary.tokens["eos"],
              "pad": vocabulary.tokens["pad"]}
    what = f"the Hugging Face tokenizer of {vocabulary.path}"
    # Its own start-of-encode behaviour (e.g. a prefix space) is kept (export's docstring):
    # the special tokens, and markers made special, must keep their ids.
    probes = [*(markers if vocabulary.markers == "special" else []), *sorted(set(tokens.values()))]
    if any(tokenizer.encode(p, add_special_tokens=False).ids != vocabulary.encode(p)
           for p in PROBES):
      what += (" (it changes the start of an encode, e.g. a prefix space, which annotanchor "
               "turns off: the first token of a text may differ from training's)")
  elif isinstance(vocabulary, seqio.SentencePieceVocabulary):
    source = vocabulary.sentencepiece_model_file
    try:
      tokenizer = vocabulary_lib.sentencepiece_to_tokenizers(vocabulary)
    except vocabulary_lib.UnconvertibleVocabulary as e:
      raise ConversionError(f"{where}: its SentencePiece vocabulary {source} cannot be "
                            f"written as a Hugging Face tokenizer: {e}") from None
    piece = vocabulary.tokenizer.id_to_piece
    tokens = {"bos": piece(start), "eos": piece(vocabulary.eos_id),
              "pad": piece(vocabulary.pad_id)}
    if vocabulary.unk_id is not None and vocabulary.unk_id >= 0:
      tokens["unk"] = piece(vocabulary.unk_id)
    with open(os.path.join(stage, "tokenizer.model"), "wb") as f:
      f.write(vocabulary.sp_model)
    what = f"the SentencePiece vocabulary {source}, converted"
  else:
    raise TypeError(type(vocabulary).__name__)
  tokenizer = _starting(tokenizer, tokens["bos"], start, where)
  tokenizer.save(path)
  tokenizer = tokenizers.Tokenizer.from_file(path)
  for text in probes:
    expected = vocabulary.encode(text)
    got = tokenizer.encode(text, add_special_tokens=False).ids
    if got != expected:
      raise ConversionError(f"{where}: the tokenizer written from {what} encodes {text!r} as "
                            f"{got[:12]} where the vocabulary trained with gives "
                            f"{expected[:12]}; not exported")
    structural = {start, vocabulary.eos_id, vocabulary.pad_id}
    if tokenizer.decode([i for i in got if i not in structural],
                        skip_special_tokens=False) != vocabulary.decode(expected):
      raise ConversionError(f"{where}: the tokenizer written from {what} does not decode "
                            f"{text!r} as the vocabulary does; not exported")
  _write_tokenizer_settings(stage, tokens, max_len)
  return (f"{what}: bos {tokens['bos']!r} (id {start}), eos {tokens['eos']!r} (id "
          f"{vocabulary.eos_id}), pad {tokens['pad']!r} (id {vocabulary.pad_id})")


def _host(array: jax.Array) -> np.ndarray:
  if not array.is_fully_addressable:  # Pods: every process gathers, process 0 writes.
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(array, tiled=True))
  return np.asarray(jax.device_get(array))


def export_checkpoint(checkpoint_path: str, hf_dir: str, *, mesh, dtype: str | None = None,
                      hf_source: str | None = None,
                      log: Callable[[str], None] = print) -> dict[str, Any]:
  """Exports the checkpoint at `checkpoint_path` to `hf_dir`; returns the config.json.

  Args:
    checkpoint_path: a MODEL_DIR, its checkpoints/ directory or a step directory.
    hf_dir: the directory to create.
    mesh: the mesh the parameters are restored onto.
    dtype: the tensors' dtype, "float32" or "bfloat16" (default the parameters').
    hf_source: where the tokenizer and the logit-neutral config.json fields come from
      (default the checkpoint's own MODEL_DIR).

  Raises:
    UnsupportedConfigError: no family computes what the checkpoint's network does.
    ConversionError: hf_dir exists, or the checkpoint does not describe itself.
  """
  import ml_dtypes

  hf_dir = os.path.abspath(hf_dir)
  if os.path.exists(hf_dir) and os.listdir(hf_dir):
    raise ConversionError(f"HF_DIR={hf_dir!r} exists and is not empty; export into a new "
                          f"directory")
  # Resolved once, so a MODEL_DIR still training cannot give the metadata of one step and
  # the weights of the next.
  step_dir = checkpoints.resolve_step_dir(checkpoint_path, "CHECKPOINT_PATH")
  metadata, model_dir = metadata_lib.read_metadata(step_dir)
  if metadata is None:
    raise ConversionError(f"CHECKPOINT_PATH={checkpoint_path!r} records no model settings "
                          f"(written before checkpoints described themselves)")
  config = metadata.model
  where = f"CHECKPOINT_PATH={checkpoint_path!r}"
  family = families.family_for(config, where)
  dtype = dtype or config.param_dtype
  if dtype not in EXPORT_DTYPES:
    raise ConversionError(f"export dtype={dtype!r}; expected one of {sorted(EXPORT_DTYPES)}")
  out_dtype = np.dtype(ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float32)
  config_dir, tokenizer_dir = _source_dirs(model_dir, hf_source)
  source = None
  if config_dir:
    with open(os.path.join(config_dir, "config.json")) as f:
      source = json.load(f)
  hf_config = families.config_to_hf(config, dtype=dtype, where=where, source=source)
  # The tokenizer: the source's when it is the one trained with (or the checkpoint records
  # none export could write instead), else the checkpoint's own, with the ids trained with.
  description = dict(metadata.vocabulary)
  from_source = bool(tokenizer_dir) and any(
      os.path.exists(os.path.join(tokenizer_dir, n)) for n in TOKENIZER_FILES)
  own = None
  if not (from_source and _same_as_source(description, tokenizer_dir)):
    rebuilt = metadata_lib.vocabulary_from(description, model_dir)
    if isinstance(rebuilt, (HuggingFaceVocabulary, seqio.SentencePieceVocabulary)):
      own, from_source = rebuilt, False
      hf_config.update(_special_ids(own))
      if tokenizer_dir:
        log(f"the checkpoint was trained with another tokenizer than the one in "
            f"{tokenizer_dir}: exporting its own and the token ids it was trained with")
  # Built and checked before the tensors are read: a refusal costs nothing.
  tokenizer_stage = tempfile.mkdtemp(prefix="annotanchor-export-tokenizer-")
  try:
    if own is not None:
      note = write_tokenizer(own, tokenizer_stage,
                             markers=marker_symbols(metadata.template),
                             max_len=config.max_len, where=where)
    elif from_source:
      note = f"as found in {tokenizer_dir}"
      for name in TOKENIZER_FILES:
        if os.path.exists(os.path.join(tokenizer_dir, name)):
          shutil.copyfile(os.path.join(tokenizer_dir, name), os.path.join(tokenizer_stage, name))
    else:
      kind = description.get("kind")
      note = ("none (the checkpoint records no vocabulary)" if kind in (None, "none") else
              f"none (the checkpoint records a {kind} vocabulary, which has no Hugging Face "
              f"tokenizer)")
    log(f"tokenizer: {note}; token ids " + ", ".join(f"{k.split('_')[0]} {hf_config[k]}"
                                                     for k in TOKEN_IDS))
    return _export(step_dir, hf_dir, config=config, family=family, mesh=mesh,
                   dtype=dtype, out_dtype=out_dtype, hf_config=hf_config,
                   generation=None if own is not None else config_dir and os.path.join(
                       config_dir, "generation_config.json"),
                   tokenizer_stage=tokenizer_stage, log=log)
  finally:
    shutil.rmtree(tokenizer_stage, ignore_errors=True)


def _export(step_dir: str, hf_dir: str, *, config, family: str, mesh, dtype: str,
            out_dtype, hf_config: dict[str, Any], generation: str | None, tokenizer_stage: str,
            log: Callable[[str], None]) -> dict[str, Any]:
  """Writes the tensors of the checkpoint step `step_dir`, config.json,
  generation_config.json (a copy of `generation` when it exists) and the files in
  `tokenizer_stage` to hf_dir."""
  params = checkpoints.restore_params(step_dir, abstract_params(config, mesh),
                                      "CHECKPOINT_PATH")
  mapped = names.tensor_map(config, family)
  log(f"exporting {step_dir} as a {family} model ({len(mapped)} tensors, {dtype}) "
      f"to {hf_dir}")

  def tensors():
    for i, m in enumerate(mapped):
      leaf = params
      for key in names.tree_path(m, config.scan_layers):
        leaf = leaf[key]
      value = _host(leaf)
      if config.scan_layers and m.layer is not None:
        value = value[m.layer]
      log(f"[{i + 1}/{len(mapped)}] {'/'.join(m.path)} -> {m.hf_name} {list(m.hf_shape)}")
      yield m.hf_name, m.to_hf(value).astype(out_dtype)

  if jax.process_index() != 0:
    for _ in tensors():  # Takes part in the gathers of a pod.
      pass
    return hf_config

  def write(stage):
    os.makedirs(stage)
    safetensors_io.write_file(
        os.path.join(stage, safetensors_io.SINGLE_FILE),
        [(m.hf_name, m.hf_shape, out_dtype) for m in mapped], tensors())
    with open(os.path.join(stage, "config.json"), "w") as f:
      json.dump(hf_config, f, indent=2)
    if generation and os.path.exists(generation):
      shutil.copyfile(generation, os.path.join(stage, "generation_config.json"))
    else:
      with open(os.path.join(stage, "generation_config.json"), "w") as f:
        json.dump({k: hf_config[k] for k in TOKEN_IDS}, f, indent=2)
    for name in sorted(os.listdir(tokenizer_stage)):
      shutil.copyfile(os.path.join(tokenizer_stage, name), os.path.join(stage, name))
  write_with(hf_dir, write)  # Replaces an empty hf_dir (checked above).
  log(f"wrote {hf_dir}")
  return hf_config
