"""gin files and flags (annotanchor/gin_utils.py, issue 29): files are found from any
directory without gin's 'ERROR Path not found' lines, and every configuration gin refuses is
ONE line that starts with the flag, or the gin file and line, at fault."""
import logging
import os
import subprocess
import sys

import gin
import pytest

from annotanchor import gin_utils, quiet
from annotanchor import train  # noqa: F401  (registers the configurables the files bind)
from tests.xla_flags import xla_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANNOTANCHOR = os.path.join(os.path.dirname(sys.executable), "annotanchor")
BASE = ["--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
        "--gin.MODEL_DIR='/tmp/unused'"]


@pytest.fixture(autouse=True)
def clear_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def _error(flags) -> str:
  with pytest.raises(gin_utils.GinFlagError) as raised:
    gin_utils.parse_and_bind([*BASE, *flags])
  message = str(raised.value)
  assert "\n" not in message, message
  return message


# --- One line, starting with what is at fault ---------------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--gin.TRAIN_STEPZ=5"],
     "--gin.TRAIN_STEPZ=5: no configurable or macro named 'TRAIN_STEPZ' (did you mean "
     "TRAIN_STEPS?)"),
    (["--gin.TrainConfg.train_steps=5"],
     "--gin.TrainConfg.train_steps=5: No configurable matching 'TrainConfg'."),
    (["--gin.TrainConfig.train_stepz=5"],
     "--gin.TrainConfig.train_stepz=5: Configurable 'TrainConfig' doesn't have a parameter "
     "named 'train_stepz'."),
    (["--gin.BATCH_SIZE=four"],
     "--gin.BATCH_SIZE=four: cannot parse four as a value (a string needs quotes: 'four')"),
    (["--gin.TRAIN_STEPS=5)"], "--gin.TRAIN_STEPS=5): Expected newline."),
    (["--gin.MESH={'data': 2"],
     "--gin.MESH={'data': 2: unclosed bracket or quote (EOF in multi-line statement)"),
    (["--gin.TRAIN_STEPS=%TRAIN_STEPZ"],
     "--gin.TRAIN_STEPS=%TRAIN_STEPZ: no macro named 'TRAIN_STEPZ' (did you mean TRAIN_STEPS?)"),
    (["--gin.TRAIN_STEPS=@nope()"],
     "--gin.TRAIN_STEPS=@nope(): No configurable matching reference '@nope()'."),
    (["--gin.MODEL_DIR=%gin.REQUIRED"],
     "MODEL_DIR: required but not set (give --gin.MODEL_DIR=VALUE)"),
    # The first failing flag is the one named.
    (["--gin.BATCH_SIZE=4", "--gin.Nope.x=1", "--gin.TRAIN_STEPZ=5"],
     "--gin.Nope.x=1: No configurable matching 'Nope'."),
])
def test_a_bad_flag_is_one_line_naming_it(flags, message):
  assert _error(flags) == message


def test_the_error_carries_where_and_reason_apart():
  """(annotanchor.gin_check and the demo name the binding themselves.)"""
  with pytest.raises(gin_utils.GinFlagError) as raised:
    gin_utils.parse_and_bind([*BASE, "--gin.TrainConfig.train_stepz=5"])
  assert raised.value.where == "--gin.TrainConfig.train_stepz=5"
  assert raised.value.reason == ("Configurable 'TrainConfig' doesn't have a parameter named "
                                 "'train_stepz'.")


def test_a_macro_that_only_other_commands_read_passes():
  """The demo writes `demo.plan.bindings` into every data step's step.gin: BATCH_SIZE
  reaches `infer` too."""
  gin_utils.parse_and_bind(["--gin_file=gin/models/tiny.gin", "--gin.BATCH_SIZE=8"],
                           finalize=False)


