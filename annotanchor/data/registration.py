"""Registering a corpus as the SeqIO tasks and mixtures of the method.

For a corpus prefix P, `register_document_tasks` adds

  P_pretrain                          annotated pretraining (interleave)
  P_pretrain_plain                    the same documents, no annotations
  P_annotation_only                   annotation-only, pretraining form
  P_annotation_only_sft_context       annotation-only, SFT-context form

`register_sft_tasks` adds P_sft (standard) and P_sft_anchored (a `JsonlCorpus` gives the
standard task its own source, which reads records with or without annotations), and
`register_anchored_mixture` adds P_anchored_sft_mixture: anchored SFT plus
annotation-only sequences at the corpus's `AnchoredMixtureRates`, fixed when it is
registered. `register_eval_prompts` adds P_eval_prompts, the held-out prompts a demo
samples (`id`, `prompt`; split "test"): a `JsonlCorpus` registers it from a prompts file
or from prompts held out of its SFT files, which its SFT tasks then leave out.
Preprocessor knobs (annotation dropout, key-only rate, ...) are gin bindings of the
functions in `preprocessors.py`, read when a dataset is built.

A corpus is a typed object with a `register()` method (`JsonlCorpus` for user files,
`tasks.storyworld.Storyworld`), bound in gin as `configured_corpora.corpora` and
registered by each entry point at start-up (`register_configured_corpora`), after gin is
parsed: its tasks hold the values it was built with, not gin state read later.

Each registration takes the corpus's `PromptTemplate` and hands it to every source and
preprocessor of its tasks; `task_template(name)` gives it back (train records it in every
checkpoint), so one template object governs a corpus from its files to its samples.
"""
import dataclasses
import difflib
import functools
import hashlib
from typing import Callable, Mapping, Optional, Protocol, Sequence

import gin
import seqio
import tensorflow as tf

from annotanchor.data import (chat_sft, conversations, preprocessors, prompt_files, sources,
                              validated)
from annotanchor.data.chat_template import load_chat_template
from annotanchor.data.prompts import PromptTemplate
from annotanchor.data.feature_converter import LOSS_WEIGHTS, loss_weights_feature
from annotanchor.data.vocabulary import load_vocabulary
from annotanchor.errors import SettingError, UserError, is_count, require

# Registered names offered when a task or mixture name is unknown.
_CLOSEST_NAMES = 5


class UnknownTaskError(UserError, ValueError):
  """A task or mixture name that no registered task or mixture has."""


def mixture_or_task(name: str, setting: str = "MIXTURE_OR_TASK_NAME"
                    ) -> seqio.Task | seqio.Mixture:
  """The registered task or mixture `name`; every lookup of the package goes through here.

  Args:
    name: a task or mixture name.
    setting: the setting that gave `name`, for the message.

  Raises:
    UnknownTaskError: naming `setting`, `name` and the registered names closest to it
      (SeqIO's own ValueError is a traceback whose message lists nothing).
  """
  registered = set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names())
  if name in registered:
    return seqio.get_mixture_or_task(name)
  raise UnknownTaskError(f"{setting}={name!r} is not a registered task or mixture; "
                         f"{_closest(str(name), registered)}")


def _closest(name: str, registered: set[str]) -> str:
  """'closest: a, b, ...', the registered names most like `name`, likest first."""
  if not registered:
    return ("none is registered (is its corpus in configured_corpora.corpora, or its module "
            "imported by the gin file?)")
  # cutoff 0: a name with no near match still gets the nearest few, which show what the
  # registered names look like.
  return "closest: " + ", ".join(
      difflib.get_close_matches(name, sorted(registered), n=_CLOSEST_NAMES, cutoff=0.0))


def output_features(vocabulary: seqio.Vocabulary) -> dict[str, seqio.Feature]:
  """`targets` (EOS added by the preprocessors) and the per-token loss weights."""
  return {"targets": seqio.Feature(vocabulary, add_eos=False), LOSS_WEIGHTS: loss_weights_feature()}


