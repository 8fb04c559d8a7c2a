"""`annotanchor compile` refuses an incomplete configuration with one line (no libtpu needed)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("args,message", [
    (["--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/pretrain.gin"],
     "CompileSetupError: TOPOLOGY is not set"),
    # Slow: compile builds the TrainConfig train builds; both refusals are tested in-process
    # (tests/training/test_run_config.py) and through `train` (tests/faults/test_train_faults.py).
    pytest.param(["--gin_file=gin/runs/pretrain.gin", "--gin.TOPOLOGY='v5e-4'"],
                 "SettingError: TrainConfig.model is not bound: pass a gin/models/ file",
                 marks=pytest.mark.slow),
    (["--gin_file=gin/models/tiny.gin", "--gin.TOPOLOGY='v5e-4'"],
     "CompileSetupError: the gin files bind no TrainConfig"),
    pytest.param(["--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
                  "--gin.TOPOLOGY='v5e-4'", "--gin.StepConfig.microbatches=0"],
                 "SettingError: StepConfig.microbatches=0: expected a positive integer",
                 marks=pytest.mark.slow),
])
def test_incomplete_configuration(args, message):
  proc = subprocess.run([sys.executable, "-m", "annotanchor.cli", "compile", *args], cwd=REPO,
                        env={**os.environ, "PYTHONPATH": REPO}, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 2
  assert f"annotanchor compile: {message}" in proc.stderr
