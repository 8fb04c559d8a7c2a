"""The plan of a demo configuration, built in-process from its gin flags (no step checked or
run), and a step configuration as gin parses it."""
import importlib

import gin

from annotanchor import demo, gin_check, gin_utils
from annotanchor.experiment.plan import Plan


def plan_of(flags) -> Plan:
  """demo.plan() under `flags` (`--gin_file=...`, `--gin.NAME=VALUE`)."""
  gin.clear_config()
  try:
    gin_utils.parse_and_bind(flags)
    return demo.plan()
  finally:
    gin.clear_config()


def parsed_config(argv) -> str:
  """gin's whole configuration after parsing a command's flags (`annotanchor CMD ...` or
  `python -m MODULE ...`) as the command does, its module imported first (its
  configurables), not finalized: what two configurations are compared by."""
  module, flags = gin_check.split_command(argv)
  importlib.import_module(module)
  gin.clear_config()
  try:
    gin_utils.parse_and_bind(flags, finalize=False)
    return gin.config_str()
  finally:
    gin.clear_config()


def assert_step_gin_parses_as_its_flags(step, tmp_path) -> str:
  """Writes `step`'s step.gin under tmp_path and checks that its command parses it to the
  configuration of the step's flags; returns that configuration."""
  path = tmp_path / step.directory.replace("/", "_") / "step.gin"
  path.parent.mkdir()
  path.write_text(step.gin_text())
  from_file = parsed_config([*step.program, f"--gin_file={path}"])
  assert from_file == parsed_config([*step.program, *step.flags]), step.title
  return from_file