# Task name -> the template its preprocessors lay sequences out in.
_TEMPLATES: dict[str, PromptTemplate] = {}


def task_template(mixture_or_task_name: str) -> PromptTemplate:
  """The template a task (or every task of a mixture) was registered with.

  A task registered outside this module (e.g. `synthetic_tokens`, which holds no text)
  has the standard `PromptTemplate()`.

  Raises:
    SettingError: a mixture whose tasks were registered with different templates.
  """
  if mixture_or_task_name in seqio.MixtureRegistry.names():
    names = [t.name for t in mixture_or_task(mixture_or_task_name).tasks]
  else:
    names = [mixture_or_task_name]
  templates = {_TEMPLATES.get(name, PromptTemplate()) for name in names}
  if len(templates) > 1:
    raise SettingError(f"the tasks of mixture {mixture_or_task_name!r} were registered with "
                       f"different prompt templates: {sorted(map(str, templates))}")
  return templates.pop()


def record_task_template(task_name: str, template: PromptTemplate) -> None:
  """Records the template of a task registered outside this module (the preference
  tasks, `preference_corpus.py`), for `task_template`."""
  _TEMPLATES[task_name] = template


def _add(name: str, source: seqio.DataSource, vocabulary: seqio.Vocabulary,
         preprocessor: Callable, shuffle_buffer_size: int, template: PromptTemplate) -> str:
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  _TEMPLATES[name] = template
  # Stochastic preprocessors come after the cache placeholder: new draws each epoch.
  seqio.TaskRegistry.add(name, source=source, output_features=output_features(vocabulary),
                         preprocessors=[seqio.CacheDatasetPlaceholder(), preprocessor],
                         shuffle_buffer_size=shuffle_buffer_size)
  return name


def register_document_tasks(prefix: str, source: seqio.DataSource, vocabulary: seqio.Vocabulary,
                            template: PromptTemplate,
                            open_prompts: Optional[Sequence[str]] = None,
                            shuffle_buffer_size: int = 10_000,
                            sft_context_source: Optional[seqio.DataSource] = None,
                            dropout_rate: float = 0.0) -> list[str]:
  """Registers the pretraining and annotation-only tasks of a document corpus.

  Args:
    prefix: the task name prefix.
    source: the annotated documents.
    vocabulary: the tasks' vocabulary.
    template: the corpus's template (the annotation format of `source` too).
    open_prompts: prompts of the SFT-context annotation-only form.
    shuffle_buffer_size: the tasks' example shuffle buffer.
    sft_context_source: the documents whose annotations follow `open_prompts` in the
      SFT-context form (default `source`); e.g. only the stories when the prompts ask
      for a story, so that no prompt is paired with the annotation of another kind of
      document.
    dropout_rate: the corpus's share of chunk annotations left out of P_pretrain
      (`preprocessors.annotated_pretraining`).
  """
  sft_context = functools.partial(preprocessors.annotation_only, form="sft_context")
  if open_prompts:
    sft_context = functools.partial(sft_context, prompts=tuple(open_prompts))
  kinds = {"pretrain": functools.partial(preprocessors.annotated_pretraining,
                                         dropout_rate=dropout_rate),
           "pretrain_plain": preprocessors.plain_pretraining,
           "annotation_only": functools.partial(preprocessors.annotation_only, form="pretraining"),
           "annotation_only_sft_context": sft_context}
  task_sources = {"annotation_only_sft_context": sft_context_source or source}
  return [_add(f"{prefix}_{kind}", task_sources.get(kind, source), vocabulary,
               functools.partial(fn, template=template), shuffle_buffer_size, template)
          for kind, fn in kinds.items()]


