"""JAX_PLATFORMS=cpu is chosen only on hosts with libtpu and no TPU chip."""
import importlib.util

import pytest

from annotanchor import platforms


def _pci(tmp_path, vendors):
  for i, vendor in enumerate(vendors):
    device = tmp_path / f"0000:00:0{i}.0"
    device.mkdir()
    (device / "vendor").write_text(vendor + "\n")
  return str(tmp_path)


@pytest.fixture
def libtpu_installed(monkeypatch):
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: object() if name == "libtpu" else real(name, *a))


def test_cpu_host_with_libtpu_gets_cpu(tmp_path, libtpu_installed):
  env = {}
  assert platforms.default_to_cpu_without_tpu(env, _pci(tmp_path, ["0x8086"]))
  assert env == {"JAX_PLATFORMS": "cpu"}


def test_tpu_vm_is_left_alone(tmp_path, libtpu_installed):
  env = {}
  assert not platforms.default_to_cpu_without_tpu(env, _pci(tmp_path, ["0x8086", "0x1ae0"]))
  assert env == {}


def test_explicit_choice_wins(tmp_path, libtpu_installed):
  env = {"JAX_PLATFORMS": "tpu"}
  assert not platforms.default_to_cpu_without_tpu(env, _pci(tmp_path, []))
  assert env == {"JAX_PLATFORMS": "tpu"}


def test_without_libtpu_nothing_changes(tmp_path, monkeypatch):
  monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
  env = {}
  assert not platforms.default_to_cpu_without_tpu(env, _pci(tmp_path, []))
  assert env == {}
