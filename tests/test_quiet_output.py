"""What a command prints (annotanchor/quiet.py, issue 29): its own lines and the warnings a
user can act on; with --verbose, the libraries' lines as well.

The process tests run `annotanchor train` the way a user does: from a directory outside the
repository, with nothing of the test suite's quieting (no TF_CPP_MIN_LOG_LEVEL) in the
environment.
"""
import logging
import os
import re
import shutil
import subprocess
import sys

import pytest

from annotanchor import quiet
from tests.xla_flags import xla_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANNOTANCHOR = os.path.join(os.path.dirname(sys.executable), "annotanchor")

# Lines no quiet run may print: library start-up chatter, gin's "ERROR Path not found",
# and the two library warnings that do not apply to annotanchor's runs.
CHATTER = [
    "oneDNN", "cudart", "Could not find cuda drivers", "absl::InitializeLog", "cuInit",
    "cpu_feature_guard", "normalizer.cc", "ERROR", "uncached", "Metadata file does not exist",
    "system_path_file_exists", "Traceback",
]
NATIVE_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+")


def _clean_env(**extra):
  """The environment of a user's shell: none of the variables quiet sets, nor verbose."""
  env = {k: v for k, v in os.environ.items()
         if k not in quiet.QUIET_ENV and k != quiet.VERBOSE_ENV}
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(devices=1), PYTHONPATH=REPO, **extra)
  return env


def _filter(data: bytes, min_level: int = 3) -> bytes:
  done = subprocess.run([sys.executable, "-S", "-I", "-c", quiet._FILTER, str(min_level)],
                        input=data, capture_output=True, timeout=30, check=True)
  return done.stdout


# --- The stderr filter ---------------------------------------------------------------------

BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
CUDART = (b"I0000 00:00:1796671663.780276    5785 cudart_stub.cc:31] Could not find cuda "
          b"drivers on your machine, GPU will not be used.\n")
CUINIT = (b"E0000 00:00:1796671792.659900    9033 cuda_platform.cc:52] failed call to cuInit: "
          b"INTERNAL: CUDA error\n")
FATAL = b"F1207 19:30:25.123456  1234 logging.cc:52] Check failed: x == y\n"
SPM = b"normalizer.cc(51) LOG(INFO) precompiled_charsmap is empty. use identity normalization.\n"


def test_the_filter_drops_native_lines_below_the_level_and_passes_the_rest():
  ours = b"2026-12-07 19:40:43,463 INFO MFU against 1e+11 FLOP/s\nwrote 2 samples\n"
  data = BANNER + CUDART + ours + SPM + CUINIT + FATAL + "héllo 🙂\n".encode() + b"no newline"
  assert _filter(data) == ours + FATAL + "héllo 🙂\n".encode() + b"no newline"
  # TF_CPP_MIN_LOG_LEVEL=2 (the user's): errors pass; 0: everything does.
  assert _filter(data, 2) == ours + CUINIT + FATAL + "héllo 🙂\n".encode() + b"no newline"


def test_the_filter_drops_libtpus_host_type_warning_with_its_trace():
  """`annotanchor compile` on a host without TPU chips (as designed)."""
  libtpu = (b"Failed to find host bounds for accelerator type: WARNING: could not determine TPU "
            b"accelerator type, please set env var `TPU_ACCELERATOR_TYPE` manually, otherwise "
            b"libtpu.so may not properly initialize.\n"
            b"WARNING: Logging before InitGoogle() is written to STDERR\n"
            b"E0000 00:00:1796673203.490480    1318 common_lib.cc:554] INVALID_ARGUMENT: "
            b"Error: unexpected worker hostname\n"
            b"=== Source Location Trace: === \n"
            b"learning/45eac/tfrc/runtime/libtpu_init_utils.cc:327\n")
  ours = b"2026-12-07 19:51:06,920 INFO Compiling the train step for v5e-8\n"
  assert _filter(libtpu + ours + b"file.cc:3\n") == ours + b"file.cc:3\n"
  assert _filter(libtpu, 1) == libtpu.replace(
      b"WARNING: Logging before InitGoogle() is written to STDERR\n", b"")
  # A trace after a line that passes passes too.
  kept = b"E0000 00:00:1.5    1 common_lib.cc:554] X\n=== Source Location Trace: ===\nx.cc:3\n"
  assert _filter(kept, 2) == kept


