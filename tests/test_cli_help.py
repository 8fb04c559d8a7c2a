"""`annotanchor CMD --help` and `python -m annotanchor.CMD --help` answer at once: the
module's docstring (what its main printed), read from its source without importing it,
so neither TensorFlow nor JAX starts (issue 29)."""
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from annotanchor import cli, quiet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANNOTANCHOR = os.path.join(os.path.dirname(sys.executable), "annotanchor")
ENV = {**os.environ, "PYTHONPATH": REPO}
HEAVY = ("tensorflow", "jax", "jaxlib", "seqio", "orbax", "flax")


def _imported(importtime_stderr: str) -> set[str]:
  """The top-level packages `python -X importtime` reports imported."""
  names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", importtime_stderr, re.MULTILINE)
  return {n.split(".")[0] for n in names}


def _docstring(module_name: str) -> str:
  import ast

  path = importlib.util.find_spec(module_name).origin
  with open(path, encoding="utf-8") as f:
    return ast.get_docstring(ast.parse(f.read()), clean=False)


def test_annotanchor_train_help_is_the_usage_text_without_tf_or_jax(tmp_path):
  done = subprocess.run([ANNOTANCHOR, "train", "--help"], cwd=tmp_path, env=ENV,
                        capture_output=True, text=True, timeout=60)
  assert done.returncode == 0, done.stderr
  assert done.stdout == _docstring("annotanchor.train") + "\n"
  assert "annotanchor train --gin_file=gin/models/tiny.gin" in done.stdout
  assert done.stderr == ""
  traced = subprocess.run([sys.executable, "-X", "importtime", "-m", "annotanchor.cli", "train",
                           "--help"], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=60)
  assert traced.returncode == 0 and traced.stdout == done.stdout
  imported = _imported(traced.stderr)
  assert "annotanchor" in imported  # The trace is the command's.
  assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_every_subcommand_help_prints_its_docstring_without_tf_or_jax(name, tmp_path):
  module = cli.SUBCOMMANDS[name]
  for argv in (["-m", "annotanchor.cli", name, "--help"], ["-m", module, "-h"]):
    done = subprocess.run([sys.executable, "-X", "importtime", *argv], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == _docstring(module) + "\n"
    imported = _imported(done.stderr)
    assert not imported & set(HEAVY), (argv, sorted(imported & set(HEAVY)))


def test_help_after_other_arguments_and_with_verbose():
  done = subprocess.run([ANNOTANCHOR, "--verbose", "convert", "import-hf", "--gin.X=1", "--help"],
                        env=ENV, capture_output=True, text=True, timeout=60)
  assert done.returncode == 0 and done.stdout == _docstring("annotanchor.convert") + "\n"


def test_module_docstring_is_read_without_importing():
  was_imported = "tasks.storyworld.build" in sys.modules
  assert quiet.module_docstring("tasks.storyworld.build").startswith("`python -m tasks.storyworld")
  assert ("tasks.storyworld.build" in sys.modules) == was_imported
  assert quiet.module_docstring("annotanchor.no_such_module") is None
  assert quiet.module_docstring("no_such_package.x") is None


def test_the_top_level_usage_names_verbose():
  done = subprocess.run([ANNOTANCHOR, "--help"], env=ENV, capture_output=True, text=True,
                        timeout=60)
  assert done.returncode == 0 and "[--verbose]" in done.stdout
