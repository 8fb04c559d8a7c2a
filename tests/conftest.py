"""Test-wide set-up: 8 fake CPU devices, fast XLA compiles and one persistent compilation
cache for the run, set before JAX starts its backend (children started with os.environ
inherit all three)."""
import os
import shutil
import tempfile

from tests.xla_flags import FAST_COMPILE

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_flags = os.environ.get("XLA_FLAGS", "").split()
_flags += [f for f in FAST_COMPILE if f.split("=")[0] not in {g.split("=")[0] for g in _flags}]
if not any(f.startswith("--xla_force_host_platform_device_count") for f in _flags):
  _flags.append("--xla_force_host_platform_device_count=8")
os.environ["XLA_FLAGS"] = " ".join(_flags)

# Most of the suite's time is `annotanchor` processes that compile the same tiny programs
# again (a tiny `train`: 22 s, of which 8 s compiling). JAX's persistent cache lets every
# later process, and both xdist workers, load them instead (the same tiny `train`: 13 s).
# The cache key holds the program, the compile options, XLA_FLAGS and the devices, so a
# test that changes any of them compiles its own. One directory per run, made by the
# process that starts pytest (xdist's workers inherit its environment) and removed by it;
# a cold cache each run, as on a fresh clone. Every compile is cached (minimum compile time
# 0 s); a size bound turns on JAX's file lock, so that a worker never reads an entry the
# other is still writing.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="annotanchor-xla-cache-")
  os.environ["ANNOTANCHOR_TEST_XLA_CACHE_OWNER"] = str(os.getpid())
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(8 << 30))

# Not in the test processes themselves: their programs are new to the cache (a worker's jit
# keeps what it compiled in memory), so writing them only costs time
# (tests/model/test_network.py::test_packed_row_equals_separate_sequences: 17.7 s of CPU
# with the cache, 13.3 s without).
import jax  # noqa: E402  (after XLA_FLAGS and the cache's variables are set)

jax.config.update("jax_compilation_cache_dir", None)


def pytest_unconfigure(config):
  """Removes the run's compilation cache, in the process that made it."""
  del config
  if os.environ.get("ANNOTANCHOR_TEST_XLA_CACHE_OWNER") == str(os.getpid()):
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


# The modules that take minutes (their tests start `annotanchor` processes that train,
# sample and evaluate), longest first: `pytest -n 2 --dist loadscope --durations=60` of the
# default suite, 2026-12-07. With --no-loadscope-reorder (Makefile) xdist hands modules to
# its workers in collection order; handed out last, one of these kept one worker busy for
# minutes after the other had run out of work (the suite sat at 91-99% for 7 of its 23.5
# minutes). Handed out first, the short modules fill in around them.
LONGEST_MODULES = (
    "tests/test_demo.py",
    "tests/test_user_corpus_demo.py",
    "tests/training/test_train_entry.py",
    "tests/decoding/test_self_describing.py",
    "tests/interchange/test_export_own_tokenizer.py",
    "tests/tpu/test_compile.py",
    "tests/test_annotate_serve_e2e.py",
    "tests/faults/test_hf_tokenizer_train.py",
    "tests/faults/test_train_faults.py",
    "tests/capability/test_capability_command.py",
    "tests/faults/test_checkpoint_faults.py",
    "tests/interchange/test_convert_commands.py",
    "tests/data/test_corpus_template.py",
    "tests/annotation/test_sft_annotate.py",
)


def pytest_collection_modifyitems(config, items):
  """Runs the LONGEST_MODULES first, in that order; the rest keep their order."""
  del config
  rank = {path: i for i, path in enumerate(LONGEST_MODULES)}
  items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
