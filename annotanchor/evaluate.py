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
from typing import Callable, Collection, Dict, List, Mapping, Optional, Sequence, Union

import gin
import numpy as np

from annotanchor import gin_utils
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.errors import SettingError
from annotanchor.evaluation import (adherence, capability, caveats, compare, diversity,
                                    frontier, plots, quality, report, wellformed)
from annotanchor.evaluation.clusters import EmbeddingClusterLabeller
from annotanchor.evaluation.embedding import MiniLMEmbedder
from annotanchor.evaluation.hooks import INPUTS, adapt, import_callable
from annotanchor.evaluation.judge import JudgeEndpoint, JudgeQuality
from annotanchor.evaluation.judge_labels import JudgeLabeller
from annotanchor.evaluation.labels import (AnnotationTagLabeller, FunctionLabeller,
                                           labeller_from_path)
from annotanchor.evaluation.progress import Progress
from annotanchor.evaluation.samples import ArmSamples, annotation_format, load_arms

for _cls in (AnnotationTagLabeller, FunctionLabeller, JudgeLabeller, JudgeQuality, MiniLMEmbedder,
             EmbeddingClusterLabeller):
  gin.external_configurable(_cls, module="annotanchor.evaluation")

Embedder = Callable[[Sequence[str]], np.ndarray]

# The defaults that follow the embedder: with one, semantic entropy over embedding clusters
# and distinct_k classes by embedding similarity; without one, neither.
AUTO = "auto"
CLUSTERS = "embedding_clusters"
# distinct_k's default similarity threshold: samples whose response embeddings have a cosine
# similarity of at least this are one class (near-paraphrases with all-MiniLM-L6-v2).
DISTINCT_K_THRESHOLD = 0.9


def _resolve_labeller(labeller, inputs: Sequence[str], fmt: AnnotationFormat,
                      has_embedder: bool):
  """The labeller to use; one that reads annotations reads them in the samples' `fmt`."""
  if labeller == AUTO:
    labeller = CLUSTERS if has_embedder else None
  if labeller == CLUSTERS:
    labeller = EmbeddingClusterLabeller()
  if isinstance(labeller, EmbeddingClusterLabeller):
    if not has_embedder:
      raise SettingError("evaluate.labeller: the embedding-cluster labeller clusters response "
                         "embeddings: it needs evaluate.embedder (e.g. 'minilm')")
    return labeller
  if labeller == "annotation_tags":
    return AnnotationTagLabeller(fmt=fmt)
  if isinstance(labeller, AnnotationTagLabeller):
    return labeller.with_format(fmt)
  if labeller is None or callable(labeller):
    return labeller
  return labeller_from_path(labeller, inputs)


def _resolve_distinct_k_threshold(threshold, has_embedder: bool) -> Optional[float]:
  if threshold == AUTO:
    return DISTINCT_K_THRESHOLD if has_embedder else None
  if threshold is None:
    return None
  if (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
      or not -1 < threshold <= 1):
    raise SettingError(f"evaluate.distinct_k_threshold={threshold!r}: expected 'auto', None or "
                       "a cosine similarity in (-1, 1]")
  if not has_embedder:
    raise SettingError("distinct_k_threshold needs an embedder")
  return float(threshold)


def _callable_name(fn) -> str:
  return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__name__)}"


def _quality_source(quality_fn) -> Optional[str]:
  """What scored quality, for the report's settings: 'function: PATH', 'judge: MODEL'
  or None (quality not measured)."""
  if quality_fn is None:
    return None
  if isinstance(quality_fn, JudgeEndpoint):
    return f"judge: {quality_fn.model}"
  if isinstance(quality_fn, str):
    return f"function: {quality_fn}"
  return f"function: {_callable_name(quality_fn)}"


def _resolve_quality(quality_fn, inputs: Sequence[str]):
  if quality_fn is None:
    return None
  fn = import_callable(quality_fn) if isinstance(quality_fn, str) else quality_fn
  return adapt(fn, inputs)


def _resolve_embedder(embedder, progress_bar: Optional[bool]) -> Optional[Embedder]:
  if embedder == "minilm":
    return MiniLMEmbedder(progress_bar=progress_bar)
  if embedder is None or callable(embedder):
    return embedder
  raise SettingError(f"embedder={embedder!r}: expected 'minilm', None or a callable")


def _resolve_constraints(prompt_constraints) -> Optional[Callable[[str], Collection[str]]]:
  if prompt_constraints is None or callable(prompt_constraints):
    return prompt_constraints
  return import_callable(prompt_constraints)


