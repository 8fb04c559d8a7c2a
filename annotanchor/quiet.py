"""What an `annotanchor` command prints: its own lines and the warnings a user can act on.

TensorFlow, JAX, absl, Orbax and SeqIO talk at start-up and on every run, on a CPU host
even more (no CUDA driver, no cuInit). Unless the command runs verbose (`--verbose`, a flag
every subcommand takes, or ANNOTANCHOR_VERBOSE=1), `command()` quiets them:

1. Environment variables, set with `setdefault` (a value the user set wins) before TF or
   JAX is imported, and inherited by the commands a command starts (`demo`'s steps):

     TF_CPP_MIN_LOG_LEVEL=3    TF's and XLA's C++ INFO/WARNING/ERROR lines (cuInit
                               failures, cpu_feature_guard, ...); FATAL ones still print
     TF_ENABLE_ONEDNN_OPTS=0   TF's "oneDNN custom operations are on" notice (TF only
                               feeds data here; no JAX computation uses oneDNN)
     GRPC_VERBOSITY=ERROR      gRPC's INFO lines (fork handlers, ...)
     GLOG_minloglevel=2        libraries that log through glog

2. Lines that native code writes to stderr before any of those settings is read (C++
   static initialisers log through absl before `absl::InitializeLog()`, so no environment
   variable reaches them), or through a logger of its own (SentencePiece inside
   tensorflow_text), are dropped by a filter on file descriptor 2: a small process that
   reads what the command writes to stderr and passes every line on except native log
   lines below TF_CPP_MIN_LOG_LEVEL's severity, as

     WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
     I0000 00:00:1796671663.780276    5785 cudart_stub.cc:31] Could not find cuda drivers ...
     normalizer.cc(51) LOG(INFO) precompiled_charsmap is empty. use identity normalization.

   (with the source trace such a line may end with), and libtpu's warning that it cannot
   tell this host's TPU type (`annotanchor compile` runs on hosts without TPU chips by
   design). The filter
   ends when the command does and, started as its own process, passes on everything
   written before a crash too. sys.stderr still answers isatty() as the terminal would
   (progress bars stay on).

3. `configure_logging()` drops exactly two library log records that do not apply to
   annotanchor's runs (see `_IRRELEVANT`); every other warning passes.

Verbose, none of this happens: no variable is set, no filter started, and absl's logger
keeps its default level.
"""
from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from typing import Iterator, Sequence

VERBOSE_FLAG = "--verbose"
VERBOSE_ENV = "ANNOTANCHOR_VERBOSE"

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "2",
}


def verbose_requested(argv: Sequence[str] = (), environ=os.environ) -> bool:
  """Whether `--verbose` is in argv or ANNOTANCHOR_VERBOSE is set (not to 0/false/no)."""
  value = environ.get(VERBOSE_ENV, "").strip().lower()
  return VERBOSE_FLAG in argv or value not in ("", "0", "false", "no", "off")


def strip_verbose(argv: Sequence[str]) -> list[str]:
  """argv without `--verbose` (gin flags never see it)."""
  return [a for a in argv if a != VERBOSE_FLAG]


def quiet_environment(environ=os.environ) -> dict[str, str]:
  """Sets QUIET_ENV's variables the user has not set; returns those it set."""
  added = {k: v for k, v in QUIET_ENV.items() if k not in environ}
  environ.update(added)
  return added


# --- 2. The stderr filter ----------------------------------------------------------------

