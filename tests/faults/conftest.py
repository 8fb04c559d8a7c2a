"""Shared harness of the fault tests: the installed `annotanchor` command as a process.

Each case checks what a user sees: the exit status, the one line on stderr that names
the problem, no traceback, no hang (a timeout fails the test), and nothing lost.
"""
import dataclasses
import os
import subprocess
import sys

import pytest

from tests.xla_flags import xla_flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The console script of the environment running the tests (.venv/bin/annotanchor).
ANNOTANCHOR = os.path.join(os.path.dirname(sys.executable), "annotanchor")
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3",
       "XLA_FLAGS": xla_flags(devices=1), "PYTHONPATH": REPO}


@dataclasses.dataclass
class Result:
  returncode: int
  stdout: str
  stderr: str

  def error_lines(self, command: str) -> list[str]:
    """The stderr lines that carry an entry point's one-line error."""
    return [l for l in self.stderr.splitlines() if l.startswith(f"annotanchor {command}: ")]


def run(args, *, timeout: float = 120, env=None, cwd=REPO) -> Result:
  """Runs `annotanchor ARGS...`; a run past `timeout` seconds fails the test as a hang."""
  try:
    done = subprocess.run([ANNOTANCHOR, *args], cwd=cwd, env={**ENV, **(env or {})},
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
  except subprocess.TimeoutExpired as e:
    pytest.fail(f"annotanchor {' '.join(args)} hung: no exit in {timeout} s; stderr tail:\n"
                f"{(e.stderr or b'')[-2000:]!r}")
  return Result(done.returncode, done.stdout, done.stderr)


def assert_one_line_error(result: Result, command: str, *needles: str, returncode: int = 2):
  """Exit `returncode`, exactly one error line naming every needle, no traceback."""
  assert result.returncode == returncode, (result.returncode, result.stderr[-3000:])
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  lines = result.error_lines(command)
  assert len(lines) == 1, result.stderr[-3000:]
  # The message is one line: nothing of it spills onto the lines after.
  assert result.stderr.rstrip().splitlines()[-1] == lines[0], result.stderr[-3000:]
  for needle in needles:
    assert needle in lines[0], (needle, lines[0])
  assert "In call to configurable" not in result.stderr, result.stderr[-3000:]
  return lines[0]


def write_corpus_gin(path, *, vocabulary_path: str, name: str = "user", lines=(),
                     **fields) -> str:
  """Writes a gin file registering one `JsonlCorpus` NAME, its fields given as Python values
  (written with repr), `lines` appended as they are (e.g. a binding to an @reference, whose
  module `lines` imports too); returns the path."""
  corpus = f"{name}/registration.JsonlCorpus"
  text = ["from __gin__ import dynamic_registration", "from annotanchor.data import registration",
          f"registration.configured_corpora.corpora = [@{corpus}()]",
          f"{corpus}.name = {name!r}", f"{corpus}.vocabulary_path = {vocabulary_path!r}"]
  text += [f"{corpus}.{field} = {value!r}" for field, value in fields.items()]
  path.write_text("\n".join([*text, *lines]) + "\n")
  return str(path)


def infer_anchored(checkpoint: str, output_dir, prompts_file: str, *flags: str,
                   samples: int = 2, tokens: int = 8) -> Result:
  """`annotanchor infer` in the anchored mode with only CHECKPOINT_PATH and a prompts file."""
  return run(["infer", "--gin_file=gin/runs/infer.gin", f"--gin.CHECKPOINT_PATH='{checkpoint}'",
              f"--gin.OUTPUT_DIR='{output_dir}'", f"--gin.PROMPTS_FILE='{prompts_file}'",
              "--gin.ARM='anchored'", "--gin.MODE='anchored'", f"--gin.NUM_SAMPLES={samples}",
              f"--gin.MAX_NEW_TOKENS={tokens}",
              f"--gin.DecodeSettings.max_annotation_tokens={tokens}", *flags], timeout=300)