def register_sft_tasks(prefix: str, source: seqio.DataSource, vocabulary: seqio.Vocabulary,
                       template: PromptTemplate, shuffle_buffer_size: int = 10_000,
                       chat: bool = False, append_eos: bool = True,
                       standard_source: Optional[seqio.DataSource] = None,
                       key_only_rate: float = 0.003, mask_annotation: bool = True) -> list[str]:
  """Registers `P_sft` and `P_sft_anchored` over an SFT source: prompt/response pairs, or
  with `chat` conversations (`validated.ChatExamples`, preprocessed by `chat_sft`, ending
  with EOS unless `append_eos` is False: a Hugging Face chat template closes its turns).
  `template` is the corpus's (chat sources are laid out in it by their converter).
  `source` must carry every annotation (anchored); `standard_source`, when given, is what
  `P_sft` reads instead (the same files validated with `anchored=False`: annotations
  optional), so that a corpus without annotations trains standard SFT. `key_only_rate` and
  `mask_annotation` are the corpus's (see `preprocessors.anchored_sft`)."""
  knobs = {"key_only_rate": key_only_rate, "mask_annotation": mask_annotation}
  standard = functools.partial(preprocessors.standard_sft, template=template)
  anchored = functools.partial(preprocessors.anchored_sft, template=template, **knobs)
  if chat:
    standard = functools.partial(chat_sft.chat_sft, anchored=False, append_eos=append_eos)
    anchored = functools.partial(chat_sft.chat_sft, anchored=True, append_eos=append_eos,
                                 **knobs)
  return [_add(f"{prefix}_sft", standard_source or source, vocabulary, standard,
               shuffle_buffer_size, template),
          _add(f"{prefix}_sft_anchored", source, vocabulary, anchored, shuffle_buffer_size,
               template)]


@gin.configurable
@dataclasses.dataclass(frozen=True)
class AnchoredMixtureRates:
  """Shares of the anchored SFT mixture.

  Attributes:
    annotation_only_rate: share of examples that are annotation-only sequences.
    sft_context_fraction: of those, the share in the SFT-context form (the
      rest are in the pretraining form).
  """
  annotation_only_rate: float = 0.1
  sft_context_fraction: float = 0.5

  def __post_init__(self):
    for name in ("annotation_only_rate", "sft_context_fraction"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise SettingError(f"AnchoredMixtureRates.{name} must be in [0, 1], got {getattr(self, name)}.")

  def rate(self, kind: str) -> float:
    """The mixing rate of 'sft_anchored', 'annotation_only' or 'annotation_only_sft_context'."""
    rates = {"sft_anchored": 1.0 - self.annotation_only_rate,
             "annotation_only": self.annotation_only_rate * (1.0 - self.sft_context_fraction),
             "annotation_only_sft_context": self.annotation_only_rate * self.sft_context_fraction}
    return rates[kind]


def register_anchored_mixture(prefix: str, rates: AnchoredMixtureRates) -> str:
  """Registers `P_anchored_sft_mixture` at `rates`."""
  name = f"{prefix}_anchored_sft_mixture"
  if name in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove(name)
  kinds = ("sft_anchored", "annotation_only", "annotation_only_sft_context")
  seqio.MixtureRegistry.add(name, [(f"{prefix}_{k}", rates.rate(k)) for k in kinds])
  return name


def _eval_targets(dataset: tf.data.Dataset, output_features, *,
                  template: PromptTemplate) -> tf.data.Dataset:
  """`targets`: the model prompt (no loss), so that the prompts task has the features of
  every task; infer reads only `id` and `prompt`."""
  vocabulary = output_features["targets"].vocabulary

  def convert(ex):
    model_prompt = tf.strings.join([template.prompt_prefix, tf.strings.strip(ex["prompt"]),
                                    template.prompt_suffix])
    targets = tf.cast(vocabulary.encode_tf(model_prompt), tf.int32)
    return {**ex, "targets": targets, LOSS_WEIGHTS: tf.zeros_like(targets, tf.float32)}
  return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)


