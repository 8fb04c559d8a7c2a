"""The evaluate entry point end to end on constructed arms with known answers."""
import json
import math
import os
import subprocess
import sys

import gin
import numpy as np
import pytest

from annotanchor import evaluate as evaluate_mod
from annotanchor.errors import SettingError
from annotanchor.evaluation import config as evaluation_config
from annotanchor.evaluation.clusters import EmbeddingClusterLabeller
from annotanchor.evaluation.embedding import minilm
from annotanchor.evaluation.samples import SampleFileError
from tests.evaluation.test_embedding import needs_weights

GENRES = ["myth", "noir", "farce", "saga"]
HEROES = [f"h{i}" for i in range(8)]
N, P = 8, 4


def _arm(genres, heroes):
  """Per prompt: N annotations and responses; response i tells of its genre and hero."""
  anns, resps = {}, {}
  for p in range(P):
    pid = f"p{p}"
    anns[pid] = [f"<ann> genre:{g} hero:{h} </ann>" for g, h in zip(genres, heroes)]
    resps[pid] = [f"A {g} story about {h}." for g, h in zip(genres, heroes)]
  return resps, anns


def _files(write_arm):
  base = _arm([GENRES[i % 4] for i in range(N)], HEROES)          # 2 + 3 bits
  sft = _arm(["myth"] * N, ["h0"] * N)                           # 0 bits
  anchored = _arm([GENRES[i % 2] for i in range(N)], HEROES)     # 1 + 3 bits
  return {"base": write_arm("base", *base), "sft": write_arm("sft", *sft),
          "anchored": write_arm("anchored", *anchored)}


def fake_embedder(texts):
  """Deterministic bag-of-letters vectors: equal texts give equal vectors."""
  out = np.zeros((len(texts), 26))
  for i, t in enumerate(texts):
    for ch in t.lower():
      if "a" <= ch <= "z":
        out[i, ord(ch) - 97] += 1
  return out


def style_checker(prompt, response):
  return {"ends_with_period": response.endswith("."), "mentions_myth": "myth" in response}


