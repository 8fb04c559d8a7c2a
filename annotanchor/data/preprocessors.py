"""SeqIO preprocessors for each sequence kind, with per-token loss weights.

Source examples come in two shapes:

* documents: `chunks` (1-D string, the blank-line-separated chunks) and
  `annotations` (1-D string, one annotation body `"k:v k:v"` per chunk);
* SFT examples: `prompt`, `response` and `annotation` (a body; anchored SFT reads it,
  standard SFT leaves it out, and its source lets a record go without one: "").

Every preprocessor returns `targets` (int32, EOS appended where the sequence
ends a text), `targets_loss_weights` (float32) and `targets_annotation_mask`
(int32, for token accounting). Layouts (P = prompt, A = annotation, R =
response; weights under the tokens):

  annotated pretraining   A1 C1 A2 C2 ... EOS          1 ... 1
  plain pretraining       C1 C2 ... EOS                1 ... 1
  standard SFT            P R EOS                      0 1 1
  anchored SFT            P A R EOS                    0 0 1 1
    key-only variant      P A R EOS, A's keys and delimiters 1, values 0
  annotation only         A                            1        (pretraining form)
                          P A                          0 1      (SFT-context form)

Annotation-only sequences carry no EOS: in the data an annotation is always
followed by text, so teaching the model to stop after one would be wrong.

The knobs (`dropout_rate`, `key_only_rate`, `mask_annotation`) are arguments, not gin
bindings: a corpus carries them (`Storyworld.mask_annotation`, `JsonlCorpus.key_only_rate`,
checked by `check_annotation_knobs` when it is built) and passes them to these functions
when it registers its tasks, so a reader of the gin files sees each one reach the corpus.
Preprocessors that draw random numbers get per-example seeds from SeqIO, so
they belong after the task's `CacheDatasetPlaceholder` (new draws each epoch)
and are deterministic for a given `get_dataset` seed.
"""
from typing import Mapping, Sequence

import gin
import seqio
import tensorflow as tf

from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.prompts import PromptTemplate
from annotanchor.data.segments import annotation_pieces, build_sequence
from annotanchor.errors import SettingError, require

Features = Mapping[str, seqio.Feature]


def check_annotation_knobs(owner: str, dropout_rate: float, key_only_rate: float,
                           mask_annotation: bool) -> None:
  """Raises SettingError naming `owner.KNOB` for a corpus's knob out of range."""
  for name, rate in (("dropout_rate", dropout_rate), ("key_only_rate", key_only_rate)):
    require(isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 <= rate <= 1,
            f"{owner}.{name}", rate, "a number in [0, 1]")
  require(isinstance(mask_annotation, bool), f"{owner}.mask_annotation", mask_annotation,
          "True or False")


def _vocabulary(output_features: Features) -> seqio.Vocabulary:
  return output_features["targets"].vocabulary


def _document_pieces(chunks: tf.Tensor, bodies: tf.Tensor, keep: tf.Tensor,
                     fmt: AnnotationFormat) -> tuple[tf.Tensor, tf.Tensor]:
  """Interleaves kept annotations and chunks into one flat list of pieces.

  Example (keep = [True, False]):

    chunks = ["Once.", "Then."], bodies = ["t:a", "t:b"]
    -> pieces = ["<ann>", " t:", "a", " </ann>", " Once.\\n\\n", "Then."]
       is_annotation = [T, T, T, T, F, F]
  """
  ann, _ = annotation_pieces(bodies, fmt)
  lengths = ann.row_lengths() * tf.cast(keep, tf.int64)
  kept = tf.RaggedTensor.from_row_lengths(
      tf.boolean_mask(ann.flat_values, tf.repeat(keep, ann.row_lengths())), lengths)
  last = tf.range(tf.size(chunks)) == tf.size(chunks) - 1
  text = tf.strings.join([tf.where(keep, " ", ""), chunks, tf.where(last, "", "\n\n")])
  rows = tf.concat([kept, tf.RaggedTensor.from_tensor(text[:, None])], axis=1)
  flags = tf.concat([tf.ones_like(kept, tf.bool),
                     tf.RaggedTensor.from_tensor(tf.zeros_like(text, tf.bool)[:, None])], axis=1)
  return rows.flat_values, flags.flat_values


