r"""The `evaluate` entry point: sample files of several arms -> report.json, report.md, plots.

  python -m annotanchor.evaluate --gin_file=gin/runs/evaluate.gin \
      --gin.SAMPLE_FILES="{'base': 'runs/base/samples.jsonl', 'sft': ..., 'anchored': ...}" \
      --gin.OUTPUT_DIR="'runs/eval'"

Works from sample files alone (no model, no jax). Each diversity metric is computed per
prompt over its N samples, averaged over prompts per arm, and compared across arms with
a paired bootstrap over prompts (see annotanchor/evaluation/compare.py).
"""
if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.evaluate")

import os
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import gin
import numpy as np

from annotanchor import gin_utils
from annotanchor.evaluation import (adherence, capability, caveats, compare, diversity,
                                    frontier, plots, quality, report, wellformed)
from annotanchor.evaluation.clusters import EmbeddingClusterLabeller
from annotanchor.evaluation.config import (AUTO, MINILM, Arms, BootstrapConfig,
                                           ConstraintsChoice, EmbedderChoice, EvaluateConfig,
                                           LabellerChoice, MetricsConfig, QualityChoice)
from annotanchor.evaluation.embedding import MiniLMEmbedder
from annotanchor.evaluation.hooks import INPUTS
from annotanchor.evaluation.judge import JudgeQuality
from annotanchor.evaluation.judge_labels import JudgeLabeller
from annotanchor.evaluation.labels import AnnotationTagLabeller, FunctionLabeller
from annotanchor.evaluation.progress import Progress
from annotanchor.evaluation.samples import ArmSamples, annotation_format, load_arms

for _cls in (AnnotationTagLabeller, FunctionLabeller, JudgeLabeller, JudgeQuality, MiniLMEmbedder,
             EmbeddingClusterLabeller):
  gin.external_configurable(_cls, module="annotanchor.evaluation")

Embedder = Callable[[Sequence[str]], np.ndarray]


def _per_prompt_metrics(arms: ArmSamples, labeller, embedder: Optional[Embedder],
                        metrics_config: MetricsConfig,
                        prompt_constraints: Optional[Callable] = None,
                        progress_bar: Optional[bool] = None):
  """Returns ({metric: {arm: (P,)}}, {attr: {arm: (P,)}}, {attr: {arm: rate}}, attrs)."""
  texts = {a: [[s.response for s in row] for row in rows] for a, rows in arms.by_arm.items()}
  metrics: Dict[str, Dict[str, np.ndarray]] = {}
  by_attr: Dict[str, Dict[str, np.ndarray]] = {}
  unknown_rate: Dict[str, Dict[str, float]] = {}
  attrs: List[str] = []
  embeddings = {}
  if isinstance(labeller, EmbeddingClusterLabeller):  # Labels every arm's samples at once.
    embeddings = _embed_arms(embedder, texts, arms.num_samples)
    labels = labeller.label_arms(embeddings)
  elif labeller is not None:
    if hasattr(labeller, "label_many"):  # A remote labeller: ask concurrently, then read.
      labeller.label_many([(s.prompt, s.annotation, s.response)
                           for rows in arms.by_arm.values() for row in rows for s in row],
                          progress_bar)
    labels = {a: [[labeller(s.prompt, s.annotation, s.response) for s in row] for row in rows]
              for a, rows in arms.by_arm.items()}
  if labeller is not None:
    # One attribute set for every arm, so arms are measured on the same attributes.
    attrs = sorted({k for rows in labels.values() for k in diversity.attribute_names(rows)})
    fixed = None
    if prompt_constraints is not None:
      fixed = [set(prompt_constraints(arms.prompts[pid])) for pid in arms.prompt_ids]
      # An attribute every prompt fixes has nothing left to measure.
      attrs = [a for a in attrs if any(a not in f for f in fixed)]
    if attrs:
      metrics["semantic_entropy"] = {}
      for arm, rows in labels.items():
        ent, rate = diversity.semantic_entropy(rows, attrs, metrics_config.unknown, fixed)
        metrics["semantic_entropy"][arm] = compare.nanmean(ent, axis=0)
        for i, attr in enumerate(attrs):
          by_attr.setdefault(attr, {})[arm] = ent[i]
          unknown_rate.setdefault(attr, {})[arm] = float(compare.nanmean(rate[i]))
  if embedder is not None:
    if not embeddings:  # After a judge's questions, as before.
      embeddings = _embed_arms(embedder, texts, arms.num_samples)
    metrics["embedding_distance"] = {
        a: np.array([diversity.mean_pairwise_cosine_distance(e) for e in embeddings[a]])
        for a in texts}
  metrics["distinct_k"] = {
      a: np.array([diversity.distinct_k(
          row, metrics_config.distinct_k_k, embeddings[a][j] if embeddings else None,
          metrics_config.distinct_k_threshold)
          for j, row in enumerate(rows)], dtype=np.float64)
      for a, rows in texts.items()}
  for arm, rows in texts.items():
    for name, values in diversity.distinct_n_dict(rows, metrics_config.distinct_ns).items():
      metrics.setdefault(name, {})[arm] = values
  return metrics, by_attr, unknown_rate, attrs