def test_the_filter_joins_lines_written_in_pieces_and_passes_progress_bars():
  # SentencePiece writes its line in pieces (std::cerr); a bar rewrites its line with \r.
  pieces = [b"normalizer.cc(51) ", b"LOG(INFO) ", b"precompiled_charsmap is empty.", b"\n",
            b"\r 10%|#", b"\r 20%|##", b"\n"]
  script = ("import os, sys, time\n"
            f"for piece in {pieces!r}:\n"
            "  os.write(1, piece); time.sleep(0.02)\n")
  writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
  done = subprocess.run([sys.executable, "-S", "-I", "-c", quiet._FILTER, "3"],
                        stdin=writer.stdout, capture_output=True, timeout=30, check=True)
  writer.wait(timeout=30)
  assert done.stdout == b"\r 10%|#\r 20%|##\n"


_FILTERED_CHILD = """
import os, sys
from annotanchor import quiet
with quiet.filtered_stderr(3):
  os.write(2, {banner!r} + {cudart!r} + b"kept\\n")
  print("also kept", file=sys.stderr)
os.write(2, {cudart!r})  # After the frame: stderr is the original again.
os._exit(3)
"""


def test_filtered_stderr_restores_fd_2_and_loses_nothing():
  code = _FILTERED_CHILD.format(banner=BANNER, cudart=CUDART)
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                        env=_clean_env())
  assert done.returncode == 3
  assert done.stderr == b"kept\nalso kept\n" + CUDART


def test_a_crash_inside_the_filter_frame_still_shows_its_message():
  code = ("import os\nfrom annotanchor import quiet\nwith quiet.filtered_stderr(3):\n"
          "  os.write(2, b'fatal: the last words\\n')\n  os.abort()\n")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                        env=_clean_env())
  assert done.returncode != 0
  assert b"fatal: the last words" in done.stderr


# --- Environment and verbosity ---------------------------------------------------------------

def test_quiet_environment_keeps_what_the_user_set():
  env = {"TF_CPP_MIN_LOG_LEVEL": "0"}
  added = quiet.quiet_environment(env)
  assert env["TF_CPP_MIN_LOG_LEVEL"] == "0" and "TF_CPP_MIN_LOG_LEVEL" not in added
  assert env["TF_ENABLE_ONEDNN_OPTS"] == "0" and env["GRPC_VERBOSITY"] == "ERROR"


@pytest.mark.parametrize("argv, environ, verbose", [
    (["--gin.A=1"], {}, False),
    (["--gin.A=1", "--verbose"], {}, True),
    ([], {"ANNOTANCHOR_VERBOSE": "1"}, True),
    ([], {"ANNOTANCHOR_VERBOSE": "0"}, False),
    ([], {"ANNOTANCHOR_VERBOSE": ""}, False),
])
def test_verbose_is_a_flag_or_the_environment(argv, environ, verbose):
  assert quiet.verbose_requested(argv, environ) == verbose
  assert quiet.strip_verbose(argv) == [a for a in argv if a != "--verbose"]


def test_verbose_sets_nothing_and_exports_itself(monkeypatch):
  for name in [*quiet.QUIET_ENV, quiet.VERBOSE_ENV]:
    monkeypatch.delenv(name, raising=False)
  with quiet.command(["--gin.A=1", "--verbose"]) as argv:
    assert argv == ["--gin.A=1"]
    assert not any(name in os.environ for name in quiet.QUIET_ENV)
    assert os.environ[quiet.VERBOSE_ENV] == "1"  # The commands it starts are verbose too.