def test_a_missing_gin_file_is_one_line_naming_where_it_was_looked_for(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert _error(["--gin_file=gin/runs/nope.gin"]) == (
      f"--gin_file=gin/runs/nope.gin: no such gin file (searched {tmp_path}, {REPO})")


def test_errors_inside_a_gin_file_name_the_file_and_line(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "typo.gin").write_text("TRAIN_STEPS = 3\nTrainConfg.train_steps = 2\n")
  (tmp_path / "syntax.gin").write_text("TRAIN_STEPS = 3)\n")
  (tmp_path / "outer.gin").write_text("# The culprit is the included file's line.\n"
                                      "include 'typo.gin'\n")
  (tmp_path / "missing.gin").write_text("TRAIN_STEPS = 3\ninclude 'gin/runs/nope.gin'\n")
  (tmp_path / "imports.gin").write_text("from __gin__ import dynamic_registration\n"
                                        "from annotanchor import nope\n")
  typo = "typo.gin:2: TrainConfg.train_steps = 2: No configurable matching 'TrainConfg'."
  assert _error(["--gin_file=typo.gin"]) == typo
  assert _error(["--gin_file=outer.gin"]) == typo
  assert _error(["--gin_file=syntax.gin"]) == "syntax.gin:1: TRAIN_STEPS = 3): Expected newline."
  assert _error(["--gin_file=missing.gin"]) == (
      "missing.gin:2: include 'gin/runs/nope.gin': no such gin file (searched "
      f"{tmp_path}, {REPO})")
  assert _error(["--gin_file=imports.gin"]) == (
      "imports.gin:2: from annotanchor import nope: No module named 'annotanchor.nope'")
  # A module named but not imported, under dynamic registration: gin's NameError.
  (tmp_path / "unimported.gin").write_text("from __gin__ import dynamic_registration\n"
                                           "optim.OptimizerConfig.learning_rate = 0.1\n"
                                           "nomod.Thing.x = 1\n")
  assert _error(["--gin_file=unimported.gin"]) == (
      "unimported.gin:2: optim.OptimizerConfig.learning_rate = 0.1: 'optim' is not imported: "
      "add `from annotanchor.training import optim` to the gin file")
  (tmp_path / "unknown.gin").write_text("from __gin__ import dynamic_registration\n"
                                        "nomod.Thing.x = 1\n")
  assert _error(["--gin_file=unknown.gin"]) == (
      "unknown.gin:2: nomod.Thing.x = 1: 'nomod' is not imported: import it in the gin file")


# --- Finding gin files -------------------------------------------------------------------------

def test_repository_files_and_their_includes_resolve_from_elsewhere_without_error_records(
    tmp_path, monkeypatch, caplog):
  monkeypatch.chdir(tmp_path)
  caplog.set_level(logging.DEBUG)
  gin_utils.parse_and_bind(["--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/sft.gin",
                            "--gin.MODEL_DIR='a'", "--gin.INITIAL_CHECKPOINT_PATH='b'",
                            "--gin.MIXTURE_OR_TASK_NAME='synthetic_tokens'"])
  assert gin.query_parameter("INITIAL_CHECKPOINT_PATH/macro.value") == "b"
  assert not [r for r in caplog.records if "Path not found" in r.getMessage()
              or "system_path_file_exists" in r.getMessage()], caplog.text


def test_includes_resolve_next_to_the_including_file(tmp_path, monkeypatch):
  configs = tmp_path / "configs"
  configs.mkdir()
  (configs / "base.gin").write_text("TRAIN_STEPS = 7\n")
  (configs / "run.gin").write_text("include 'gin/runs/pretrain.gin'\ninclude 'base.gin'\n")
  monkeypatch.chdir(REPO)  # Neither the working directory nor the repository has base.gin.
  gin_utils.parse_and_bind(["--gin_file=gin/models/tiny.gin", f"--gin_file={configs / 'run.gin'}",
                            "--gin.MODEL_DIR='a'"])
  assert gin.query_parameter("TRAIN_STEPS/macro.value") == 7


def test_search_paths_are_searched(tmp_path, monkeypatch):
  (tmp_path / "steps.gin").write_text("TRAIN_STEPS = 9\n")
  monkeypatch.chdir(REPO)
  gin_utils.parse_and_bind([*BASE, "--gin_file=steps.gin", f"--gin_search_path={tmp_path}"])
  assert gin.query_parameter("TRAIN_STEPS/macro.value") == 9


# --- As a user sees it: the installed command, a clean environment, another directory -----------

def _train(cwd, *flags):
  env = {k: v for k, v in os.environ.items()
         if k not in quiet.QUIET_ENV and k != quiet.VERBOSE_ENV}
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(devices=1), PYTHONPATH=REPO)
  return subprocess.run([ANNOTANCHOR, "train", *BASE, *flags], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("flags, line", [
    (["--gin.TRAIN_STEPZ=5"], "annotanchor train: --gin.TRAIN_STEPZ=5: no configurable or "
     "macro named 'TRAIN_STEPZ' (did you mean TRAIN_STEPS?)"),
    (["--gin.TrainConfg.train_steps=5"],
     "annotanchor train: --gin.TrainConfg.train_steps=5: No configurable matching 'TrainConfg'."),
    (["--gin.BATCH_SIZE=four"], "annotanchor train: --gin.BATCH_SIZE=four: cannot parse four "
     "as a value (a string needs quotes: 'four')"),
    (["--gin_file=gin/runs/nope.gin"], "annotanchor train: --gin_file=gin/runs/nope.gin: no "
     "such gin file (searched {cwd}, {repo})"),
    (["--gin_file=mine.gin"], "annotanchor train: mine.gin:2: include 'gin/runs/nope.gin': no "
     "such gin file (searched {cwd}, {repo})"),
], ids=["unknown_binding", "unknown_configurable", "malformed_value", "missing_file",
        "missing_include"])
def test_a_configuration_error_is_one_line_on_stderr(tmp_path, flags, line):
  (tmp_path / "mine.gin").write_text("TRAIN_STEPS = 3\ninclude 'gin/runs/nope.gin'\n")
  done = _train(tmp_path, *flags)
  assert done.returncode == 2, done.stderr[-3000:]
  assert "Traceback" not in done.stderr, done.stderr[-3000:]
  assert done.stderr.splitlines() == [line.format(cwd=tmp_path, repo=REPO)], done.stderr[-3000:]
  assert done.stdout == ""