def _embed_arms(embedder: Embedder, texts: Mapping[str, List[List[str]]], num_samples: int
                ) -> Dict[str, np.ndarray]:
  """arm -> (P, N, D) embeddings of its responses, from one call over every arm's (one
  progress count, and length-sorted batches across arms)."""
  flat = [t for rows in texts.values() for row in rows for t in row]
  vectors = np.asarray(embedder(flat))
  out, start = {}, 0
  for arm, rows in texts.items():
    out[arm] = vectors[start:start + len(rows) * num_samples].reshape(len(rows), num_samples, -1)
    start += len(rows) * num_samples
  return out


def _quality_by_arm(choice: QualityChoice, arms: ArmSamples, order: Sequence[str],
                    progress_bar: Optional[bool]) -> Dict[str, Dict[str, np.ndarray]]:
  """arm -> quality name -> (P,) means; a judge's requests (one per sample) show progress."""
  rows = {a: [[(s.prompt, s.annotation, s.response) for s in row] for row in arms.by_arm[a]]
          for a in order}
  if not choice.is_judge:  # A local checker is quick: no progress.
    return {a: quality.quality_per_prompt(choice.score, rows[a]) for a in order}
  total = sum(len(row) for a in order for row in rows[a])
  with Progress("judge", total, "samples", progress_bar) as progress:
    return {a: quality.quality_per_prompt(choice.score, rows[a], progress.update)
            for a in order}


@gin.configurable("evaluate", module="annotanchor")
def evaluate_config(sample_files: Union[Sequence[str], Mapping[str, str]] = gin.REQUIRED,
                    output_dir: str = gin.REQUIRED,
                    capability_files: Optional[Mapping[str, str]] = None,
                    frontiers: Optional[Mapping[str, Sequence[str]]] = None,
                    labeller=AUTO,
                    quality_fn=None,
                    prompt_constraints=None,
                    base_arm: str = "base",
                    sft_arm: str = "sft",
                    anchored_arm: str = "anchored",
                    labeller_inputs: Sequence[str] = INPUTS,
                    quality_inputs: Sequence[str] = INPUTS,
                    embedder=MINILM,
                    distinct_ns: Sequence[int] = (1, 2),
                    distinct_k_k: Optional[int] = None,
                    distinct_k_threshold: Union[str, float, None] = AUTO,
                    unknown: str = "label",
                    num_resamples: int = 1000,
                    seed: int = 0,
                    confidence: float = 0.95,
                    rel_tol: float = 0.01,
                    write_plots: bool = True,
                    progress_bar: Optional[bool] = None) -> EvaluateConfig:
  """The `evaluate.*` settings, as users bind them, resolved and checked once into an
  EvaluateConfig (evaluation/config.py), which `evaluate` runs.

  Args:
    sample_files: paths of JSONL sample files (arms read from the records), or a
      mapping arm -> path (see `samples.load_arms`).
    output_dir: where report.json, report.md and the PNG plots go.
    capability_files: arm -> capability.json of `annotanchor capability` (the arm's
      multiple-choice accuracy, reported next to its diversity); arms may be left out
      (an ablation that samples the same checkpoint as another arm, say).
    frontiers: curve name -> arms of one model sampled at several temperatures, e.g.
      {"sft": ["sft_t0.6", "sft"], "anchored": ["anchored_t0.6", "anchored"]}: each
      curve's diversity at the sft arm's quality (evaluation/frontier.py); needs quality_fn.
    labeller: the label source for semantic entropy: "auto" (default: "embedding_clusters"
      when there is an embedder, else None), "embedding_clusters" (label-free: each
      sample's cluster among the response embeddings of its prompt's samples in every
      arm, see evaluation/clusters.py; an EmbeddingClusterLabeller sets its options), a
      Labeller, "annotation_tags" (the sampled annotation's tags), an import path
      "pkg.module:function", or None (no semantic entropy).
    quality_fn: a quality function (see `evaluation.quality`), an import path, e.g. the
      storyworld checker, or a JudgeQuality; None: quality is not measured. The report's
      settings.quality_source says which ("function: PATH", "judge: MODEL" or None).
    prompt_constraints: a function prompt -> the attributes the prompt fixes (a mapping
      or collection of names; "Tell a story set in the desert" fixes location), or its
      import path, e.g. the storyworld one; those attributes are left out of that
      prompt's semantic entropy in every arm (prompt adherence is not collapse; quality
      measures it). None: every attribute of every prompt counts.
    base_arm, sft_arm, anchored_arm: the arms the comparisons are built on; all must be
      present. Other arms (ablations) are reported and compared like the anchored one.
    labeller_inputs, quality_inputs: the sample fields an imported function takes.
    embedder: "minilm" (needs the `embeddings` extra), a callable texts -> (N, D)
      array, or None (no embedding distance).
    distinct_ns: the n of distinct-n.
    distinct_k_k: k of distinct_k (None: all N samples).
    distinct_k_threshold: "auto" (default: DISTINCT_K_THRESHOLD, 0.9, when there is an
      embedder, else None); None: classes by normalised text equality; a number:
      classes by embedding cosine similarity >= threshold (needs an embedder).
    unknown: how unknown labels count in semantic entropy, "label" or "drop".
    num_resamples, seed, confidence: the bootstrap over prompts.
    rel_tol: ratio denominators within rel_tol * |D(base)| of zero count as zero.
    write_plots: also write the PNG plots.
    progress_bar: show judge requests and embedding batches as tqdm bars (default: when
      stderr is a terminal), otherwise as a line at every tenth of them.

  Raises:
    SettingError: a setting of the wrong kind, naming it; nothing is read or written then.
  """
  embed = EmbedderChoice.of(embedder, progress_bar)
  has_embedder = embed.embed is not None
  # Importing a user module may register gin configurables (the storyworld parser's
  # package does), which gin refuses once the config is locked.
  with gin.unlock_config():
    return EvaluateConfig(
        sample_files=sample_files, output_dir=output_dir,
        capability_files=dict(capability_files or {}), frontiers=dict(frontiers or {}),
        arms=Arms(base_arm, sft_arm, anchored_arm),
        labeller=LabellerChoice.of(labeller, labeller_inputs, has_embedder),
        quality=QualityChoice.of(quality_fn, quality_inputs), embedder=embed,
        constraints=ConstraintsChoice.of(prompt_constraints),
        metrics=MetricsConfig(tuple(distinct_ns), distinct_k_k,
                              MetricsConfig.threshold(distinct_k_threshold, has_embedder),
                              unknown, rel_tol),
        bootstrap=BootstrapConfig(num_resamples, seed, confidence),
        write_plots=write_plots, progress_bar=progress_bar)