def test_known_answers(tmp_path, write_arm):
  out_dir = str(tmp_path / "eval")
  rep = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      _files(write_arm), out_dir, labeller="annotation_tags",
      quality_fn="tests.evaluation.test_evaluate:style_checker",
      quality_inputs=("prompt", "response"), embedder=fake_embedder, distinct_k_threshold=None,
      num_resamples=200))
  arms = rep["arms"]
  assert list(arms) == ["base", "sft", "anchored"]
  ent = {a: arms[a]["diversity"]["semantic_entropy"]["value"] for a in arms}
  assert ent == pytest.approx({"base": 2.5, "sft": 0.0, "anchored": 2.0})
  assert arms["base"]["entropy_by_attribute"]["genre"]["value"] == pytest.approx(2.0)
  assert arms["anchored"]["entropy_by_attribute"]["hero"]["value"] == pytest.approx(3.0)
  assert arms["base"]["unknown_rate"]["genre"] == 0.0
  comp = rep["comparisons"]["semantic_entropy"]["anchored"]
  assert comp["gap_closed"]["value"] == pytest.approx(2.0 / 2.5)
  assert comp["collapse_ratio"]["value"] == pytest.approx(2.5 / 0.5)
  assert rep["comparisons"]["semantic_entropy"]["sft"]["collapse"]["value"] == pytest.approx(2.5)
  dk = {a: arms[a]["diversity"]["distinct_k"]["value"] for a in arms}
  assert dk == {"base": 8.0, "sft": 1.0, "anchored": 8.0}
  assert arms["sft"]["diversity"]["embedding_distance"]["value"] == pytest.approx(0.0, abs=1e-12)
  assert arms["base"]["diversity"]["embedding_distance"]["value"] > 0
  # "A myth story about h0." has 5 words, all distinct in sft's 8 copies: 5 / 40.
  assert arms["sft"]["diversity"]["distinct_1"]["value"] == pytest.approx(5 / 40)
  assert rep["settings"]["distinct_k_threshold"] is None
  assert rep["settings"]["distinct_k_equivalence"] == "normalised text equality"
  assert rep["settings"]["labeller"] == "AnnotationTagLabeller"
  assert rep["settings"]["clusters"] is None
  assert rep["settings"]["quality_source"] == (
      "function: tests.evaluation.test_evaluate:style_checker")
  q = {a: arms[a]["quality"] for a in arms}
  assert q["sft"]["quality"]["value"] == 1.0
  assert q["base"]["quality"]["value"] == pytest.approx(2 / 8)
  assert q["anchored"]["mentions_myth"]["value"] == pytest.approx(0.5)
  assert q["base"]["ends_with_period"]["value"] == 1.0

  with open(os.path.join(out_dir, "report.json")) as f:
    assert json.load(f) == rep
  md = open(os.path.join(out_dir, "report.md")).read()
  assert "| base | 2.500" in md and "gap closed" in md and "| genre |" in md
  for png in ("diversity_vs_quality.png", "entropy_by_attribute.png"):
    with open(os.path.join(out_dir, png), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert not [n for n in os.listdir(out_dir) if n.endswith(".tmp")]


def genre_fixed_in_p0_p1(prompt):
  """Prompts "Tell story p0." and "Tell story p1." ask for a genre."""
  return {"genre": "myth"} if prompt in ("Tell story p0.", "Tell story p1.") else {}


def test_attributes_a_prompt_fixes_are_left_out(tmp_path, write_arm):
  rep = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      _files(write_arm), str(tmp_path / "e"), labeller="annotation_tags",
      prompt_constraints=genre_fixed_in_p0_p1, embedder=None, num_resamples=50, write_plots=False))
  ent = {a: rep["arms"][a]["diversity"]["semantic_entropy"]["value"] for a in rep["arms"]}
  # p0, p1: hero only (base 3, anchored 3); p2, p3: genre and hero (base 2.5, anchored 2).
  assert ent == pytest.approx({"base": 2.75, "sft": 0.0, "anchored": 2.5})
  assert rep["arms"]["base"]["entropy_by_attribute"]["genre"]["value"] == pytest.approx(2.0)
  assert rep["arms"]["anchored"]["entropy_by_attribute"]["genre"]["value"] == pytest.approx(1.0)
  assert rep["arms"]["base"]["unknown_rate"]["genre"] == 0.0
  assert rep["settings"]["prompt_constraints"].endswith("test_evaluate:genre_fixed_in_p0_p1")
  assert "attributes the prompt fixes" in open(tmp_path / "e" / "report.md").read()
  # By import path, as gin binds it.
  by_path = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      _files(write_arm), str(tmp_path / "p"), labeller="annotation_tags",
      prompt_constraints="tests.evaluation.test_evaluate:genre_fixed_in_p0_p1", embedder=None,
      num_resamples=50, write_plots=False))
  assert by_path["arms"] == rep["arms"]
  assert by_path["settings"]["prompt_constraints"] == (
      "tests.evaluation.test_evaluate:genre_fixed_in_p0_p1")
  # An attribute every prompt fixes is not measured at all.
  hero_fixed = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      _files(write_arm), str(tmp_path / "h"), labeller="annotation_tags",
      prompt_constraints=lambda prompt: ["hero"], embedder=None, num_resamples=50))
  assert list(hero_fixed["arms"]["base"]["entropy_by_attribute"]) == ["genre"]
  assert hero_fixed["arms"]["base"]["diversity"]["semantic_entropy"]["value"] == 2.0


def test_ablation_arm_and_list_of_files(tmp_path, write_arm):
  files = list(_files(write_arm).values())
  files.append(write_arm("no_ann", *_arm(["myth"] * 4 + ["noir"] * 4, HEROES)))
  rep = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      files, str(tmp_path / "e"), labeller="annotation_tags", embedder=None, num_resamples=50,
      write_plots=False))
  assert list(rep["arms"]) == ["base", "sft", "anchored", "no_ann"]
  assert rep["comparisons"]["semantic_entropy"]["no_ann"]["gap_closed"]["value"] == \
      pytest.approx(2.0 / 2.5)
  assert "embedding_distance" not in rep["arms"]["base"]["diversity"]
  assert rep["arms"]["base"]["quality"] == {}
  assert rep["settings"]["quality_source"] is None
  assert not os.path.exists(str(tmp_path / "e" / "entropy_by_attribute.png"))


def test_missing_arm_writes_nothing(tmp_path, write_arm):
  files = _files(write_arm)
  del files["anchored"]
  out_dir = tmp_path / "eval"
  with pytest.raises(SampleFileError, match="'anchored' missing"):
    evaluate_mod.evaluate(evaluate_mod.evaluate_config(
        files, str(out_dir), embedder=None))
  assert not out_dir.exists()


