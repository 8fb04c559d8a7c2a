"""A checkpoint -> a Hugging Face directory that `AutoModelForCausalLM.from_pretrained` loads.

  HF_DIR/config.json              the family's config (annotanchor/interchange/families.py)
  HF_DIR/model.safetensors        every tensor, in the family's names and layouts
  HF_DIR/generation_config.json   the imported one, else our token ids (0 pad/BOS, 1 EOS)
  HF_DIR/tokenizer files          the imported ones (MODEL_DIR/hf_tokenizer/), if any

Any checkpoint whose TransformerConfig one family computes exactly exports: an imported
model, one fine-tuned from it (INITIAL_CHECKPOINT_PATH), or one trained here (pre-norm
without QK-norm is Llama, with per-head QK-norm Qwen3). The fields of config.json that
change no logit (token ids, max_position_embeddings) and the tokenizer come from the
imported model's MODEL_DIR/hf_source and hf_tokenizer, or from HF_SOURCE (an imported
MODEL_DIR or the original HF directory) for a model trained from one. Written to
HF_DIR.tmp-<pid> and renamed: a failed export leaves no HF_DIR.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Callable

import jax
import numpy as np

from annotanchor.interchange import families, names, safetensors_io
from annotanchor.interchange.import_hf import (
    SOURCE_DIR, TOKENIZER_DIR, TOKENIZER_FILES, ConversionError, abstract_params)
from annotanchor.training import checkpoints, metadata as metadata_lib

EXPORT_DTYPES = ("float32", "bfloat16")


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
  metadata, model_dir = metadata_lib.read_metadata(checkpoint_path)
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

  params = checkpoints.restore_params(checkpoint_path, abstract_params(config, mesh),
                                      "CHECKPOINT_PATH")
  mapped = names.tensor_map(config, family)
  log(f"exporting {checkpoint_path} as a {family} model ({len(mapped)} tensors, {dtype}) "
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
  stage = f"{hf_dir}.tmp-{os.getpid()}"
  try:
    os.makedirs(stage)
    safetensors_io.write_file(
        os.path.join(stage, safetensors_io.SINGLE_FILE),
        [(m.hf_name, m.hf_shape, out_dtype) for m in mapped], tensors())
    with open(os.path.join(stage, "config.json"), "w") as f:
      json.dump(hf_config, f, indent=2)
    generation = config_dir and os.path.join(config_dir, "generation_config.json")
    if generation and os.path.exists(generation):
      shutil.copyfile(generation, os.path.join(stage, "generation_config.json"))
    else:
      with open(os.path.join(stage, "generation_config.json"), "w") as f:
        json.dump({k: hf_config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")},
                  f, indent=2)
    for name in TOKENIZER_FILES:
      if tokenizer_dir and os.path.exists(os.path.join(tokenizer_dir, name)):
        shutil.copyfile(os.path.join(tokenizer_dir, name), os.path.join(stage, name))
    if os.path.exists(hf_dir):
      os.rmdir(hf_dir)  # Empty (checked above).
    os.replace(stage, hf_dir)
  finally:
    shutil.rmtree(stage, ignore_errors=True)
  log(f"wrote {hf_dir}")
  return hf_config
