"""What train shows while it runs: the steps it trains, then step/total, figures and time left."""
import json
import re

import pytest

from annotanchor.training import metrics
from tests.training import tiny_setup


@pytest.mark.parametrize("seconds, text", [(0.4, "0s"), (42, "42s"), (65, "1m05s"),
                                           (3725, "1h02m")])
def test_durations_read_at_a_glance(seconds, text):
  assert metrics.format_duration(seconds) == text


def test_a_progress_line_shows_step_of_total_the_figures_and_time_left():
  figures = {"loss": 2.5, "tokens_per_second": 12034.4, "mfu": 0.0123, "nonfinite_steps": 0.0}
  line = metrics.progress_line(20, 200, figures, seconds_left=65)
  assert line == "step 20/200 (10%): loss=2.5  tokens/s=12034  mfu=0.0123  ETA 1m05s"
  assert "ETA" not in metrics.progress_line(20, 200, figures, seconds_left=None)


def test_a_tiny_run_prints_its_steps_then_step_of_total_and_a_resumed_one_where_it_resumes(
    tmp_path, capsys):
  model_dir = str(tmp_path)
  tiny_setup.run(model_dir, {"data": 8}, steps=3)
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == "training steps 0 -> 3 (batch 8 x 16 tokens)"
  progress = [l for l in lines if l.startswith("step ")]
  assert [l.split(":")[0] for l in progress] == ["step 1/3 (33%)", "step 2/3 (67%)",
                                                 "step 3/3 (100%)"]
  # Time left needs a measured rate: none after the compiling first step alone.
  assert "ETA" not in progress[0] and re.search(r"ETA \d+s$", progress[1])
  assert "ETA" not in progress[2]  # Nothing left.
  assert all("loss=" in l for l in progress) and "tokens/s=" in progress[1]

  tiny_setup.run(model_dir, {"data": 8}, steps=4)
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == "resuming at step 3 of 4 (batch 8 x 16 tokens)"
  assert lines[1].startswith("step 4/4 (100%): loss=")
  # The metrics file keeps its one record per logged step, with no progress fields.
  with open(tmp_path / "train_metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  assert not {"eta", "total_steps"} & set(records[-1])
