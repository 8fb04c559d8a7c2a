"""The trainer's input: host-sharded, packed, deterministic and resumable batches."""
from typing import Iterator, Mapping, Optional

import gin
import numpy as np
import seqio
import tensorflow as tf

from annotanchor.data.feature_converter import (PAIR_SIDES, PreferenceFeatureConverter,
                                                WeightedLMFeatureConverter)
from annotanchor.data.ids import decoder_start_id
from annotanchor.data.preference_sequences import is_preference_task
from annotanchor.data.registration import mixture_or_task, register_configured_corpora
from annotanchor.errors import SettingError


# Batches prepared ahead of the trainer.
_PREFETCH_BATCHES = 4


def converter_for(vocabulary: seqio.Vocabulary, pack: bool) -> WeightedLMFeatureConverter:
  """The feature converter of a vocabulary: its pad id, and the id decoding starts from."""
  return WeightedLMFeatureConverter(pack=pack, bos_id=decoder_start_id(vocabulary),
                                    pad_id=vocabulary.pad_id)


def task_vocabulary(task: seqio.Task | seqio.Mixture) -> seqio.Vocabulary:
  """The vocabulary of a task's token features (`targets`, or a preference pair's sides)."""
  return task.output_features[
      "chosen_targets" if is_preference_task(task) else "targets"].vocabulary


@gin.configurable
def get_dataset(mixture_or_task_name: str,
                task_feature_lengths: Mapping[str, int],
                batch_size: int,
                *,
                split: str = "train",
                shuffle: bool = True,
                seed: int = 0,
                pack: bool = True,
                shard_index: int = 0,
                num_shards: int = 1,
                start_step: int = 0,
                feature_converter: Optional[seqio.FeatureConverter] = None,
                repeat: bool = True) -> Iterator[dict[str, np.ndarray]]:
  """Yields this host's batches of `decoder_*` features as numpy arrays.

  The stream is a pure function of (task, lengths, batch size, split, shuffle,
  seed, pack, shard): `start_step=k` yields exactly the batches an
  uninterrupted stream yields from its k-th on, which makes a resumed training
  run see the same data as one never stopped. Resuming replays the skipped
  batches through the pipeline (cheap next to training on them).

  Args:
    mixture_or_task_name: a registered SeqIO task or mixture.
    task_feature_lengths: e.g. `{"targets": 512}`.
    batch_size: the GLOBAL batch size; each shard yields
      `batch_size // num_shards` rows.
    split: dataset split.
    shuffle: whether to shuffle (seeded).
    seed: seed for shuffling, mixture sampling and random preprocessing.
    pack: pack several examples per row (ignored if `feature_converter` given).
    shard_index: this host's shard (e.g. `jax.process_index()`).
    num_shards: number of shards (e.g. `jax.process_count()`).
    start_step: number of batches already consumed, to skip.
    feature_converter: defaults to `converter_for(task vocabulary, pack)`.
    repeat: repeat the data indefinitely; otherwise stop after one epoch (the
      last incomplete batch is dropped).

  A preference task (`preference_corpus.py`) yields pairs, unpacked, each side's features
  prefixed by it (`PreferenceFeatureConverter`); `task_feature_lengths["targets"]` is the
  length of each side's row.

  Returns:
    An iterator of dicts of `[batch_size // num_shards, length]` arrays.

  Raises:
    ValueError: if the batch does not divide among the shards, or a shard or
      step is out of range.
  """
  if num_shards < 1 or not 0 <= shard_index < num_shards:
    raise SettingError(f"shard_index={shard_index} is not in [0, num_shards={num_shards}).")
  if batch_size % num_shards:
    raise SettingError(f"Global batch_size={batch_size} is not divisible by "
                       f"num_shards={num_shards}.")
  if start_step < 0:
    raise SettingError(f"start_step must be >= 0, got {start_step}.")
  register_configured_corpora()
  task = mixture_or_task(mixture_or_task_name)
  vocabulary = task_vocabulary(task)
  lengths = dict(task_feature_lengths)
  if is_preference_task(task):
    if pack:
      raise SettingError(f"{mixture_or_task_name!r} yields preference pairs, which are not "
                         "packed: set DataConfig.pack=False (gin/runs/dpo.gin does)")
    feature_converter = feature_converter or PreferenceFeatureConverter(
        bos_id=decoder_start_id(vocabulary), pad_id=vocabulary.pad_id)
    # Each side of a pair is one row of TASK_FEATURE_LENGTHS["targets"] tokens.
    lengths = {f"{side}_targets": lengths["targets"] for side in PAIR_SIDES}
  converter = feature_converter or converter_for(vocabulary, pack)
  ds = seqio.get_dataset(
      mixture_or_task_name,
      task_feature_lengths=lengths,
      feature_converter=converter,
      dataset_split=split,
      shuffle=shuffle,
      num_epochs=None if repeat else 1,
      shard_info=seqio.ShardInfo(shard_index, num_shards),
      seed=seed,
      batch_size=batch_size // num_shards,
      verbose=False,
  )
  options = tf.data.Options()
  options.deterministic = True
  # No autotuning thread: deleting an iterator waited up to its 60 s optimisation period
  # (the 21-55 s exit waits of training runs). Parallel maps then take one call per core:
  # no slower than autotuned here (benchmarks/data_throughput.py, README).
  options.autotune.enabled = False
  ds = ds.with_options(options).skip(start_step).prefetch(_PREFETCH_BATCHES)
  return ds.as_numpy_iterator()