def register_eval_prompts(prefix: str, prompts: Callable[[], Sequence[tuple[str, str]]],
                          vocabulary: seqio.Vocabulary, template: PromptTemplate) -> str:
  """Registers `P_eval_prompts`: held-out prompts (`id`, `prompt`; split "test"), what
  `annotanchor infer` samples with MIXTURE_OR_TASK_NAME.

  Args:
    prefix: the task name prefix.
    prompts: () -> [(id, prompt), ...], called when a dataset is built (it may read files).
    vocabulary: the corpus's vocabulary.
    template: the corpus's template (`targets` holds the model prompt in it).
  """
  name = f"{prefix}_eval_prompts"
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  _TEMPLATES[name] = template

  def dataset_fn(split: str, shuffle_files: bool, seed=None) -> tf.data.Dataset:
    del split, shuffle_files, seed
    pairs = list(prompts())
    return tf.data.Dataset.from_tensor_slices({
        "id": tf.constant([i for i, _ in pairs], tf.string),
        "prompt": tf.constant([p for _, p in pairs], tf.string)})
  seqio.TaskRegistry.add(
      name, source=seqio.FunctionDataSource(dataset_fn, splits=["test"]),
      output_features=output_features(vocabulary),
      preprocessors=[functools.partial(_eval_targets, template=template)],
      shuffle_buffer_size=None)
  return name


# The feature a chat SFT example carries when its corpus holds prompts out: the record's
# evaluation prompt (`sft_prompt`), which the held-out filter compares.
HELD_OUT_KEY = "eval_prompt"


def sft_prompt(record: sources.Record, where: str, sft_format: str,
               fields: sources.SftFields = sources.SftFields(),
               messages_field: str = "messages") -> str:
  """The prompt an SFT record answers, as an evaluation prompt: its `prompt` field
  ("pairs"), or its first user turn with any system text merged in ("messages", as the
  conversation is laid out for training).

  Raises:
    SourceError: naming `where`: no such prompt.
  """
  if sft_format == "pairs":
    value = sources.record_field(record, fields.prompt, where, scalar=True)
    if not isinstance(value, str) or not value.strip():
      raise sources.SourceError(f"{where}: field '{fields.prompt}' is empty or not a string.")
    return value
  try:
    role, text, index = conversations.conversation_turns(
        sources.record_field(record, messages_field, where))[0]
  except conversations.ConversationError as e:
    raise sources.SourceError(f"{where}: field '{messages_field}': {e}") from None
  if role != "user" or not text:
    raise sources.SourceError(f"{where}: field '{messages_field}': messages[{index}], the "
                              "first turn, is not a user message with text")
  return text


@dataclasses.dataclass(frozen=True)
class _WithPrompt:
  """A chat converter's examples with HELD_OUT_KEY added (the held-out filter reads it)."""
  convert: validated.ChatExamples
  messages_field: str = "messages"

  @property
  def signature(self) -> dict[str, tf.TensorSpec]:
    return {**self.convert.signature, HELD_OUT_KEY: tf.TensorSpec([], tf.string)}

  @property
  def anchored(self) -> bool:  # validated's cache key tells the two SFT validations apart.
    return self.convert.anchored

  def __call__(self, record: sources.Record, where: str) -> dict:
    example = self.convert(record, where)  # Its message first, for a bad record.
    prompt = sft_prompt(record, where, "messages", messages_field=self.messages_field)
    return {**example, HELD_OUT_KEY: prompt}


class EvalPromptsError(UserError, ValueError):
  """A bad evaluation prompts file, or SFT files with too few prompts to hold some out."""


