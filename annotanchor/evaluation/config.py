"""The typed configuration of `annotanchor evaluate`: one frozen object, each choice resolved
and validated once, when it is built.

  EvaluateConfig(sample_files, output_dir, capability_files, frontiers, arms=Arms,
                 labeller=LabellerChoice, quality=QualityChoice, embedder=EmbedderChoice,
                 constraints=ConstraintsChoice, metrics=MetricsConfig,
                 bootstrap=BootstrapConfig, write_plots, progress_bar)

Users bind the settings by their flat names, `evaluate.labeller = 'annotation_tags'`
(gin/runs/evaluate.gin); annotanchor/evaluate.py's `evaluate_config` builds this object from
them, and `evaluate(config)` reads each group where it is used. A setting given as "a
string, a callable or an object" (the labeller, the quality function, the embedder, the
prompt constraints) becomes one typed choice here: an import path is imported, an alias is
made its object, and a bad value is one SettingError naming `evaluate.SETTING`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Collection, Mapping, Optional, Sequence, Union

from annotanchor.errors import SettingError, is_count, require
from annotanchor.evaluation.clusters import EmbeddingClusterLabeller
from annotanchor.evaluation.embedding import MiniLMEmbedder
from annotanchor.evaluation.hooks import INPUTS, adapt, import_callable
from annotanchor.evaluation.judge import JudgeEndpoint
from annotanchor.evaluation.labels import AnnotationTagLabeller, labeller_from_path

# The defaults that follow the embedder: with one, semantic entropy over embedding clusters
# and distinct_k classes by embedding similarity; without one, neither.
AUTO = "auto"
CLUSTERS = "embedding_clusters"
ANNOTATION_TAGS = "annotation_tags"
MINILM = "minilm"
# distinct_k's default similarity threshold: samples whose response embeddings have a cosine
# similarity of at least this are one class (near-paraphrases with all-MiniLM-L6-v2).
DISTINCT_K_THRESHOLD = 0.9


def _inputs(setting: str, inputs) -> tuple:
  """An imported function's sample fields, checked (evaluation/hooks.py adapts them)."""
  require(isinstance(inputs, (list, tuple)) and bool(inputs)
          and all(i in INPUTS for i in inputs), setting, inputs,
          f"a non-empty subset of {INPUTS}")
  return tuple(inputs)


def _callable_name(fn) -> str:
  return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__name__)}"


@dataclasses.dataclass(frozen=True)
class Arms:
  """The arms the comparisons are built on; all must be present in the samples, and
  differ. Other arms (ablations) are reported and compared like the anchored one."""
  base: str = "base"
  sft: str = "sft"
  anchored: str = "anchored"

  def __post_init__(self):
    for name in ("base", "sft", "anchored"):
      value = getattr(self, name)
      require(isinstance(value, str) and bool(value), f"evaluate.{name}_arm", value,
              "an arm name")
    if len({self.base, self.sft, self.anchored}) < 3:
      raise SettingError(f"base, sft and anchored arms must differ: {self.base!r}, "
                         f"{self.sft!r}, {self.anchored!r}")

  @property
  def compared(self) -> tuple[str, str, str]:
    return (self.base, self.sft, self.anchored)

  def order(self, arms: Sequence[str]) -> list[str]:
    """Report order: the three named arms first, then the ablations as given."""
    return [*self.compared, *(a for a in arms if a not in self.compared)]


@dataclasses.dataclass(frozen=True)
class EmbedderChoice:
  """The response embedder: `embed` texts -> (N, D) array, or None (no embedding distance,
  and the 'auto' labeller and distinct_k_threshold are None)."""
  embed: Optional[Callable[[Sequence[str]], Any]]

  @classmethod
  def of(cls, value, progress_bar: Optional[bool]) -> "EmbedderChoice":
    if value == MINILM:
      return cls(MiniLMEmbedder(progress_bar=progress_bar))
    if value is None or callable(value):
      return cls(value)
    raise SettingError(f"evaluate.embedder={value!r}: expected 'minilm', None or a callable")

  @property
  def name(self) -> Optional[str]:
    """What the report's settings.embedder records."""
    return None if self.embed is None else type(self.embed).__name__