# The filter process's program (run as `python -S -I -c`): stdin -> stdout, dropping native
# log lines below MIN_LEVEL (argv[1]) and passing every other byte on, in order.
_FILTER = r"""
import os, re, select, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the command reports; we pass it on.
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # We end when the command's stderr closes.
MIN_LEVEL = int(sys.argv[1])
LEVELS = {b"I": 0, b"W": 1, b"E": 2, b"F": 3, b"INFO": 0, b"WARNING": 1, b"ERROR": 2,
          b"FATAL": 3}
# The notices of absl and of libtpu's logging that log lines before their set-up follow.
BANNERS = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
           b"WARNING: Logging before InitGoogle() is written to STDERR")
# absl/glog: "I0000 00:00:1796671663.780276    5785 cudart_stub.cc:31] ..."
ABSL = re.compile(rb"([IWEF])\d{4} \d\d:\d\d:\d+(?:\.\d+)? +\d+ [^ \]]+:\d+\] ")
# SentencePiece: "normalizer.cc(51) LOG(INFO) ..."
SPM = re.compile(rb"[\w.-]+\.cc\(\d+\) LOG\((INFO|WARNING|ERROR|FATAL)\) ")
# libtpu on a host without TPU chips (`annotanchor compile`, which compiles for the TOPOLOGY
# it is given): a warning that it cannot tell this host's TPU type.
LIBTPU = b"Failed to find host bounds for accelerator type: WARNING: could not determine TPU"
# The source trace some native messages end with, on lines of their own.
TRACE = re.compile(rb"=== Source Location Trace: ===|[\w/.-]+\.(?:cc|h):\d+")
trace = False  # Whether the line before (banners aside) was dropped: its trace goes too.

def drop(line):
  global trace
  line = line.rstrip(b"\r")
  if line in BANNERS:
    return MIN_LEVEL >= 1
  if trace and TRACE.fullmatch(line.strip()):
    return True
  m = ABSL.match(line) or SPM.match(line)
  trace = ((bool(m) and LEVELS[m.group(1)] < MIN_LEVEL)
           or (line.startswith(LIBTPU) and MIN_LEVEL >= 2))
  return trace

def write(data):
  while data:
    data = data[os.write(1, data):]

# rest: what becomes of the rest of a line begun but not ended (None: not yet decided).
pending, rest = b"", None
while True:
  # A partial line waits (native loggers write one in pieces) unless it is a progress
  # bar's (it starts with a carriage return) or nothing follows within 0.2 s.
  if pending and rest is None and not pending.startswith(b"\r"):
    if not select.select([0], [], [], 0.2)[0]:
      rest = "drop" if drop(pending) else "pass"
  if pending and rest is None and pending.startswith(b"\r"):
    rest = "pass"
  if pending and rest is not None:
    if rest == "pass":
      write(pending)
    pending = b""
  try:
    chunk = os.read(0, 65536)
  except InterruptedError:
    continue
  if not chunk:
    break
  pending += chunk
  out = []
  while b"\n" in pending:
    line, pending = pending.split(b"\n", 1)
    if rest == "pass" or (rest is None and not drop(line)):
      out.append(line + b"\n")
    rest = None
  if out:
    write(b"".join(out))
if pending and (rest == "pass" or (rest is None and not drop(pending))):
  write(pending)
"""