# --- Library log records -----------------------------------------------------------------------

def _passes(message: str) -> bool:
  record = logging.LogRecord("absl", logging.WARNING, __file__, 1, message, None, None)
  return quiet.IrrelevantRecords().filter(record)


@pytest.mark.parametrize("message, passes", [
    ("Metadata file does not exist: /r/checkpoints/2/params/_CHECKPOINT_METADATA", False),
    ("Using an uncached FunctionDataset for training is not recommended since it often "
     "results in insufficient shuffling on restarts, resulting in overfitting.", False),
    # A missing tree metadata is another file: it passes (and the restore refuses).
    ("Metadata file does not exist: /r/checkpoints/2/params/_METADATA", True),
    ("Skipping merge of OCDBT checkpoints: No per-process OCDBT checkpoint subdirs", True),
    ("data/docs.jsonl: skipped 2 bad records, kept 6", True),
])
def test_exactly_the_two_irrelevant_library_records_are_dropped(message, passes):
  assert _passes(message) == passes


# --- A tiny run, as a user runs it ------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  """A tiny.gin-shaped random network laid out as the trainer's CheckpointManager lays it
  out: _CHECKPOINT_METADATA in the step directory, not in params/ (so Orbax, restoring
  params/, logs 'Metadata file does not exist')."""
  from annotanchor.model.config import TransformerConfig
  from tests import random_checkpoint

  tiny = TransformerConfig(vocab_size=128, d_model=64, num_layers=2, num_heads=4,
                           num_kv_heads=2, head_dim=16, mlp_dim=192, max_len=512,
                           qk_norm=True)
  model_dir = tmp_path_factory.mktemp("base")
  random_checkpoint.save(str(model_dir), tiny, step=1)
  step = model_dir / "checkpoints" / "1"
  shutil.move(str(step / "params" / "_CHECKPOINT_METADATA"), str(step / "_CHECKPOINT_METADATA"))
  return str(model_dir)


def _sft(checkpoint, tmp_path, *flags):
  """A 2-step SFT run (gin/runs/sft.gin includes gin/runs/pretrain.gin) from `checkpoint`
  on synthetic_tokens (a FunctionDataSource), started outside the repository."""
  cwd = tmp_path / "elsewhere"
  cwd.mkdir()
  return subprocess.run(
      [ANNOTANCHOR, "train", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/sft.gin",
       f"--gin.MODEL_DIR='{tmp_path / 'run'}'", f"--gin.INITIAL_CHECKPOINT_PATH='{checkpoint}'",
       "--gin.MIXTURE_OR_TASK_NAME='synthetic_tokens'", "--gin.TRAIN_STEPS=2",
       "--gin.BATCH_SIZE=2", "--gin.TASK_FEATURE_LENGTHS={'targets': 32}", *flags],
      cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=300,
      stdin=subprocess.DEVNULL)


def test_a_tiny_run_prints_only_its_own_lines(checkpoint, tmp_path):
  done = _sft(checkpoint, tmp_path)
  assert done.returncode == 0, done.stderr[-3000:]
  assert os.path.isdir(tmp_path / "run" / "checkpoints" / "2")
  output = done.stdout + done.stderr
  for needle in CHATTER:
    assert needle not in output, (needle, output[-3000:])
  assert not [l for l in output.splitlines() if NATIVE_LOG_LINE.match(l)], output[-3000:]
  assert f"Initialising parameters from {checkpoint}" in done.stderr  # Its own lines pass.


def test_verbose_brings_the_library_lines_back(checkpoint, tmp_path):
  done = _sft(checkpoint, tmp_path, "--verbose")
  assert done.returncode == 0, done.stderr[-3000:]
  assert "Using an uncached FunctionDataset" in done.stderr
  assert "Metadata file does not exist" in done.stderr
  assert "Path not found" not in done.stderr  # gin files resolve, verbose or not.