def _per_prompt_metrics(arms: ArmSamples, labeller, embedder: Optional[Embedder],
                        distinct_ns: Sequence[int], distinct_k_k: Optional[int],
                        distinct_k_threshold: Optional[float], unknown: str,
                        prompt_constraints=None, progress_bar: Optional[bool] = None):
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
        ent, rate = diversity.semantic_entropy(rows, attrs, unknown, fixed)
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
          row, distinct_k_k, embeddings[a][j] if embeddings else None, distinct_k_threshold)
          for j, row in enumerate(rows)], dtype=np.float64)
      for a, rows in texts.items()}
  for arm, rows in texts.items():
    for name, values in diversity.distinct_n_dict(rows, distinct_ns).items():
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


def _quality_by_arm(quality_fn, qfn, arms: ArmSamples, order: Sequence[str],
                    progress_bar: Optional[bool]) -> Dict[str, Dict[str, np.ndarray]]:
  """arm -> quality name -> (P,) means; a judge's requests (one per sample) show progress."""
  rows = {a: [[(s.prompt, s.annotation, s.response) for s in row] for row in arms.by_arm[a]]
          for a in order}
  if not isinstance(quality_fn, JudgeEndpoint):  # A local checker is quick: no progress.
    return {a: quality.quality_per_prompt(qfn, rows[a]) for a in order}
  total = sum(len(row) for a in order for row in rows[a])
  with Progress("judge", total, "samples", progress_bar) as progress:
    return {a: quality.quality_per_prompt(qfn, rows[a], progress.update) for a in order}