def hold_out_sft_prompts(prompts: Sequence[str], count: int) -> list[tuple[str, str]]:
  """(id, prompt) of the `count` distinct prompts held out of an SFT set: those whose
  SHA-256 is smallest, so the choice depends on the prompts alone (not on file order or
  the run), and every copy of a held-out prompt is held out. The id is "sft-" and the
  first 10 hex digits of that hash.

  Raises:
    EvalPromptsError: `count` is more than half the distinct prompts (SFT would keep fewer
      than it holds out).
  """
  digest = lambda p: hashlib.sha256(p.encode("utf-8")).hexdigest()
  distinct = sorted(set(prompts), key=digest)
  if 2 * count > len(distinct):
    raise EvalPromptsError(
        f"JsonlCorpus.num_eval_prompts={count} would hold out more than half of the "
        f"{len(distinct)} distinct SFT prompts: lower it (NUM_EVAL_PROMPTS) or give held-out "
        "prompts of your own (EVAL_PROMPTS)")
  return [(f"sft-{digest(p)[:10]}", p) for p in distinct[:count]]


@gin.configurable
def vocabulary_size(path: str = gin.REQUIRED, multiple_of: int = 128) -> int:
  """The number of ids of the vocabulary at `path`, as a corpus loads it (markers added as
  special tokens included), rounded up to a multiple of `multiple_of`: a model size that
  follows its corpus's vocabulary. In gin (gin/experiments/user_corpus_data.gin):

    VOCAB_SIZE = @registration.vocabulary_size()
    registration.vocabulary_size.path = %VOCABULARY

  The extra rows are never a target; decoding drops the ids past the vocabulary's.
  """
  require(is_count(multiple_of), "vocabulary_size.multiple_of", multiple_of, "a positive int")
  size = load_vocabulary(path).vocab_size
  return -(-size // multiple_of) * multiple_of


@gin.configurable
@dataclasses.dataclass(frozen=True)
class JsonlCorpus:
  """A corpus of JSONL/TFRecord files, registered as tasks from gin.

  In a gin file:

    configured_corpora.corpora = [@mydocs/JsonlCorpus()]
    mydocs/JsonlCorpus.name = "mydocs"
    mydocs/JsonlCorpus.vocabulary_path = "/path/spm.model"  # or a tokenizer.json dir
    mydocs/JsonlCorpus.documents = {"train": "/data/docs-*.jsonl"}
    mydocs/JsonlCorpus.sft = {"train": "gs://bucket/sft.tfrecord"}
    mydocs/JsonlCorpus.mixture_rates = @AnchoredMixtureRates()  # with documents and sft
    AnchoredMixtureRates.annotation_only_rate = 0.3  # optional: its mixture's shares

  Attributes:
    name: the task prefix.
    vocabulary_path: SentencePiece model (see `vocabulary.py`), or a Hugging Face
      tokenizer: a directory holding tokenizer.json, or that file (`hf_vocabulary.py`;
      bind `HuggingFaceVocabulary.markers` etc. for its settings).
    documents: split -> file pattern(s) of annotated documents.
    sft: split -> file pattern(s) of SFT examples.
    sft_format: "pairs" (prompt, response, annotation fields) or "messages" (OpenAI/Tulu
      conversations, an assistant message with its `annotation`; rendered with
      `template`, loss turns set by `chat_sft.loss_on`). P_sft reads records with or
      without annotations (one that is there must parse); P_sft_anchored and the mixture
      need one on every record (assistant message), and a record without stops them with
      one line when their dataset is first built, not at registration: a corpus with no
      annotations registers and trains standard SFT.
    chat_template_path: "messages": lay conversations out in the Hugging Face chat template
      of this tokenizer directory (its tokenizer_config.json) instead of our template.
    template: the corpus's prompt template: the annotation format its files are written
      in and its sequences are laid out in (default the standard `<user>`/`<assistant>`,
      `<ann> ... </ann>`; another: `mydocs/JsonlCorpus.template = @prompts.PromptTemplate()`
      with `from annotanchor.data import prompts`).
    document_fields / sft_fields: field names (`messages_field` for "messages").
    on_error: "raise" or "skip" (see `validated.validated_file`).
    cache_dir: where validated copies of the files are kept (default
      `validated.default_cache_dir()`).
    mixture_rates: the shares of P_anchored_sft_mixture, registered when the corpus has
      both documents and SFT examples, which need it given (in gin:
      `JsonlCorpus.mixture_rates = @AnchoredMixtureRates()`, as gin/runs/user_corpus.gin
      binds it).
    dropout_rate: the share of chunk annotations left out of P_pretrain.
    key_only_rate: the share of anchored SFT examples whose annotation keys and
      delimiters stay in the loss (values masked), to keep the tag syntax stable.
    mask_annotation: False puts the whole annotation of anchored SFT in the loss (the
      ablation; `preprocessors.anchored_sft`).
    eval_prompts: file pattern(s) of held-out prompts, JSONL `{"prompt", "id"}` (id
      optional), registered as P_eval_prompts; an SFT record whose prompt (`sft_prompt`)
      is one of them exactly is left out of the SFT tasks and the mixture, so the prompts
      are unseen in training.
    num_eval_prompts: without `eval_prompts`, hold this many distinct prompts out of the
      SFT files (`hold_out_sft_prompts`: by hash, deterministic) as P_eval_prompts, and
      leave every SFT record with one of them out of the SFT tasks; at most half the
      distinct prompts. 0: none held out, no P_eval_prompts (unless `eval_prompts`).
  """
  name: str
  vocabulary_path: str
  documents: Mapping[str, str | Sequence[str]] = dataclasses.field(default_factory=dict)
  sft: Mapping[str, str | Sequence[str]] = dataclasses.field(default_factory=dict)
  document_fields: sources.DocumentFields = sources.DocumentFields()
  sft_fields: sources.SftFields = sources.SftFields()
  sft_format: str = "pairs"
  messages_field: str = "messages"
  chat_template_path: Optional[str] = None
  template: PromptTemplate = PromptTemplate()
  on_error: str = "raise"
  cache_dir: Optional[str] = None
  # Given, never defaulted: a default built here would read `AnchoredMixtureRates.*`
  # bindings that no gin file shows reaching the corpus.
  mixture_rates: Optional[AnchoredMixtureRates] = None
  dropout_rate: float = 0.0
  key_only_rate: float = 0.003
  mask_annotation: bool = True
  eval_prompts: Optional[str | Sequence[str]] = None
  num_eval_prompts: int = 0

  def __post_init__(self):
    preprocessors.check_annotation_knobs("JsonlCorpus", self.dropout_rate, self.key_only_rate,
                                         self.mask_annotation)
    rates_needed = bool(self.documents and self.sft)
    require(isinstance(self.mixture_rates, AnchoredMixtureRates)
            or (self.mixture_rates is None and not rates_needed), "JsonlCorpus.mixture_rates",
            self.mixture_rates, "AnchoredMixtureRates (in gin: JsonlCorpus.mixture_rates = "
            "@AnchoredMixtureRates()), which a corpus of documents and SFT examples needs "
            "for its anchored SFT mixture")
    require(is_count(self.num_eval_prompts, 0), "JsonlCorpus.num_eval_prompts",
            self.num_eval_prompts, "an int >= 0")
    if self.eval_prompts is not None:
      require(bool(self.eval_prompts) and (isinstance(self.eval_prompts, str) or all(
          isinstance(p, str) and p for p in self.eval_prompts)), "JsonlCorpus.eval_prompts",
              self.eval_prompts, "None or file pattern(s) of JSONL prompts")
    elif self.num_eval_prompts and not self.sft:
      raise SettingError(f"JsonlCorpus.num_eval_prompts={self.num_eval_prompts} holds prompts "
                         "out of the SFT files, and the corpus has none (sft): give "
                         "eval_prompts (EVAL_PROMPTS) instead")
    if self.sft_format not in ("pairs", "messages"):
      raise SettingError(f"JsonlCorpus.sft_format={self.sft_format!r}; expected 'pairs' or "
                         "'messages'")
    if self.chat_template_path and self.sft_format != "messages":
      raise SettingError("JsonlCorpus.chat_template_path lays out conversations: it needs "
                         "sft_format='messages'")

  def register(self) -> list[str]:
    """Registers this corpus's tasks (and mixture, when it has both kinds)."""
    vocabulary = load_vocabulary(self.vocabulary_path)
    source = lambda files, convert: validated.file_source(
        list(files), files.__getitem__, convert, on_error=self.on_error,
        cache_dir=self.cache_dir)
    names = []
    fmt = self.template.annotation_format
    if self.documents:
      names += register_document_tasks(
          self.name, source(self.documents, validated.Documents(fmt, self.document_fields)),
          vocabulary, self.template, dropout_rate=self.dropout_rate)
    held_out = self._held_out() if self.eval_prompts or self.num_eval_prompts else None
    if self.sft:
      chat = self.sft_format == "messages"
      jinja = load_chat_template(self.chat_template_path) if self.chat_template_path else None

      def convert(anchored):
        if not chat:
          return validated.SftExamples(fmt, self.sft_fields, anchored=anchored)
        examples = validated.ChatExamples(self.template, self.messages_field, jinja,
                                          anchored=anchored)
        return _WithPrompt(examples, self.messages_field) if held_out else examples
      keep = None
      if held_out:  # Leaves out the records whose prompt is held out.
        key = HELD_OUT_KEY if chat else "prompt"

        def keep(ex):
          with tf.init_scope():  # Traced by tf.data; the files are read eagerly.
            prompts = sorted({p for _, p in held_out()})
          prompts = tf.constant(prompts, tf.string)
          return tf.logical_not(tf.reduce_any(tf.equal(ex[key], prompts)))
      sft_source = lambda anchored: validated.file_source(
          list(self.sft), self.sft.__getitem__, convert(anchored), on_error=self.on_error,
          cache_dir=self.cache_dir, keep=keep)
      # Two validations of the same files, each cached under its own key and run only when
      # a task reading it builds its dataset.
      names += register_sft_tasks(self.name, sft_source(True), vocabulary,
                                  self.template, chat=chat, append_eos=jinja is None,
                                  standard_source=sft_source(False),
                                  key_only_rate=self.key_only_rate,
                                  mask_annotation=self.mask_annotation)
    if self.documents and self.sft:
      names.append(register_anchored_mixture(self.name, self.mixture_rates))
    if held_out:
      names.append(register_eval_prompts(self.name, held_out, vocabulary, self.template))
    return names

  def _held_out(self) -> Callable[[], list[tuple[str, str]]]:
    """() -> the held-out (id, prompt) pairs: `eval_prompts`' or those held out of the SFT
    files; read when first called (a dataset is built), then kept."""
    found = []

    def held_out():
      if not found:
        if self.eval_prompts:
          found.append(prompt_files.read_prompts(self.eval_prompts, allow_empty=False))
        else:
          files = [f for patterns in self.sft.values()
                   for f in ([patterns] if isinstance(patterns, str) else patterns)]
          prompts = sources.read_examples(
              files, lambda record, where: {"prompt": sft_prompt(
                  record, where, self.sft_format, self.sft_fields, self.messages_field)},
              self.on_error)
          found.append(hold_out_sft_prompts([ex["prompt"] for ex in prompts],
                                            self.num_eval_prompts))
      return found[0]
    return held_out


class Corpus(Protocol):
  """What `configured_corpora` holds: a typed corpus that registers its tasks."""

  def register(self) -> list[str]:
    """Registers the corpus's tasks and mixtures; returns their names."""


@gin.configurable
def configured_corpora(corpora: Sequence[Corpus] = ()) -> list[Corpus]:
  """The corpora bound in gin (`configured_corpora.corpora`), built and checked."""
  return list(corpora)


def register_configured_corpora() -> list[str]:
  """Registers the corpora bound in gin; entry points call it at start-up, after gin is
  parsed (train, infer, `pipeline.get_dataset`)."""
  return [name for corpus in configured_corpora() for name in corpus.register()]