def _pretraining(dataset: tf.data.Dataset, output_features: Features, dropout_rate: float,
                 fmt: AnnotationFormat) -> tf.data.Dataset:
  if not 0.0 <= dropout_rate <= 1.0:
    raise SettingError(f"Annotation dropout_rate must be in [0, 1], got {dropout_rate}.")
  vocabulary = _vocabulary(output_features)

  @seqio.map_over_dataset(num_seeds=1)
  def convert(ex, seed):
    chunks = ex["chunks"]
    keep = tf.random.stateless_uniform(tf.shape(chunks), seed) >= dropout_rate
    pieces, is_annotation = _document_pieces(chunks, ex["annotations"], keep, fmt)
    return build_sequence(vocabulary, pieces, tf.ones_like(pieces, tf.float32),
                          is_annotation, eos_weight=1.0)

  return convert(dataset)


def annotated_pretraining(dataset: tf.data.Dataset, output_features: Features, *,
                          template: PromptTemplate,
                          dropout_rate: float = 0.0) -> tf.data.Dataset:
  """Documents as `<ann> tags </ann> chunk ... EOS`, loss on every token.

  Args:
    dataset: documents (`chunks`, `annotations`).
    output_features: the task's features (`targets` gives the vocabulary).
    template: the corpus's template (its annotation format delimits the annotations).
    dropout_rate: probability that a chunk's annotation is left out.

  Returns:
    The sequences (see the module docstring).
  """
  return _pretraining(dataset, output_features, dropout_rate, template.annotation_format)


def plain_pretraining(dataset: tf.data.Dataset, output_features: Features, *,
                      template: PromptTemplate) -> tf.data.Dataset:
  """The same documents without annotations (the standard-pretraining arm).

  Chunks tokenize exactly as in `annotated_pretraining`, so the two arms
  differ only by the annotation tokens.
  """
  return _pretraining(dataset, output_features, 1.0, template.annotation_format)


def _prompt_text(prompt: tf.Tensor, template: PromptTemplate) -> tf.Tensor:
  return tf.strings.join([template.prompt_prefix, tf.strings.strip(prompt),
                          template.prompt_suffix])


def _response_text(response: tf.Tensor, template: PromptTemplate) -> tf.Tensor:
  return tf.strings.join([template.response_prefix, tf.strings.strip(response)])


def standard_sft(dataset: tf.data.Dataset, output_features: Features, *,
                 template: PromptTemplate) -> tf.data.Dataset:
  """`prompt response EOS`, loss on response and EOS only (`template`: the corpus's)."""
  vocabulary = _vocabulary(output_features)

  @seqio.map_over_dataset
  def convert(ex):
    pieces = tf.stack([_prompt_text(ex["prompt"], template),
                       _response_text(ex["response"], template)])
    return build_sequence(vocabulary, pieces, tf.constant([0.0, 1.0]),
                          tf.constant([False, False]), eos_weight=1.0)

  return convert(dataset)


