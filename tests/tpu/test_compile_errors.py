"""`annotanchor compile` refuses an incomplete configuration with one line (no libtpu needed)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("args,message", [
    (["--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/pretrain.gin"],
     "CompileSetupError: TOPOLOGY is not set"),
    (["--gin_file=gin/runs/pretrain.gin", "--gin.TOPOLOGY='v5e-4'"],
     "SettingError: TrainConfig.model is not bound: pass a gin/models/ file"),
    (["--gin_file=gin/models/tiny.gin", "--gin.TOPOLOGY='v5e-4'"],
     "CompileSetupError: the gin files bind no TrainConfig"),
    (["--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
      "--gin.TOPOLOGY='v5e-4'", "--gin.StepConfig.microbatches=0"],
     "SettingError: StepConfig.microbatches=0: expected a positive integer"),
])
def test_incomplete_configuration(args, message):
  proc = subprocess.run([sys.executable, "-m", "annotanchor.cli", "compile", *args], cwd=REPO,
                        env={**os.environ, "PYTHONPATH": REPO}, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 2
  assert f"annotanchor compile: {message}" in proc.stderr
