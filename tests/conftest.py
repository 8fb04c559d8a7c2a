"""Test-wide set-up: 8 fake CPU devices and fast XLA compiles, set before JAX starts its
backend (children started with os.environ inherit both)."""
import os

from tests.xla_flags import FAST_COMPILE

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_flags = os.environ.get("XLA_FLAGS", "").split()
_flags += [f for f in FAST_COMPILE if f.split("=")[0] not in {g.split("=")[0] for g in _flags}]
if not any(f.startswith("--xla_force_host_platform_device_count") for f in _flags):
  _flags.append("--xla_force_host_platform_device_count=8")
os.environ["XLA_FLAGS"] = " ".join(_flags)


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
