"""The persistent compilation cache every command uses by default (annotanchor/compile_cache.py):
what it sets and leaves alone, and a rerun that loads every program and computes the same."""
import json
import os
import subprocess
import sys

from annotanchor import compile_cache
from tests.xla_flags import xla_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_under_the_users_cache_home(tmp_path):
  environ = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
  path = compile_cache.configure(environ)
  assert path == str(tmp_path / "cache" / "annotanchor" / "xla") and os.path.isdir(path)
  assert environ[compile_cache.DIR] == path
  assert environ[compile_cache.MIN_COMPILE_TIME] == "0"
  assert int(environ[compile_cache.MAX_SIZE]) == 4 << 30


def test_what_the_user_set_wins_and_empty_turns_it_off(tmp_path):
  environ = {compile_cache.DIR: str(tmp_path / "mine"), compile_cache.MIN_COMPILE_TIME: "2"}
  assert compile_cache.configure(environ) == str(tmp_path / "mine")
  assert environ[compile_cache.MIN_COMPILE_TIME] == "2"
  off = {compile_cache.DIR: ""}
  assert compile_cache.configure(off) is None and off == {compile_cache.DIR: ""}


def test_an_unwritable_cache_home_leaves_the_cache_off(tmp_path):
  blocked = tmp_path / "file"
  blocked.write_text("not a directory")
  environ = {"XDG_CACHE_HOME": str(blocked)}
  assert compile_cache.configure(environ) is None and compile_cache.DIR not in environ


def _train(model_dir, cache_dir):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags(devices=1),
         "PYTHONPATH": REPO, compile_cache.DIR: str(cache_dir)}
  env.pop(compile_cache.MIN_COMPILE_TIME, None)  # The command's own defaults, not the suite's.
  env.pop(compile_cache.MAX_SIZE, None)
  done = subprocess.run(
      [sys.executable, "-m", "annotanchor.cli", "train", "--gin_file=gin/models/tiny.gin",
       "--gin_file=gin/runs/pretrain.gin", f"--gin.MODEL_DIR='{model_dir}'",
       "--gin.TRAIN_STEPS=3", "--gin.BATCH_SIZE=2", "--gin.TASK_FEATURE_LENGTHS={'targets': 32}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  with open(os.path.join(model_dir, "train_metrics.jsonl")) as f:
    return [json.loads(line)["loss"] for line in f], done.stderr


def _entries(cache_dir):
  return {name for name in os.listdir(cache_dir) if name.endswith("-cache")}


def test_a_rerun_loads_every_program_and_trains_the_same(tmp_path):
  cache = tmp_path / "xla"
  first, _ = _train(tmp_path / "first", cache)
  compiled = _entries(cache)
  assert compiled  # The train step, its initialisation and their helpers.
  again, stderr = _train(tmp_path / "again", cache)
  assert _entries(cache) == compiled  # Nothing compiled anew: every program was loaded.
  assert again == first
  assert "compilation cache" not in stderr  # No cache warning reaches the user.