def evaluate(config: EvaluateConfig) -> dict:
  """Measures every arm's diversity and quality and compares the arms.

  Args:
    config: the settings (`evaluate_config` builds it from the `evaluate.*` bindings).

  Returns:
    The report (as written to report.json).

  Raises:
    SampleFileError: malformed or mismatched sample files; nothing is written then.
  """
  names = config.arms
  arms = load_arms(config.sample_files, required_arms=list(names.compared))
  # Read first: a bad capability file fails before any metric is computed.
  capabilities = capability.capability_by_arm(config.capability_files, arms.arms)
  temperatures = {a: float(rows[0][0].decoding["temperature"]) for a, rows in arms.by_arm.items()}
  if config.frontiers:
    frontier.check_curves(config.frontiers, arms.arms, temperatures)
  fmt = annotation_format([s for rows in arms.by_arm.values() for row in rows for s in row])
  labeller = config.labeller.for_format(fmt)
  embed = config.embedder.embed
  metrics_config = config.metrics
  order = names.order(arms.arms)

  metrics, by_attr, unknown_rate, attrs = _per_prompt_metrics(
      arms, labeller, embed, metrics_config, config.constraints.fixed, config.progress_bar)
  boot = compare.Bootstrap(len(arms.prompt_ids), config.bootstrap.num_resamples,
                           config.bootstrap.seed, config.bootstrap.confidence)

  out_arms = {a: {"diversity": {}, "quality": {}, "entropy_by_attribute": {},
                  "unknown_rate": {}} for a in order}
  comparisons = {}
  for name, per_arm in metrics.items():
    summary = compare.summarize_metric(per_arm, boot, names.base, names.sft,
                                       metrics_config.rel_tol, order)
    for a in order:
      out_arms[a]["diversity"][name] = summary["per_arm"][a]
    comparisons[name] = summary["comparisons"]
  for attr in attrs:
    figs = compare.ArmFigures(by_attr[attr], boot)
    for a in order:
      out_arms[a]["entropy_by_attribute"][attr] = figs.estimate(a).to_dict()
      out_arms[a]["unknown_rate"][attr] = unknown_rate[attr][a]
  if config.quality.score is not None:
    q_per_arm = _quality_by_arm(config.quality, arms, order, config.progress_bar)
    quality_names = sorted({n for q in q_per_arm.values() for n in q},
                           key=lambda n: (n != quality.OVERALL, n))
    for n in quality_names:
      figs = compare.ArmFigures(
          {a: q_per_arm[a].get(n, np.full(boot.num_prompts, np.nan)) for a in order}, boot)
      for a in order:
        out_arms[a]["quality"][n] = figs.estimate(a).to_dict()

  curves = {}
  if config.frontiers:
    q_overall = {a: q_per_arm[a].get(quality.OVERALL, np.full(boot.num_prompts, np.nan))
                 for a in order}
    curves = {m: frontier.frontier(per_arm, q_overall, config.frontiers, temperatures,
                                   names.base, names.sft, boot)
              for m, per_arm in metrics.items()}

  # Whether responses realize their sampled annotations (needs a response-side labeller
  # whose attributes an annotation can name: not the clusters).
  adherent = {}
  if attrs and not isinstance(labeller, (AnnotationTagLabeller, EmbeddingClusterLabeller)):
    adherent = adherence.adherence_by_arm(
        {a: [s for row in arms.by_arm[a] for s in row] for a in order}, names.sft,
        AnnotationTagLabeller(fmt=fmt), labeller, attrs)

  # In the format the checkpoints were trained with, as the samples record it.
  malformed = wellformed.malformed_by_arm(
      {a: [s for row in arms.by_arm[a] for s in row] for a in order}, fmt)
  # Empty or repetitive responses per arm, for the report's caveats (evaluation/caveats.py).
  degenerate = caveats.degeneracy_by_arm(
      {a: [s.response for row in arms.by_arm[a] for s in row] for a in order})
  for a in order:
    out_arms[a]["degenerate"] = degenerate[a]

  sample_files = config.sample_files
  files = ({k: os.fspath(v) for k, v in sample_files.items()}
           if isinstance(sample_files, Mapping) else [os.fspath(p) for p in sample_files])
  result = {
      "num_prompts": len(arms.prompt_ids), "num_samples": arms.num_samples,
      "base_arm": names.base, "sft_arm": names.sft, "anchored_arm": names.anchored,
      "sample_files": files, "output_dir": os.fspath(config.output_dir),
      "settings": {
          "labeller": None if labeller is None else type(labeller).__name__,
          # Requests, cache hits and failures by cause of a remote labeller (JudgeLabeller).
          **({"labeller_summary": labeller.summary()} if hasattr(labeller, "summary") else {}),
          # The label-free labeller's rule, threshold and clusters per prompt (clusters.py).
          "clusters": labeller.settings() if config.labeller.clusters else None,
          "quality_source": config.quality.source,
          "unknown": metrics_config.unknown, "embedder": config.embedder.name,
          # Attributes the prompt fixes are left out of its semantic entropy (if set).
          "prompt_constraints": config.constraints.name,
          "distinct_ns": list(metrics_config.distinct_ns),
          "distinct_k_k": metrics_config.distinct_k_k or arms.num_samples,
          "distinct_k_threshold": metrics_config.distinct_k_threshold,
          "distinct_k_equivalence": metrics_config.equivalence,
          "num_resamples": config.bootstrap.num_resamples, "seed": config.bootstrap.seed,
          "confidence": config.bootstrap.confidence, "rel_tol": metrics_config.rel_tol,
          "interval": "paired percentile bootstrap over prompts"},
      "arms": out_arms,
      "comparisons": comparisons,
      "annotation_adherence": adherent,
      "malformed_annotations": malformed,
      "capability": {a: capabilities[a] for a in order if a in capabilities},
      "frontier": curves,
  }
  result["caveats"] = caveats.report_caveats(result)  # Written first in report.md too.
  report.write_report(result, config.output_dir)
  if config.write_plots:
    plots.write_plots(result, config.output_dir)
  return result


def main(argv: Optional[Sequence[str]] = None) -> int:
  """`annotanchor evaluate` / `python -m annotanchor.evaluate` with t5x-style gin flags."""
  def report_written(result) -> int:
    for line in caveats.terminal_lines(result):  # What the figures below cannot say.
      print(line)
    print("\n".join(report.per_arm_table(result)), flush=True)
    print(f"wrote the report on arms {list(result['arms'])} to {result['output_dir']} "
          "(report.md: comparisons and the other tables)")
    return 0
  return gin_utils.run_main("evaluate", lambda: evaluate(evaluate_config()), argv,
                            doc=__doc__, exit_code=report_written)
