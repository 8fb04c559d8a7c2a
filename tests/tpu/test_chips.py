"""Slice names -> topologies, and the chip table behind MFU."""
import pytest

from annotanchor.hardware import CHIPS
from annotanchor.tpu.chips import TopologyError, parse_topology, torus_shape
from annotanchor.training.flops import PEAK_FLOPS_BY_KIND


@pytest.mark.parametrize("name,libtpu,chips", [
    ("v5e-64", "v5e:8x8", 64),
    ("v6e-256", "v6e:16x16", 256),
    ("v4-32", "v4:2x2x4", 16),  # v4 slice names count TensorCores, two per chip.
    ("v5p-128", "v5p:4x4x4", 64),
    ("v5e-8", "v5e:2x4", 8),
    ("v5e:4x4", "v5e:4x4", 16),
])
def test_slice_names(name, libtpu, chips):
  topology = parse_topology(name)
  assert topology.libtpu_name == libtpu and topology.num_chips == chips


@pytest.mark.parametrize("name,message", [
    ("v5e-48", "power of two"),
    ("v9-8", "expected e.g. 'v5e-64'"),
    ("v4-31", "2 TensorCores per chip"),
    ("v5e:2x2x2", "tori have 2 sides"),
    ("tpu", "expected e.g."),
])
def test_bad_slice_names(name, message):
  with pytest.raises(TopologyError, match=message):
    parse_topology(name)


def test_torus_shapes_grow_like_cloud_tpu():
  assert [torus_shape(n, 3) for n in (4, 8, 16, 32, 64, 128)] == [
      (2, 2, 1), (2, 2, 2), (2, 2, 4), (2, 4, 4), (4, 4, 4), (4, 4, 8)]


def test_mfu_peaks_come_from_the_chip_table():
  assert PEAK_FLOPS_BY_KIND["TPU v5 lite"] == CHIPS["v5e"].peak_bf16_flops == 197e12
  # Prefix matching: the v5e kind must be tried before v5p's bare "TPU v5".
  kinds = list(PEAK_FLOPS_BY_KIND)
  assert kinds.index("TPU v5 lite") < kinds.index("TPU v5")


@pytest.mark.parametrize("kind,peak", [
    ("NVIDIA H100 80GB HBM3", 989e12),  # SXM
    ("NVIDIA H100 PCIe", 756e12),
    ("NVIDIA H200", 989e12),
    ("NVIDIA H200 NVL", 835e12),  # must not match the bare "NVIDIA H200"
    ("NVIDIA A100-SXM4-40GB", 312e12),
    ("NVIDIA A100 80GB PCIe", 312e12),
])
def test_gpu_peaks_by_device_kind(monkeypatch, kind, peak):
  import types

  from annotanchor.training import flops
  monkeypatch.setattr(flops.jax, "devices", lambda: [types.SimpleNamespace(device_kind=kind)])
  assert flops.peak_flops_per_device() == (peak, f"spec sheet ({kind})")
