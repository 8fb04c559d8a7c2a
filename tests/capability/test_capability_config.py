"""capability's settings become one typed CapabilityConfig, checked once: a bad value is one
SettingError naming the setting (its macro where capability.gin binds one), before any task
file or checkpoint is read."""
import os
import re

import gin
import pytest

from annotanchor import capability as capability_mod
from annotanchor.errors import SettingError

GOOD = {"checkpoint_path": "runs/x", "output_dir": "out", "arm": "sft",
        "task_files": {"facts": "facts.jsonl"}}


@pytest.mark.parametrize("setting,value,needle", [
    ("task_files", {}, "TASK_FILES={}: expected"),
    ("task_files", ["facts.jsonl"], "TASK_FILES=['facts.jsonl']: expected"),
    ("num_fewshot", -1, "NUM_FEWSHOT=-1: expected"),
    ("limit", 0, "capability.limit=0: expected"),
    ("delimiter", None, "capability.delimiter=None: expected"),
    ("rows_per_call", 0, "capability.rows_per_call=0: expected"),
    ("arm", "", "ARM='': expected"),
    ("checkpoint_path", None, "CHECKPOINT_PATH=None: expected"),
    ("mesh", 4, "MESH=4: expected"),
])
def test_a_bad_setting_is_refused_naming_it(setting, value, needle):
  with pytest.raises(SettingError, match=re.escape(needle)):
    capability_mod.capability(**{**GOOD, setting: value})


def test_the_settings_are_grouped_and_frozen():
  config = capability_mod.capability(**GOOD, num_fewshot=2, limit=5)
  assert (config.probes.num_fewshot, config.probes.limit, config.checkpoint.path) == (
      2, 5, "runs/x")
  # What a rerun is compared by: the files by absolute path, import paths as given.
  assert config.probes.record("runs/x")["task_files"] == {"facts": os.path.abspath("facts.jsonl")}
  with pytest.raises(AttributeError):
    config.arm = "base"


def test_the_command_refuses_a_bad_setting_in_one_line(tmp_path, capsys):
  gin.clear_config()
  try:
    assert capability_mod.main([
        "--gin_file=gin/runs/capability.gin", "--gin.CHECKPOINT_PATH='runs/none'",
        f"--gin.OUTPUT_DIR='{tmp_path}/c'", "--gin.ARM='sft'",
        "--gin.TASK_FILES={'facts': 'f.jsonl'}", "--gin.NUM_FEWSHOT=-1"]) == 2
  finally:
    gin.clear_config()
  assert capsys.readouterr().err.strip() == (
      "annotanchor capability: SettingError: NUM_FEWSHOT=-1: expected an int >= 0")
  assert not (tmp_path / "c").exists()
