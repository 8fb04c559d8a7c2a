"""`synthetic_tokens`: random token sequences that drive training tests without a tokenizer."""
import gin
import numpy as np
import seqio
import tensorflow as tf

# Vocabulary size of the synthetic task (pad 0 and EOS 1 included).
VOCAB_SIZE = 128
NUM_EXAMPLES = {"train": 4096, "validation": 256}
MIN_LENGTH, MAX_LENGTH = 4, 64


@gin.configurable
def synthetic_examples(split: str, vocab_size: int = VOCAB_SIZE,
                       num_examples: int | None = None) -> list[np.ndarray]:
  """Deterministic random sequences, each ending with EOS (id 1).

  Args:
    split: "train" or "validation" (different seeds, so disjoint streams).
    vocab_size: tokens are drawn from [2, vocab_size).
    num_examples: defaults to `NUM_EXAMPLES[split]`.

  Returns:
    A list of int32 arrays of lengths in [MIN_LENGTH, MAX_LENGTH].
  """
  rng = np.random.default_rng(sorted(NUM_EXAMPLES).index(split))
  count = num_examples or NUM_EXAMPLES[split]
  lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=count)
  return [np.append(rng.integers(2, vocab_size, size=n - 1), 1).astype(np.int32)
          for n in lengths]


def _dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
  del shuffle_files, seed  # One in-memory "file"; the Task shuffles examples.
  # Tensors, not a generator: no Python runs inside the input pipeline.
  return tf.data.Dataset.from_tensor_slices(
      {"targets": tf.ragged.constant(synthetic_examples(split), dtype=tf.int32)})


seqio.TaskRegistry.add(
    "synthetic_tokens",
    source=seqio.FunctionDataSource(_dataset_fn, splits=list(NUM_EXAMPLES),
                                    num_input_examples=NUM_EXAMPLES),
    output_features={"targets": seqio.Feature(seqio.PassThroughVocabulary(VOCAB_SIZE, eos_id=1),
                                              add_eos=False)},
    preprocessors=[],
)