@gin.configurable(module="annotanchor")
def evaluate(sample_files: Union[Sequence[str], Mapping[str, str]] = gin.REQUIRED,
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
             embedder="minilm",
             distinct_ns: Sequence[int] = (1, 2),
             distinct_k_k: Optional[int] = None,
             distinct_k_threshold: Union[str, float, None] = AUTO,
             unknown: str = "label",
             num_resamples: int = 1000,
             seed: int = 0,
             confidence: float = 0.95,
             rel_tol: float = 0.01,
             write_plots: bool = True,
             progress_bar: Optional[bool] = None) -> dict:
  """Measures every arm's diversity and quality and compares the arms.

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

  Returns:
    The report (as written to report.json).

  Raises:
    SampleFileError: malformed or mismatched sample files; nothing is written then.
  """
  if anchored_arm in (base_arm, sft_arm) or base_arm == sft_arm:
    raise SettingError(f"base, sft and anchored arms must differ: {base_arm!r}, {sft_arm!r}, "
                       f"{anchored_arm!r}")
  arms = load_arms(sample_files, required_arms=[base_arm, sft_arm, anchored_arm])
  # Read first: a bad capability file fails before any metric is computed.
  capabilities = capability.capability_by_arm(capability_files or {}, arms.arms)
  temperatures = {a: float(rows[0][0].decoding["temperature"]) for a, rows in arms.by_arm.items()}
  if frontiers:
    if quality_fn is None:
      raise SettingError("evaluate.frontiers compares arms at matched quality: it needs "
                         "evaluate.quality_fn")
    frontier.check_curves(frontiers, arms.arms, temperatures)
  fmt = annotation_format([s for rows in arms.by_arm.values() for row in rows for s in row])
  # Importing a user module may register gin configurables (the storyworld parser's
  # package does), which gin refuses once the config is locked.
  with gin.unlock_config():
    labeller = _resolve_labeller(labeller, labeller_inputs, fmt, embedder is not None)
    qfn = _resolve_quality(quality_fn, quality_inputs)
    constraints = _resolve_constraints(prompt_constraints)
  embed = _resolve_embedder(embedder, progress_bar)
  distinct_k_threshold = _resolve_distinct_k_threshold(distinct_k_threshold, embed is not None)
  # Report order: the three named arms first, then the ablations as given.
  order = [base_arm, sft_arm, anchored_arm] + [
      a for a in arms.arms if a not in (base_arm, sft_arm, anchored_arm)]

  metrics, by_attr, unknown_rate, attrs = _per_prompt_metrics(
      arms, labeller, embed, distinct_ns, distinct_k_k, distinct_k_threshold, unknown,
      constraints, progress_bar)
  boot = compare.Bootstrap(len(arms.prompt_ids), num_resamples, seed, confidence)

  out_arms = {a: {"diversity": {}, "quality": {}, "entropy_by_attribute": {},
                  "unknown_rate": {}} for a in order}
  comparisons = {}
  for name, per_arm in metrics.items():
    summary = compare.summarize_metric(per_arm, boot, base_arm, sft_arm, rel_tol, order)
    for a in order:
      out_arms[a]["diversity"][name] = summary["per_arm"][a]
    comparisons[name] = summary["comparisons"]
  for attr in attrs:
    figs = compare.ArmFigures(by_attr[attr], boot)
    for a in order:
      out_arms[a]["entropy_by_attribute"][attr] = figs.estimate(a).to_dict()
      out_arms[a]["unknown_rate"][attr] = unknown_rate[attr][a]
  if qfn is not None:
    q_per_arm = _quality_by_arm(quality_fn, qfn, arms, order, progress_bar)
    names = sorted({n for q in q_per_arm.values() for n in q},
                   key=lambda n: (n != quality.OVERALL, n))
    for n in names:
      figs = compare.ArmFigures(
          {a: q_per_arm[a].get(n, np.full(boot.num_prompts, np.nan)) for a in order}, boot)
      for a in order:
        out_arms[a]["quality"][n] = figs.estimate(a).to_dict()

  curves = {}
  if frontiers:
    q_overall = {a: q_per_arm[a].get(quality.OVERALL, np.full(boot.num_prompts, np.nan))
                 for a in order}
    curves = {m: frontier.frontier(per_arm, q_overall, frontiers, temperatures, base_arm,
                                   sft_arm, boot) for m, per_arm in metrics.items()}

  # Whether responses realize their sampled annotations (needs a response-side labeller
  # whose attributes an annotation can name: not the clusters).
  adherent = {}
  if attrs and not isinstance(labeller, (AnnotationTagLabeller, EmbeddingClusterLabeller)):
    adherent = adherence.adherence_by_arm(
        {a: [s for row in arms.by_arm[a] for s in row] for a in order}, sft_arm,
        AnnotationTagLabeller(fmt=fmt), labeller, attrs)

  # In the format the checkpoints were trained with, as the samples record it.
  malformed = wellformed.malformed_by_arm(
      {a: [s for row in arms.by_arm[a] for s in row] for a in order}, fmt)
  # Empty or repetitive responses per arm, for the report's caveats (evaluation/caveats.py).
  degenerate = caveats.degeneracy_by_arm(
      {a: [s.response for row in arms.by_arm[a] for s in row] for a in order})
  for a in order:
    out_arms[a]["degenerate"] = degenerate[a]

  files = ({k: os.fspath(v) for k, v in sample_files.items()}
           if isinstance(sample_files, Mapping) else [os.fspath(p) for p in sample_files])
  result = {
      "num_prompts": len(arms.prompt_ids), "num_samples": arms.num_samples,
      "base_arm": base_arm, "sft_arm": sft_arm, "anchored_arm": anchored_arm,
      "sample_files": files, "output_dir": os.fspath(output_dir),
      "settings": {
          "labeller": None if labeller is None else type(labeller).__name__,
          # Requests, cache hits and failures by cause of a remote labeller (JudgeLabeller).
          **({"labeller_summary": labeller.summary()} if hasattr(labeller, "summary") else {}),
          # The label-free labeller's rule, threshold and clusters per prompt (clusters.py).
          "clusters": (labeller.settings() if isinstance(labeller, EmbeddingClusterLabeller)
                       else None),
          "quality_source": _quality_source(quality_fn),
          "unknown": unknown, "embedder": None if embed is None else type(embed).__name__,
          # Attributes the prompt fixes are left out of its semantic entropy (if set).
          "prompt_constraints": (
              prompt_constraints if constraints is None or isinstance(prompt_constraints, str)
              else f"{constraints.__module__}:{constraints.__qualname__}"),
          "distinct_ns": list(distinct_ns), "distinct_k_k": distinct_k_k or arms.num_samples,
          "distinct_k_threshold": distinct_k_threshold,
          "distinct_k_equivalence": ("normalised text equality" if distinct_k_threshold is None
                                     else f"embedding cosine >= {distinct_k_threshold}"),
          "num_resamples": num_resamples, "seed": seed, "confidence": confidence,
          "rel_tol": rel_tol, "interval": "paired percentile bootstrap over prompts"},
      "arms": out_arms,
      "comparisons": comparisons,
      "annotation_adherence": adherent,
      "malformed_annotations": malformed,
      "capability": {a: capabilities[a] for a in order if a in capabilities},
      "frontier": curves,
  }
  result["caveats"] = caveats.report_caveats(result)  # Written first in report.md too.
  report.write_report(result, output_dir)
  if write_plots:
    plots.write_plots(result, output_dir)
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
  return gin_utils.run_main("evaluate", evaluate, argv, doc=__doc__,
                            exit_code=report_written)
