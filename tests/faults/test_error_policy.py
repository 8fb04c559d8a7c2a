"""The entry points' error policy: a UserError is one line and exit 2, a bug keeps its trace."""
import subprocess
import sys

from tests.faults.conftest import ENV, REPO
from tests.xla_flags import xla_flags

# A sharding ValueError from inside JAX, raised in a gin configurable called by run_main.
_JAX_BUG = """
import gin, jax, jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
from annotanchor import gin_utils

@gin.configurable
def job():
  mesh = jax.make_mesh((2,), ("x",))
  return jax.device_put(jnp.ones(3), NamedSharding(mesh, P("x")))

raise SystemExit(gin_utils.run_main("job", job, []))
"""

_USER_ERROR = """
import gin
from annotanchor import gin_utils
from annotanchor.errors import require

@gin.configurable
def job(steps=-1):
  require(steps > 0, "STEPS", steps, "a positive integer")

raise SystemExit(gin_utils.run_main("job", job, []))
"""


def _python(code):
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                        timeout=120, env={**ENV, "XLA_FLAGS": xla_flags(devices=2)})


def test_a_jax_internal_value_error_keeps_its_traceback():
  done = _python(_JAX_BUG)
  assert done.returncode == 1, done.stderr[-2000:]
  assert "Traceback" in done.stderr and "ValueError" in done.stderr
  assert "does not evenly divide" in done.stderr
  assert "annotanchor job:" not in done.stderr


def test_a_user_error_is_one_line_without_gins_call_site():
  done = _python(_USER_ERROR)
  assert done.returncode == 2, done.stderr[-2000:]
  assert done.stderr.strip().splitlines()[-1] == (
      "annotanchor job: SettingError: STEPS=-1: expected a positive integer")
  assert "Traceback" not in done.stderr and "In call to configurable" not in done.stderr