def test_missing_embedding_extra_is_named(tmp_path, write_arm, monkeypatch):
  import importlib.util
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(minilm.EmbeddingsUnavailable, match=r"annotanchor\[embeddings\]"):
    evaluate_mod.evaluate(evaluate_mod.evaluate_config(
        _files(write_arm), str(tmp_path / "e")))


def test_main_with_gin_flags(tmp_path, write_arm, capsys):
  files = _files(write_arm)
  out_dir = str(tmp_path / "eval")
  gin.clear_config()
  try:
    rc = evaluate_mod.main([
        "--gin_file=gin/runs/evaluate.gin", f"--gin.SAMPLE_FILES={files!r}",
        f"--gin.OUTPUT_DIR={out_dir!r}", "--gin.evaluate.embedder=None",
        "--gin.evaluate.labeller='annotation_tags'", "--gin.evaluate.num_resamples=20"])
  finally:
    gin.clear_config()
  assert rc == 0, capsys.readouterr().err
  with open(os.path.join(out_dir, "report.json")) as f:
    assert json.load(f)["arms"]["sft"]["diversity"]["semantic_entropy"]["value"] == 0.0


def test_main_reports_bad_files(tmp_path, capsys):
  bad = tmp_path / "bad.jsonl"
  bad.write_text("{oops\n")
  gin.clear_config()
  try:
    rc = evaluate_mod.main([f"--gin.evaluate.sample_files=[{str(bad)!r}]",
                            f"--gin.evaluate.output_dir={str(tmp_path)!r}"])
  finally:
    gin.clear_config()
  assert rc == 2
  assert f"{bad}:1: not valid JSON" in capsys.readouterr().err


def test_python_dash_m(tmp_path, write_arm):
  files = _files(write_arm)
  out_dir = str(tmp_path / "eval")
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  proc = subprocess.run(
      [sys.executable, "-m", "annotanchor.evaluate", "--gin_file=gin/runs/evaluate.gin",
       f"--gin.SAMPLE_FILES={files!r}", f"--gin.OUTPUT_DIR={out_dir!r}",
       "--gin.evaluate.embedder=None", "--gin.evaluate.num_resamples=20"],
      cwd=root, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert os.path.exists(os.path.join(out_dir, "report.md"))
  # The per-arm table of report.md, printed: a header, then a row per arm.
  table = [l for l in proc.stdout.splitlines() if l.startswith("|")]
  assert table[0] == "| arm | distinct_k | distinct-1 | distinct-2 |"
  assert [row.split(" | ")[0] for row in table[2:]] == ["| base", "| sft", "| anchored"]
  assert table == [l for l in open(os.path.join(out_dir, "report.md")).read().split(
      "## Per arm")[1].splitlines() if l.startswith("|")][:len(table)]
  assert math.isfinite(json.load(open(os.path.join(out_dir, "report.json")))["num_prompts"])


def test_main_reports_unknown_gin_name_and_missing_macro(capsys):
  for args, message in ((["--gin.evaluate.no_such=1"], "no_such"),
                        (["--gin_file=gin/runs/evaluate.gin"], "SAMPLE_FILES")):
    gin.clear_config()
    try:
      assert evaluate_mod.main(args) == 2
    finally:
      gin.clear_config()
    assert message in capsys.readouterr().err


TOPICS = ["cooking", "space", "football", "music"]


def topic_embedder(texts):
  """Deterministic: one direction per topic word, and a little per-text variation."""
  out = np.zeros((len(texts), len(TOPICS) + 3))
  for i, t in enumerate(texts):
    out[i, [j for j, topic in enumerate(TOPICS) if topic in t]] = 1.0
    out[i, len(TOPICS) + len(t) % 3] = 0.05
  return out


def _direct_topic_files(write_arm):
  """Direct-mode arms (no annotation) over two prompts: base tells of four topics, sft of
  one, anchored of two."""
  def arm(name, topics):
    rows = {f"p{p}": [f"A {t} tale number {i}{'!' * i}" for i, t in enumerate(topics)]
            for p in range(2)}
    return write_arm(name, rows)
  return {"base": arm("base", TOPICS * 2), "sft": arm("sft", ["cooking"] * 8),
          "anchored": arm("anchored", TOPICS[:2] * 4)}


def test_no_labeller_gives_label_free_semantic_entropy(tmp_path, write_arm):
  """No labeller, direct-mode samples: semantic entropy over embedding clusters (the
  annotation tags would leave every direct sample unknown), and distinct_k by embedding
  similarity, both recorded in the settings."""
  rep = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      _direct_topic_files(write_arm), str(tmp_path / "e"), embedder=topic_embedder,
      num_resamples=50))
  arms = rep["arms"]
  ent = {a: arms[a]["diversity"]["semantic_entropy"]["value"] for a in arms}
  assert all(math.isfinite(v) for v in ent.values())
  assert ent == pytest.approx({"base": 2.0, "sft": 0.0, "anchored": 1.0})
  assert list(arms["base"]["entropy_by_attribute"]) == ["cluster"]
  assert arms["sft"]["unknown_rate"]["cluster"] == 0.0
  settings = rep["settings"]
  assert settings["labeller"] == "EmbeddingClusterLabeller"
  assert settings["clusters"]["num_clusters"] == {"mean_per_prompt": 4.0, "min_per_prompt": 4,
                                                  "max_per_prompt": 4, "total": 8}
  assert settings["clusters"]["threshold_chosen_by"] == "silhouette"
  assert 0 < settings["clusters"]["distance_threshold"] < 1
  # distinct_k: the texts all differ, but their embeddings fall in 4, 1 and 2 classes.
  dk = {a: arms[a]["diversity"]["distinct_k"]["value"] for a in arms}
  assert dk == {"base": 4.0, "sft": 1.0, "anchored": 2.0}
  assert settings["distinct_k_threshold"] == evaluation_config.DISTINCT_K_THRESHOLD == 0.9
  assert settings["distinct_k_equivalence"] == "embedding cosine >= 0.9"
  assert settings["quality_source"] is None and arms["base"]["quality"] == {}
  assert rep["annotation_adherence"] == {}
  assert "| cluster |" in open(tmp_path / "e" / "report.md").read()


