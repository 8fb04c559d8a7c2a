"""User-supplied hooks imported by path (annotanchor/evaluation/hooks.py)."""
import sys

import gin
import pytest

from annotanchor.errors import SettingError
from annotanchor.evaluation.hooks import import_callable

# A quality function whose module registers a configurable when imported, as tasks/ does.
REGISTERING_MODULE = '''
import gin

@gin.configurable
def hook_knob(x=1):
  return x

def quality(prompt, annotation, response):
  return float(bool(response))
'''


@pytest.fixture
def registering_module(tmp_path, monkeypatch):
  (tmp_path / "registering_hook.py").write_text(REGISTERING_MODULE)
  monkeypatch.syspath_prepend(str(tmp_path))
  yield "registering_hook:quality"
  sys.modules.pop("registering_hook", None)
  gin.clear_config()


def test_a_hook_that_registers_configurables_imports_after_gin_is_locked(registering_module):
  """`annotanchor pair` and `evaluate` import their hooks after gin finalized its config."""
  gin.clear_config()
  gin.finalize()
  quality = import_callable(registering_module)
  assert quality("p", "", "a response") == 1.0


def test_a_bad_path_is_one_setting_error():
  with pytest.raises(SettingError, match="cannot import module 'no_such_module'"):
    import_callable("no_such_module:fn")
  with pytest.raises(SettingError, match="'os.sep' is not callable"):
    import_callable("os.sep")