def anchored_sft(dataset: tf.data.Dataset, output_features: Features, *,
                 template: PromptTemplate, key_only_rate: float = 0.003,
                 mask_annotation: bool = True) -> tf.data.Dataset:
  """`prompt <ann> tags </ann> response EOS`, loss on response and EOS.

  Args:
    dataset: SFT examples (`prompt`, `annotation`, `response`).
    output_features: the task's features.
    template: the corpus's prompt template.
    key_only_rate: fraction of examples whose annotation keys and delimiters
      stay in the loss (values masked), to keep the tag syntax stable.
    mask_annotation: False puts the whole annotation in the loss (weight 1), the
      ablation that lets SFT pull p(annotation | prompt) to its own narrow modes.

  Returns:
    The sequences (see the module docstring).
  """
  if not 0.0 <= key_only_rate <= 1.0:
    raise SettingError(f"key_only_rate must be in [0, 1], got {key_only_rate}.")
  vocabulary = _vocabulary(output_features)

  @seqio.map_over_dataset(num_seeds=1)
  def convert(ex, seed):
    ann, is_value = annotation_pieces(ex["annotation"][None], template.annotation_format)
    key_only = tf.random.stateless_uniform([], seed) < key_only_rate
    ann_weights = tf.where(key_only, 1.0 - tf.cast(is_value.flat_values, tf.float32), 0.0)
    if not mask_annotation:
      ann_weights = tf.ones_like(ann_weights)
    pieces = tf.concat([[_prompt_text(ex["prompt"], template)], ann.flat_values,
                        [_response_text(ex["response"], template)]], 0)
    weights = tf.concat([[0.0], ann_weights, [1.0]], 0)
    is_annotation = tf.concat([[False], tf.ones_like(ann_weights, tf.bool), [False]], 0)
    return build_sequence(vocabulary, pieces, weights, is_annotation, eos_weight=1.0)

  return convert(dataset)


@gin.configurable
def annotation_only(dataset: tf.data.Dataset, output_features: Features, *,
                    template: PromptTemplate, form: str = "pretraining",
                    prompts: Sequence[str] = ("Tell me a story.",),
                    document_level: bool = True) -> tf.data.Dataset:
  """Annotations of pretraining documents alone, loss on (no EOS).

  Args:
    dataset: documents (`chunks`, `annotations`).
    output_features: the task's features.
    template: the corpus's prompt template.
    form: "pretraining": one `<ann> tags </ann>` sequence per chunk annotation;
      "sft_context": one `prompt <ann> tags </ann>` per document, with a prompt
      drawn from `prompts` (prompt weight 0).
    prompts: open-ended prompts for the SFT-context form.
    document_level: in the SFT-context form, annotate with the tags of all
      chunks joined (the document's annotation, like an SFT response's);
      otherwise with the first chunk's.

  Returns:
    The sequences (see the module docstring).
  """
  fmt = template.annotation_format
  vocabulary = _vocabulary(output_features)
  if form == "pretraining":
    def convert(body):
      ann, _ = annotation_pieces(body[None], fmt)
      pieces = ann.flat_values
      return build_sequence(vocabulary, pieces, tf.ones_like(pieces, tf.float32),
                            tf.ones_like(pieces, tf.bool), eos_weight=None)

    bodies = dataset.flat_map(lambda ex: tf.data.Dataset.from_tensor_slices(ex["annotations"]))
    return bodies.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
  if form != "sft_context":
    raise SettingError(f"annotation_only form must be 'pretraining' or 'sft_context', got {form!r}.")
  if not prompts:
    raise SettingError("annotation_only(form='sft_context') needs at least one prompt.")
  prompt_table = tf.constant(list(prompts))

  @seqio.map_over_dataset(num_seeds=1)
  def convert_with_prompt(ex, seed):
    index = tf.random.stateless_uniform([], seed, 0, len(prompts), dtype=tf.int32)
    body = (tf.strings.reduce_join(ex["annotations"], separator=" ")[None] if document_level
            else ex["annotations"][:1])
    ann, _ = annotation_pieces(body, fmt)
    pieces = tf.concat([[_prompt_text(prompt_table[index], template)], ann.flat_values], 0)
    weights = tf.concat([[0.0], tf.ones_like(ann.flat_values, tf.float32)], 0)
    return build_sequence(vocabulary, pieces, weights, weights > 0, eos_weight=None)

  return convert_with_prompt(dataset)