def test_label_free_defaults_follow_the_embedder(tmp_path, write_arm):
  files = _direct_topic_files(write_arm)
  rep = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      files, str(tmp_path / "e"), embedder=None, num_resamples=20, write_plots=False))
  assert "semantic_entropy" not in rep["arms"]["base"]["diversity"]
  assert rep["settings"]["labeller"] is None and rep["settings"]["clusters"] is None
  assert rep["settings"]["distinct_k_threshold"] is None
  assert rep["arms"]["base"]["diversity"]["distinct_k"]["value"] == 8.0  # all texts differ
  with pytest.raises(SettingError, match="needs evaluate.embedder"):
    evaluate_mod.evaluate(evaluate_mod.evaluate_config(
        files, str(tmp_path / "c"), labeller="embedding_clusters", embedder=None))
  with pytest.raises(SettingError, match="distinct_k_threshold needs an embedder"):
    evaluate_mod.evaluate(evaluate_mod.evaluate_config(
        files, str(tmp_path / "c"), distinct_k_threshold=0.8, embedder=None))
  with pytest.raises(SettingError, match="distinct_k_threshold='high'"):
    evaluate_mod.evaluate(evaluate_mod.evaluate_config(
        files, str(tmp_path / "c"), distinct_k_threshold="high", embedder=topic_embedder))
  assert not (tmp_path / "c").exists()
  # Explicit choices: a given cut, and text equality for distinct_k.
  given = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      files, str(tmp_path / "g"), embedder=topic_embedder, distinct_k_threshold=None,
      labeller=EmbeddingClusterLabeller(distance_threshold=0.5, attribute="meaning"),
      num_resamples=20, write_plots=False))
  assert given["settings"]["clusters"]["distance_threshold"] == 0.5
  assert given["settings"]["clusters"]["threshold_chosen_by"] == "given"
  assert given["arms"]["base"]["entropy_by_attribute"]["meaning"]["value"] == pytest.approx(2.0)
  assert given["arms"]["base"]["diversity"]["distinct_k"]["value"] == 8.0
  assert given["settings"]["distinct_k_equivalence"] == "normalised text equality"


