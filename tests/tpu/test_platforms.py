"""JAX_PLATFORMS: left to JAX on TPU VMs, cuda where a GPU and the CUDA plugin are, cpu on
hosts with libtpu and no accelerator."""
import importlib.util

import pytest

from annotanchor import platforms

INTEL, GOOGLE, NVIDIA = "0x8086", "0x1ae0", "0x10de"
GPU_CLASS, NVSWITCH_CLASS = "0x030200", "0x068000"


def _pci(tmp_path, devices):
  """devices: vendor strings, or (vendor, PCI class) pairs."""
  for i, device in enumerate(devices):
    vendor, cls = device if isinstance(device, tuple) else (device, None)
    path = tmp_path / f"0000:00:0{i}.0"
    path.mkdir()
    (path / "vendor").write_text(vendor + "\n")
    if cls:
      (path / "class").write_text(cls + "\n")
  return str(tmp_path)


@pytest.fixture
def installed(monkeypatch):
  """installed(*modules): find_spec finds exactly these of libtpu and the CUDA plugins."""
  real = importlib.util.find_spec
  names = {"libtpu", *platforms.CUDA_PLUGINS}
  def install(*modules):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        (object() if name in modules else None) if name in names else real(name, *a)))
  return install


def test_cpu_host_with_libtpu_gets_cpu(tmp_path, installed):
  installed("libtpu")
  env = {}
  assert platforms.choose_platform(env, _pci(tmp_path, [INTEL])) == "cpu"
  assert env == {"JAX_PLATFORMS": "cpu"}


def test_tpu_vm_is_left_alone(tmp_path, installed):
  installed("libtpu")
  env = {}
  assert platforms.choose_platform(env, _pci(tmp_path, [INTEL, GOOGLE])) is None
  assert env == {}


def test_explicit_choice_wins(tmp_path, installed):
  installed("libtpu", "jax_cuda12_plugin")
  env = {"JAX_PLATFORMS": "tpu"}
  assert platforms.choose_platform(env, _pci(tmp_path, [(NVIDIA, GPU_CLASS)])) is None
  assert env == {"JAX_PLATFORMS": "tpu"}


def test_without_libtpu_nothing_changes(tmp_path, installed):
  installed()
  env = {}
  assert platforms.choose_platform(env, _pci(tmp_path, [])) is None
  assert env == {}


@pytest.mark.parametrize("plugin", platforms.CUDA_PLUGINS)
def test_gpu_host_with_the_cuda_plugin_gets_cuda(tmp_path, installed, plugin):
  installed("libtpu", plugin)  # libtpu too: the GPU still wins over the CPU fallback.
  env = {}
  assert platforms.choose_platform(env, _pci(tmp_path, [INTEL, (NVIDIA, GPU_CLASS)])) == "cuda,cpu"
  assert env == {"JAX_PLATFORMS": "cuda,cpu"}


def test_gpu_without_the_plugin_warns_and_uses_the_cpu(tmp_path, installed, caplog):
  installed("libtpu")
  env = {}
  assert platforms.choose_platform(env, _pci(tmp_path, [(NVIDIA, GPU_CLASS)])) == "cpu"
  assert "pip install -e '.[gpu]'" in caplog.text


def test_an_nvswitch_is_not_a_gpu(tmp_path, installed):
  installed("jax_cuda12_plugin")
  env = {}
  assert platforms.choose_platform(env, _pci(tmp_path, [(NVIDIA, NVSWITCH_CLASS)])) is None
  assert env == {}