@dataclasses.dataclass(frozen=True)
class LabellerChoice:
  """The label source of semantic entropy: `labeller` is None (no semantic entropy), an
  EmbeddingClusterLabeller, an AnnotationTagLabeller (its format set from the samples by
  `for_format`) or a per-sample labeller (an imported function, a JudgeLabeller, a
  callable)."""
  labeller: Any

  @classmethod
  def of(cls, value, inputs: Sequence[str], has_embedder: bool) -> "LabellerChoice":
    if value == AUTO:
      value = CLUSTERS if has_embedder else None
    if value == CLUSTERS:
      value = EmbeddingClusterLabeller()
    if value == ANNOTATION_TAGS:
      value = AnnotationTagLabeller()
    if isinstance(value, EmbeddingClusterLabeller) and not has_embedder:
      raise SettingError("evaluate.labeller: the embedding-cluster labeller clusters response "
                         "embeddings: it needs evaluate.embedder (e.g. 'minilm')")
    if isinstance(value, str):
      return cls(labeller_from_path(value, _inputs("evaluate.labeller_inputs", inputs)))
    if value is None or callable(value) or isinstance(value, EmbeddingClusterLabeller):
      return cls(value)
    raise SettingError(f"evaluate.labeller={value!r}: expected 'auto', 'embedding_clusters', "
                       "'annotation_tags', 'pkg.module:function', a labeller or None")

  @property
  def clusters(self) -> bool:
    """Whether the labels are the label-free embedding clusters (they label all arms at
    once)."""
    return isinstance(self.labeller, EmbeddingClusterLabeller)

  def for_format(self, fmt):
    """The labeller; one that reads annotations reads them in the samples' `fmt`."""
    if isinstance(self.labeller, AnnotationTagLabeller):
      return self.labeller.with_format(fmt)
    return self.labeller


@dataclasses.dataclass(frozen=True)
class QualityChoice:
  """What scores a sample's quality: `score` (prompt, annotation, response) -> scores, and
  `source`, the report's settings.quality_source ('function: PATH', 'judge: MODEL'); both
  None when quality is not measured. A judge (one request per sample) shows progress."""
  score: Optional[Callable[[str, str, str], Any]]
  source: Optional[str]
  is_judge: bool = False

  @classmethod
  def of(cls, value, inputs: Sequence[str]) -> "QualityChoice":
    if value is None:
      return cls(None, None)
    inputs = _inputs("evaluate.quality_inputs", inputs)
    if isinstance(value, JudgeEndpoint):
      return cls(adapt(value, inputs), f"judge: {value.model}", is_judge=True)
    if isinstance(value, str):
      return cls(adapt(import_callable(value), inputs), f"function: {value}")
    if callable(value):
      return cls(adapt(value, inputs), f"function: {_callable_name(value)}")
    raise SettingError(f"evaluate.quality_fn={value!r}: expected None, 'pkg.module:function', "
                       "a function or @JudgeQuality()")