def _min_level(environ=os.environ) -> int:
  try:
    return int(environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
  except ValueError:
    return 0


@contextlib.contextmanager
def filtered_stderr(min_level: int) -> Iterator[None]:
  """Routes file descriptor 2 through the filter process for the duration.

  Native lines below `min_level` (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL) are dropped; every
  other byte passes, in order. On exit stderr is the original descriptor again, and what
  the filter still held has been written.
  """
  if min_level <= 0:
    yield
    return
  for stream in (sys.stdout, sys.stderr):
    stream.flush()
  saved = os.dup(2)
  try:
    filt = subprocess.Popen([sys.executable, "-S", "-I", "-c", _FILTER, str(min_level)],
                            stdin=subprocess.PIPE, stdout=saved, stderr=saved)
  except OSError:  # No filter (e.g. no process left to start): stderr as it is.
    os.close(saved)
    yield
    return
  was_tty = os.isatty(saved)
  os.dup2(filt.stdin.fileno(), 2)
  filt.stdin.close()  # fd 2 is now the only writer of ours.
  if was_tty:  # Progress bars ask sys.stderr whether it is a terminal.
    sys.stderr.isatty = lambda: True
  try:
    yield
  finally:
    try:
      sys.stderr.flush()
    except (OSError, ValueError):
      pass
    if was_tty:
      with contextlib.suppress(AttributeError):
        del sys.stderr.isatty
    os.dup2(saved, 2)  # Closes our end of the pipe: the filter drains and ends.
    os.close(saved)
    try:
      filt.wait(timeout=5)  # Longer only if a process we started still holds the pipe.
    except subprocess.TimeoutExpired:
      pass


@contextlib.contextmanager
def command(argv: Sequence[str]) -> Iterator[list[str]]:
  """The quiet (or verbose) frame of one command: yields argv without `--verbose`.

  Non-verbose: sets QUIET_ENV (before the command imports TF or JAX) and filters stderr
  for the duration. Verbose (`--verbose` or ANNOTANCHOR_VERBOSE=1): exports
  ANNOTANCHOR_VERBOSE=1, so the commands it starts are verbose as well, and changes nothing.
  """
  if verbose_requested(argv):
    os.environ[VERBOSE_ENV] = "1"
    yield strip_verbose(argv)
    return
  quiet_environment()
  with filtered_stderr(_min_level()):
    yield strip_verbose(argv)


# --- 3. Library log records ------------------------------------------------------------

# Message prefix -> why it does not apply (matched on the record's formatted message).
_IRRELEVANT = {
    # Orbax, on every restore of one item (params/, meta/) by its own path: it looks for
    # the step-level _CHECKPOINT_METADATA (save time and the like) inside the item
    # directory, where CheckpointManager never writes it (it is one level up). Restoring
    # needs the item's own tree metadata (_METADATA), and a missing one stops the restore
    # with a CheckpointDamagedError naming it.
    "Metadata file does not exist: ": lambda message: message.endswith("_CHECKPOINT_METADATA"),
    # SeqIO, on every FunctionDataSource with shuffling (user corpora read from the
    # validated cache, storyworld, synthetic): its advice is about restarts re-reading a
    # source from its start. annotanchor's stream is a pure function of the seed and the
    # step (data/pipeline.py): a resumed run skips exactly the batches it consumed, and
    # user corpora are already cached validated TFRecords (data/validated.py).
    "Using an uncached FunctionDataset for training is not recommended": lambda message: True,
}


class IrrelevantRecords(logging.Filter):
  """Drops the library log records of `_IRRELEVANT`; passes every other record."""

  def filter(self, record: logging.LogRecord) -> bool:
    try:
      message = record.getMessage()
    except Exception:  # pylint: disable=broad-except  # A malformed record: let it show.
      return True
    for prefix, applies in _IRRELEVANT.items():
      if message.startswith(prefix) and applies(message):
        return False
    return True


_FILTER_INSTANCE = IrrelevantRecords()


def configure_logging(verbose: bool) -> None:
  """The commands' logging: INFO and up on stderr, one line each.

  Quiet, absl's logger (Orbax's per-save INFO lines) is held to WARNING and the records of
  `_IRRELEVANT` are dropped; verbose, both as the libraries leave them.
  """
  # force: absl (imported by TF and orbax) has already installed a root handler.
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                      force=True)
  absl_logger = logging.getLogger("absl")
  if verbose:
    absl_logger.removeFilter(_FILTER_INSTANCE)
    return
  absl_logger.setLevel(logging.WARNING)
  absl_logger.addFilter(_FILTER_INSTANCE)  # Records logged to it directly (absl.logging).
  for handler in logging.getLogger().handlers:  # Records of any other logger.
    handler.addFilter(_FILTER_INSTANCE)


# --- Help without importing the command ------------------------------------------------

def wants_help(argv: Sequence[str]) -> bool:
  return any(a in ("-h", "--help") for a in argv)


def _module_file(module_name: str) -> str | None:
  """The source file of `module_name`, found without importing it or its packages (a
  package's __init__ may import TensorFlow)."""
  import importlib.util

  module = sys.modules.get(module_name)
  if module is not None:
    return getattr(module, "__file__", None)
  top, *parts = module_name.split(".")
  spec = importlib.util.find_spec(top)
  if spec is None:
    return None
  if not parts:
    return spec.origin
  places = list(spec.submodule_search_locations or [])
  for part in parts[:-1]:
    places = [os.path.join(p, part) for p in places if os.path.isdir(os.path.join(p, part))]
  for place in places:
    for candidate in (os.path.join(place, parts[-1] + ".py"),
                      os.path.join(place, parts[-1], "__init__.py")):
      if os.path.isfile(candidate):
        return candidate
  return None


def module_docstring(module_name: str) -> str | None:
  """`module_name`'s docstring (what its main prints for --help), read from its source
  with ast: no import, so no TensorFlow or JAX start-up. None when it cannot be read."""
  import ast

  path = _module_file(module_name)
  if not path or not path.endswith(".py"):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read(), path)
  except (OSError, SyntaxError, ValueError):
    return None
  return ast.get_docstring(tree, clean=False)