def test_quality_source_names_a_judge(tmp_path, write_arm):
  from annotanchor.evaluation.judge import JudgeQuality

  class FixedJudge(JudgeQuality):
    def ask(self, message):
      return "SCORE: 5"

  judge = FixedJudge(base_url="http://unused", model="judge-7b", api_key_env=None)
  rep = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      _direct_topic_files(write_arm), str(tmp_path / "e"), quality_fn=judge, embedder=None,
      num_resamples=20, write_plots=False, progress_bar=False))
  assert rep["settings"]["quality_source"] == "judge: judge-7b"
  assert rep["arms"]["sft"]["quality"]["quality"]["value"] == pytest.approx(0.5)


def test_gin_binds_the_cluster_labeller(tmp_path, write_arm, capsys):
  files = _direct_topic_files(write_arm)
  gin.clear_config()
  try:
    rc = evaluate_mod.main([
        "--gin_file=gin/runs/evaluate.gin", f"--gin.SAMPLE_FILES={files!r}",
        f"--gin.OUTPUT_DIR={str(tmp_path / 'e')!r}", "--gin.evaluate.embedder=None",
        "--gin.evaluate.labeller=@EmbeddingClusterLabeller()",
        "--gin.EmbeddingClusterLabeller.distance_threshold=0.5"])
  finally:
    gin.clear_config()
  assert rc == 2
  assert "needs evaluate.embedder" in capsys.readouterr().err


@needs_weights
def test_defaults_with_minilm(tmp_path, write_arm):
  """The real embedder with every default: label-free semantic entropy orders the arms."""
  base = ["Whisk the eggs with sugar and bake the cake for forty minutes.",
          "The rocket left orbit and drifted toward the rings of Saturn.",
          "The striker scored twice in the final minutes of the match.",
          "The violinist tuned her strings before the symphony began."]
  sft = ["Whisk the eggs with sugar and bake the cake for forty minutes.",
         "Whisk eggs and sugar, then bake the cake for forty minutes.",
         "Beat the eggs with the sugar and bake the cake forty minutes.",
         "Whisk the eggs and the sugar and bake this cake for forty minutes."]
  anchored = base[:2] + sft[1:3]
  files = {name: write_arm(name, {f"p{p}": texts for p in range(2)})
           for name, texts in (("base", base), ("sft", sft), ("anchored", anchored))}
  rep = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      files, str(tmp_path / "e"), num_resamples=20, write_plots=False, progress_bar=False))
  ent = {a: rep["arms"][a]["diversity"]["semantic_entropy"]["value"] for a in rep["arms"]}
  assert ent["sft"] == pytest.approx(0.0, abs=1e-12)
  assert ent["base"] > ent["anchored"] > ent["sft"]
  assert rep["settings"]["embedder"] == "MiniLMEmbedder"
  assert rep["settings"]["clusters"]["num_clusters"]["min_per_prompt"] >= 2
  dk = {a: rep["arms"][a]["diversity"]["distinct_k"]["value"] for a in rep["arms"]}
  assert dk["base"] == 4.0 and dk["sft"] < dk["anchored"] < dk["base"]


def test_the_report_says_how_it_measured_and_what_its_figures_cannot_say(tmp_path, write_arm):
  """Label-free labels and no checker: report.md names the clusters, the distinct_k classes
  and the missing quality; an SFT arm as diverse as the base and an empty-response arm are
  caveats, in report.json and above report.md's tables."""
  files = _direct_topic_files(write_arm)
  files["sft"] = write_arm("sft_empty", {f"p{p}": [f"A {t} tale {i}" if i else " "
                                                  for i, t in enumerate(TOPICS * 2)]
                                         for p in range(2)})
  rep = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
      files, str(tmp_path / "e"), embedder=topic_embedder, num_resamples=50))
  assert rep["arms"]["sft"]["degenerate"]["empty"] == pytest.approx(1 / 8)
  kinds = {(c["kind"], c["arm"], c["metric"]) for c in rep["caveats"]}
  assert ("base_not_more_diverse", "base", "semantic_entropy") in kinds
  assert json.load(open(tmp_path / "e" / "report.json"))["caveats"] == rep["caveats"]
  md = open(tmp_path / "e" / "report.md").read()
  assert md.index("Read with care") < md.index("## Per arm")
  assert "Semantic entropy labels: embedding clusters (per prompt, every arm's samples " in md
  assert "distinct_k classes: embedding cosine >= 0.9." in md
  assert "Quality: not measured (no checker or judge)." in md
