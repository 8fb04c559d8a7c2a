"""A Hugging Face causal-LM directory -> a MODEL_DIR checkpoint that train, infer, serve take.

  MODEL_DIR/checkpoints/0/params    the parameters (Orbax), sharded as the mesh shards them
  MODEL_DIR/checkpoints/0/meta      step 0 and the RunMetadata: the derived TransformerConfig
  MODEL_DIR/model.gin               the same TransformerConfig as gin bindings, for
                                    `train --gin_file=MODEL_DIR/model.gin` (fine-tuning from
                                    INITIAL_CHECKPOINT_PATH=MODEL_DIR needs the shape bound)
  MODEL_DIR/vocabulary/<sha256>/    tokenizer.json as a HuggingFaceVocabulary, recorded in
                                    the metadata as `train` records one (infer, serve)
  MODEL_DIR/hf_tokenizer/           the tokenizer files, as found (for export)
  MODEL_DIR/hf_source/              config.json (and generation_config.json), for export

Everything is checked before anything is written (config.json, every tensor's presence
and shape, no unexplained tensor), and written under MODEL_DIR/.import-<pid>/ then moved
into place, so a failed import leaves MODEL_DIR as it was. Tensors are streamed: each is
read into one host buffer, placed straight onto its sharding on the mesh
(`jax.make_array_from_callback`: every device gets only its slice) and dropped, so host
memory holds one tensor at a time (a stacked [layers, ...] leaf with scan_layers) and a
model larger than one device imports on a pod. Local directories only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from typing import Any, Callable, Mapping

import jax
import numpy as np

from annotanchor import atomic_files
from annotanchor.data.prompts import PromptTemplate
from annotanchor.errors import UserError
from annotanchor.interchange import families, names, safetensors_io
from annotanchor.model.config import TransformerConfig
from annotanchor.training import metadata as metadata_lib

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "tokenizer.model")
SOURCE_FILES = ("config.json", "generation_config.json")
TOKENIZER_DIR = "hf_tokenizer"
SOURCE_DIR = "hf_source"
IMPORT_STEP = 0


class ConversionError(UserError, ValueError):
  """A checkpoint that does not match its config.json, or a destination already in use."""


class _DropOcdbtMergeNotice(logging.Filter):
  """Orbax 0.12.8 warns after every save "Skipping merge of OCDBT checkpoints: No
  per-process OCDBT checkpoint subdirs found", also after a save that writes no OCDBT
  (use_ocdbt=False, as the import's does): there is nothing to merge, as asked."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "Skipping merge of OCDBT checkpoints" not in record.getMessage()


@contextlib.contextmanager
def _no_ocdbt_merge_notice():
  """Drops that notice from Orbax's (absl's) logger for the duration of one save."""
  absl_logger, notice = logging.getLogger("absl"), _DropOcdbtMergeNotice()
  absl_logger.addFilter(notice)
  try:
    yield
  finally:
    absl_logger.removeFilter(notice)

def read_config(hf_dir: str) -> dict[str, Any]:
  path = os.path.join(hf_dir, "config.json")
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise ConversionError(f"{path} does not exist (HF_DIR must be a Hugging Face model "
                          f"directory)") from None
  except (OSError, ValueError) as e:
    raise ConversionError(f"{path}: unreadable ({e})") from None


def plan(hf_dir: str, config: TransformerConfig,
         family: str) -> list[tuple[names.Mapped, safetensors_io.TensorEntry]]:
  """Each tensor the import reads, with where it is; checked against `config` first.

  Raises:
    ConversionError: a tensor is missing, has another shape, or is one the config does
      not explain (a bias, another family's norm).
  """
  entries = safetensors_io.read_index(hf_dir)
  mapped = names.tensor_map(config, family)
  for m in mapped:
    entry = entries.get(m.hf_name)
    if entry is None:
      raise ConversionError(f"{hf_dir}: the checkpoint has no tensor {m.hf_name!r}, which a "
                            f"{family} model of this config.json needs")
    if entry.shape != m.hf_shape:
      raise ConversionError(
          f"{entry.path}: tensor {m.hf_name!r} has shape {entry.shape} but config.json "
          f"implies {m.hf_shape}")
  expected = {m.hf_name for m in mapped}
  extra = sorted(n for n in entries if n not in expected and not names.ignorable(n, config))
  if extra:
    raise ConversionError(
        f"{entries[extra[0]].path}: tensor {extra[0]!r} is not part of a {family} model of "
        f"this config.json (a bias, or another family's weight?); refusing to drop it")
  return [(m, entries[m.hf_name]) for m in mapped]


def _leaf(tree: Mapping, path: tuple[str, ...]):
  for key in path:
    tree = tree[key]
  return tree


def _set_leaf(tree: dict, path: tuple[str, ...], value) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _place(host: np.ndarray, target: Any, dtype: np.dtype) -> jax.Array:
  """`host` as a global array with `target`'s sharding; each device copies only its slice."""
  return jax.make_array_from_callback(
      target.shape, target.sharding, lambda index: np.asarray(host[index], dtype))


def load_params(steps: list[tuple[names.Mapped, safetensors_io.TensorEntry]], abstract: Any,
                scan_layers: bool, log: Callable[[str], None] = print) -> dict:
  """The parameter tree, each leaf placed onto the sharding `abstract` gives it."""
  groups: dict[tuple[str, ...], list] = {}
  for m, entry in steps:
    groups.setdefault(names.tree_path(m, scan_layers), []).append((m, entry))
  params: dict = {}
  done = 0
  for path, members in groups.items():
    target = _leaf(abstract, path)
    dtype = np.dtype(target.dtype)
    if len(members) == 1 and not (scan_layers and members[0][0].layer is not None):
      m, entry = members[0]
      host = m.to_ours(safetensors_io.read_tensor(entry))  # A view of the one buffer read.
    else:  # Stacked blocks: [layers, ...], one block's tensor at a time into the stack.
      host = np.empty(target.shape, dtype)
      for m, entry in members:
        host[m.layer] = m.to_ours(safetensors_io.read_tensor(entry))
    _set_leaf(params, path, _place(host, target, dtype))
    del host  # Before the next tensor is read.
    for m, entry in members:
      done += 1
      log(f"[{done}/{len(steps)}] {m.hf_name} {list(entry.shape)} {entry.dtype} -> "
          f"{'/'.join(path)} {list(target.shape)} {dtype}")
  return params


def abstract_params(config: TransformerConfig, mesh) -> Any:
  """The Decoder's parameters as ShapeDtypeStructs carrying their shardings on `mesh`."""
  import optax

  from annotanchor.model.model import DecoderOnlyModel
  from annotanchor.training import train_state

  abstract, _ = train_state.abstract_state(DecoderOnlyModel(config), optax.identity(), mesh)
  return abstract.params


def model_gin(config: TransformerConfig, hf_dir: str) -> str:
  """gin bindings of `config`, in the form of gin/models/ files."""
  lines = [f"# Imported from {hf_dir} by `annotanchor convert import-hf`.",
           "from __gin__ import dynamic_registration", "from annotanchor.model import config",
           "from annotanchor.training import given_model",
           "from annotanchor.training import run_config", "",
           "run_config.TrainConfig.model = @config.TransformerConfig()",
           "given_model.GivenModel.config = @config.TransformerConfig()",
           "config.TransformerConfig:"]
  lines += [f"  {f.name} = {getattr(config, f.name)!r}" for f in dataclasses.fields(config)]
  return "\n".join(lines) + "\n"


def _tokenizer(hf_dir: str, config: TransformerConfig):
  """The directory's tokenizer.json as a HuggingFaceVocabulary (None without one).

  Raises:
    ConversionError: it has more ids than the embedding has rows.
  """
  from annotanchor.data.hf_vocabulary import HuggingFaceVocabulary

  if not os.path.exists(os.path.join(hf_dir, "tokenizer.json")):
    return None
  tokenizer = HuggingFaceVocabulary(hf_dir)
  if tokenizer.vocab_size > config.vocab_size:
    raise ConversionError(
        f"{os.path.join(hf_dir, 'tokenizer.json')} has {tokenizer.vocab_size} ids but the "
        f"model's embedding (config.json vocab_size) only {config.vocab_size} rows")
  return tokenizer


def _destination_free(model_dir: str) -> None:
  for item in ("checkpoints", "model.gin", TOKENIZER_DIR, SOURCE_DIR, "vocabulary"):
    if os.path.exists(os.path.join(model_dir, item)):
      raise ConversionError(f"MODEL_DIR={model_dir!r} already holds {item}; import into a "
                            f"new directory")


def import_checkpoint(hf_dir: str, model_dir: str, *, mesh, max_len: int | None = None,
                      dtype: str = "float32", param_dtype: str = "float32",
                      scan_layers: bool = False,
                      log: Callable[[str], None] = print) -> TransformerConfig:
  """Imports `hf_dir` into `model_dir` (see the module docstring); returns the config.

  Raises:
    UnsupportedConfigError: config.json asks for what the decoder cannot compute exactly.
    ConversionError, SafetensorsError: the tensors do not match config.json, or
      MODEL_DIR already holds a checkpoint.
  """
  import orbax.checkpoint as ocp

  hf_dir, model_dir = os.path.abspath(hf_dir), os.path.abspath(model_dir)
  family, config = families.config_from_hf(
      read_config(hf_dir), where=os.path.join(hf_dir, "config.json"), max_len=max_len,
      dtype=dtype, param_dtype=param_dtype, scan_layers=scan_layers)
  steps = plan(hf_dir, config, family)
  tokenizer = _tokenizer(hf_dir, config)
  _destination_free(model_dir)
  abstract = abstract_params(config, mesh)
  log(f"importing a {family} model of {config.num_params():,} parameters from {hf_dir} "
      f"({len(steps)} tensors) onto mesh {dict(mesh.shape)}")
  start = time.perf_counter()
  params = load_params(steps, abstract, scan_layers, log)

  tokenizer_files = [f for f in TOKENIZER_FILES if os.path.exists(os.path.join(hf_dir, f))]
  created = not os.path.exists(model_dir)
  stage = os.path.join(model_dir, f".import-{os.getpid()}")
  primary = jax.process_index() == 0
  try:
    # The tokenizer as `train` records one (MODEL_DIR/vocabulary/<sha256>/), so infer and
    # serve rebuild it from the checkpoint alone.
    vocabulary = (metadata_lib.describe_vocabulary(tokenizer, stage, copy=primary)
                  if tokenizer else {"kind": "none"})
    meta = {"step": IMPORT_STEP, **metadata_lib.RunMetadata(
        config, vocabulary, PromptTemplate()).to_json()}
    step_dir = os.path.join(stage, "checkpoints", str(IMPORT_STEP))
    # Host memory while saving (benchmarks/README.md): Orbax's device-to-host copies in
    # flight are capped at the largest array, and the arrays are written one TensorStore
    # directory each rather than into OCDBT, whose writer buffered ~2.3x the largest tensor
    # more. Every restore path reads both layouts.
    largest = max(x.nbytes for x in jax.tree.leaves(params))
    handler = ocp.PyTreeCheckpointHandler(save_device_host_concurrent_gb=largest / 1e9,
                                          use_ocdbt=False)
    with ocp.Checkpointer(handler) as checkpointer, _no_ocdbt_merge_notice():
      checkpointer.save(os.path.join(step_dir, "params"), args=ocp.args.PyTreeSave(params))
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as checkpointer:
      checkpointer.save(os.path.join(step_dir, "meta"), args=ocp.args.JsonSave(meta))
    if primary:
      for sub, files in ((TOKENIZER_DIR, tokenizer_files),
                         (SOURCE_DIR, [f for f in SOURCE_FILES
                                       if os.path.exists(os.path.join(hf_dir, f))])):
        os.makedirs(os.path.join(stage, sub), exist_ok=True)
        for name in files:
          shutil.copyfile(os.path.join(hf_dir, name), os.path.join(stage, sub, name))
      with open(os.path.join(stage, "model.gin"), "w") as f:
        f.write(model_gin(config, hf_dir))
      for item in ("checkpoints", "model.gin", TOKENIZER_DIR, SOURCE_DIR, "vocabulary"):
        if os.path.exists(os.path.join(stage, item)):
          atomic_files.publish(os.path.join(stage, item), os.path.join(model_dir, item))
  finally:
    if primary:
      shutil.rmtree(stage, ignore_errors=True)
      if created and os.path.isdir(model_dir) and not os.listdir(model_dir):
        os.rmdir(model_dir)
  log(f"wrote {os.path.join(model_dir, 'checkpoints', str(IMPORT_STEP))} in "
      f"{time.perf_counter() - start:.1f} s")
  return config
