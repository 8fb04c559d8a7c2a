"""Progress of evaluate's long steps off a terminal: a line at every tenth of the judge's
samples and of the embedded texts, on stderr."""
import concurrent.futures

import pytest

from annotanchor import evaluate as evaluate_mod
from annotanchor.evaluation.embedding import minilm
from annotanchor.evaluation.judge import JudgeQuality
from annotanchor.evaluation.progress import Progress
from tests.annotation.fake_server import FakeEndpoint
from tests.evaluation.test_embedding import needs_weights
from tests.evaluation.test_judge_labels import _labeller, _recorded


def _lines(err, label):
  return [l for l in err.splitlines() if l.startswith(f"{label}: ")]


def test_a_line_at_every_tenth_and_at_the_end_counted_across_threads(capsys):
  with Progress("judge", 25, "samples", progress_bar=False) as progress:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
      list(pool.map(lambda _: progress.update(), range(25)))
  assert _lines(capsys.readouterr().err, "judge") == [
      f"judge: {n}/25 samples" for n in (3, 6, 9, 12, 15, 18, 21, 24, 25)]


def test_judge_labelling_shows_its_samples(capsys):
  responses = [f"A story numbered {i}." for i in range(12)]
  with FakeEndpoint(_recorded) as server:
    _labeller(server, concurrency=3).label_many([("p", "", r) for r in responses])
  assert _lines(capsys.readouterr().err, "judge") == [
      f"judge: {n}/12 samples" for n in (2, 4, 6, 8, 10, 12)]


def test_a_judge_scoring_quality_shows_its_samples_in_evaluate(tmp_path, write_arm, capsys):
  files = {arm: write_arm(arm, {"p0": [f"{arm} one.", f"{arm} two."],
                                "p1": [f"{arm} three.", f"{arm} four."]})
           for arm in ("base", "sft", "anchored")}
  with FakeEndpoint(lambda n, prompt: ("answer", "Fine.\nSCORE: 7")) as server:
    judge = JudgeQuality(base_url=server.url, model="judge", api_key_env=None, backoff_s=0.0)
    result = evaluate_mod.evaluate(evaluate_mod.evaluate_config(
        files, str(tmp_path / "e"), quality_fn=judge, embedder=None, num_resamples=20,
        write_plots=False))
  assert result["arms"]["sft"]["quality"]["quality"]["value"] == pytest.approx(0.7)
  assert _lines(capsys.readouterr().err, "judge")[-1] == "judge: 12/12 samples"


@needs_weights
def test_embedding_shows_its_texts_per_batch(capsys):
  embedder = minilm.MiniLMEmbedder(batch_size=2, progress_bar=False)
  assert embedder([f"text {i}" for i in range(5)]).shape == (5, 384)
  assert _lines(capsys.readouterr().err, "embedding") == [
      "embedding: 2/5 texts", "embedding: 4/5 texts", "embedding: 5/5 texts"]