@dataclasses.dataclass(frozen=True)
class ConstraintsChoice:
  """`fixed` prompt -> the attributes the prompt fixes (left out of its semantic entropy),
  or None: every attribute of every prompt counts. `name` is what the report records."""
  fixed: Optional[Callable[[str], Collection[str]]]
  name: Optional[str]

  @classmethod
  def of(cls, value) -> "ConstraintsChoice":
    if value is None:
      return cls(None, None)
    if isinstance(value, str):
      return cls(import_callable(value), value)
    if callable(value):
      return cls(value, f"{value.__module__}:{value.__qualname__}")
    raise SettingError(f"evaluate.prompt_constraints={value!r}: expected None, "
                       "'pkg.module:function' or a function")


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
  """How the diversity metrics count.

  Attributes:
    distinct_ns: the n of distinct-n.
    distinct_k_k: k of distinct_k (None: all N samples).
    distinct_k_threshold: None (classes by normalised text equality) or a cosine
      similarity (classes by embedding, which needs an embedder); 'auto' is resolved
      by `of`.
    unknown: how unknown labels count in semantic entropy, "label" or "drop".
    rel_tol: ratio denominators within rel_tol * |D(base)| of zero count as zero.
  """
  distinct_ns: tuple[int, ...] = (1, 2)
  distinct_k_k: Optional[int] = None
  distinct_k_threshold: Optional[float] = None
  unknown: str = "label"
  rel_tol: float = 0.01

  def __post_init__(self):
    require(isinstance(self.distinct_ns, tuple) and bool(self.distinct_ns)
            and all(is_count(n) for n in self.distinct_ns), "evaluate.distinct_ns",
            self.distinct_ns, "positive integers, e.g. (1, 2)")
    require(self.distinct_k_k is None or is_count(self.distinct_k_k), "evaluate.distinct_k_k",
            self.distinct_k_k, "None or a positive integer")
    require(self.unknown in ("label", "drop"), "evaluate.unknown", self.unknown,
            "'label' or 'drop'")

  @staticmethod
  def threshold(value, has_embedder: bool) -> Optional[float]:
    """distinct_k_threshold's setting, 'auto' resolved."""
    if value == AUTO:
      return DISTINCT_K_THRESHOLD if has_embedder else None
    if value is None:
      return None
    require(not isinstance(value, bool) and isinstance(value, (int, float))
            and -1 < value <= 1, "evaluate.distinct_k_threshold", value,
            "'auto', None or a cosine similarity in (-1, 1]")
    if not has_embedder:
      raise SettingError("evaluate.distinct_k_threshold needs an embedder")
    return float(value)

  @property
  def equivalence(self) -> str:
    """What makes two samples one class of distinct_k, for the report."""
    if self.distinct_k_threshold is None:
      return "normalised text equality"
    return f"embedding cosine >= {self.distinct_k_threshold}"


@dataclasses.dataclass(frozen=True)
class BootstrapConfig:
  """The paired bootstrap over prompts (evaluation/compare.py)."""
  num_resamples: int = 1000
  seed: int = 0
  confidence: float = 0.95

  def __post_init__(self):
    require(is_count(self.num_resamples), "evaluate.num_resamples", self.num_resamples,
            "a positive integer")
    require(is_count(self.seed, 0), "evaluate.seed", self.seed, "an integer >= 0")
    require(isinstance(self.confidence, float) and 0 < self.confidence < 1,
            "evaluate.confidence", self.confidence, "a number in (0, 1)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
  """An evaluation (see annotanchor/evaluate.py for each setting).

  Attributes:
    sample_files: paths of JSONL sample files, or a mapping arm -> path.
    output_dir: where report.json, report.md and the PNG plots go.
    capability_files: arm -> capability.json of `annotanchor capability` (may be empty).
    frontiers: curve name -> arms of one model at several temperatures (needs quality).
    arms, labeller, quality, embedder, constraints, metrics, bootstrap: the groups above.
    write_plots: also write the PNG plots.
    progress_bar: judge requests as a tqdm bar (None: when stderr is a terminal).
  """
  sample_files: Union[Sequence[str], Mapping[str, str]]
  output_dir: str
  capability_files: Mapping[str, str] = dataclasses.field(default_factory=dict)
  frontiers: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
  arms: Arms = Arms()
  labeller: LabellerChoice = LabellerChoice(None)
  quality: QualityChoice = QualityChoice(None, None)
  embedder: EmbedderChoice = EmbedderChoice(None)
  constraints: ConstraintsChoice = ConstraintsChoice(None, None)
  metrics: MetricsConfig = MetricsConfig()
  bootstrap: BootstrapConfig = BootstrapConfig()
  write_plots: bool = True
  progress_bar: Optional[bool] = None

  def __post_init__(self):
    require(isinstance(self.sample_files, (Mapping, list, tuple)) and bool(self.sample_files),
            "evaluate.sample_files", self.sample_files, "a list of paths or {arm: path}")
    require(isinstance(self.capability_files, Mapping), "evaluate.capability_files",
            self.capability_files, "None or {arm: capability.json}")
    require(isinstance(self.frontiers, Mapping), "evaluate.frontiers", self.frontiers,
            "None or {curve: [arm, ...]}")
    if self.frontiers and self.quality.score is None:
      raise SettingError("evaluate.frontiers compares arms at matched quality: it needs "
                         "evaluate.quality_fn")
    if self.metrics.distinct_k_threshold is not None and self.embedder.embed is None:
      raise SettingError("evaluate.distinct_k_threshold needs an embedder")
