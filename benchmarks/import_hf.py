"""Import time and peak host memory of `annotanchor convert import-hf` on a 1B-shaped model.

  .venv/bin/python benchmarks/import_hf.py            # Llama-3.2-1B's shape, bfloat16
  .venv/bin/python benchmarks/import_hf.py --quick    # a 2-layer, d=256 model (smoke test)

Writes a random Llama checkpoint of the given shape (numpy, streamed tensor by tensor into
model.safetensors with annotanchor.interchange.safetensors_io; no torch), then imports it
in a fresh process (`import_checkpoint`, the function behind the command) onto one CPU
device, and writes JSON to stdout and benchmarks/results/import_hf.json.

Memory is the process's resident set (Linux /proc/self/status): VmRSS before the import
(baseline: libraries loaded, mesh built) and the peak VmHWM, taken in two phases: the
streaming of the tensors onto the device (up to the last tensor's progress line), then,
after resetting the peak (`echo 5 > /proc/self/clear_refs`), the Orbax save. On a CPU host
the imported parameters themselves live in host memory (they are the device's arrays),
so the extra memory of a phase is peak - baseline - parameter bytes, and the goal, "no
more than one extra copy of the largest tensor in host memory", is extra / largest <= 1.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# Llama-3.2-1B (tied embeddings, GQA 32/8, llama3 RoPE); --quick shrinks it.
FULL = dict(vocab_size=128256, d_model=2048, num_layers=16, num_heads=32, num_kv_heads=8,
            head_dim=64, mlp_dim=8192, max_len=4096, tie_embeddings=True, rope_theta=500000.0,
            rope_type="llama3", rope_factor=32.0, rope_original_max_len=8192,
            norm_eps=1e-5)
QUICK = dict(FULL, vocab_size=4096, d_model=256, num_layers=2, num_heads=4, num_kv_heads=2,
             head_dim=64, mlp_dim=512)


def _status(field: str) -> int:
  """A /proc/self/status field in bytes (VmRSS, VmHWM)."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1]) * 1024
  raise KeyError(field)


def write_checkpoint(directory: str, shape: dict) -> dict:
  """A random Llama checkpoint of `shape` in bfloat16; returns sizes."""
  import ml_dtypes
  import numpy as np

  from annotanchor.interchange import families, names, safetensors_io
  from annotanchor.model.config import TransformerConfig

  config = TransformerConfig(**shape)
  os.makedirs(directory)
  with open(os.path.join(directory, "config.json"), "w") as f:
    json.dump(families.config_to_hf(config, dtype="bfloat16", where="benchmark"), f)
  mapped = names.tensor_map(config, "llama")
  rng = np.random.default_rng(0)

  def tensors():
    for m in mapped:
      yield m.hf_name, (rng.standard_normal(m.hf_shape, np.float32) * 0.02).astype(
          ml_dtypes.bfloat16)

  start = time.perf_counter()
  safetensors_io.write_file(os.path.join(directory, safetensors_io.SINGLE_FILE),
                            [(m.hf_name, m.hf_shape, ml_dtypes.bfloat16) for m in mapped],
                            tensors())
  return {"tensors": len(mapped), "write_seconds": time.perf_counter() - start,
          "largest_tensor": max(mapped, key=lambda m: math.prod(m.hf_shape)).hf_name,
          "largest_tensor_bytes": max(math.prod(m.hf_shape) for m in mapped) * 2,
          "file_bytes": os.path.getsize(os.path.join(directory, safetensors_io.SINGLE_FILE)),
          "num_params": config.num_params()}


def measure_import(hf_dir: str, model_dir: str, param_dtype: str) -> dict:
  """Runs in the child process: the import, with RSS figures per phase."""
  import jax

  from annotanchor.interchange import import_hf
  from annotanchor.training import partitioning

  mesh = partitioning.make_mesh({"data": -1})
  baseline = _status("VmRSS")
  phases: dict = {}
  count = {"n": 0}
  total = len(import_hf.plan(hf_dir, import_hf.families.config_from_hf(
      import_hf.read_config(hf_dir))[1], "llama"))
  start = time.perf_counter()

  def log(line: str) -> None:
    if line.startswith("["):
      count["n"] += 1
      if count["n"] == total:  # The last tensor is placed: the streaming phase ends.
        phases["stream_peak_rss"] = _status("VmHWM")
        phases["stream_seconds"] = time.perf_counter() - start
        with open("/proc/self/clear_refs", "w") as f:
          f.write("5")  # Resets VmHWM to the current RSS.

  config = import_hf.import_checkpoint(hf_dir, model_dir, mesh=mesh, param_dtype=param_dtype,
                                       dtype=param_dtype, log=log)
  phases["save_peak_rss"] = _status("VmHWM")
  phases["total_seconds"] = time.perf_counter() - start
  phases["save_seconds"] = phases["total_seconds"] - phases["stream_seconds"]
  phases["baseline_rss"] = baseline
  itemsize = 2 if param_dtype == "bfloat16" else 4
  phases["param_bytes"] = config.num_params() * itemsize
  phases["devices"] = [str(d) for d in jax.devices()]
  return phases


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="a small model (smoke test)")
  parser.add_argument("--param_dtype", default="bfloat16", choices=("bfloat16", "float32"))
  parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results",
                                                       "import_hf.json"))
  parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    print(json.dumps(measure_import(*args.child, args.param_dtype)))
    return
  shape = QUICK if args.quick else FULL
  with tempfile.TemporaryDirectory() as tmp:
    hf_dir, model_dir = os.path.join(tmp, "hf"), os.path.join(tmp, "model")
    written = write_checkpoint(hf_dir, shape)
    child = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", hf_dir, model_dir,
         "--param_dtype", args.param_dtype],
        env={**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True, text=True, check=False)
    if child.returncode:
      sys.exit(f"the import failed:\n{child.stderr[-3000:]}")
    measured = json.loads(child.stdout.strip().splitlines()[-1])
  largest = written["largest_tensor_bytes"]
  extra = {phase: measured[f"{phase}_peak_rss"] - measured["baseline_rss"] -
           measured["param_bytes"] for phase in ("stream", "save")}
  result = {
      "shape": shape, "param_dtype": args.param_dtype, "file_dtype": "bfloat16",
      **written, **measured,
      "memory_method": "/proc/self/status VmRSS (baseline) and VmHWM (peak), reset between "
                       "phases with /proc/self/clear_refs",
      "extra_bytes": extra,
      "extra_over_largest_tensor": {k: v / largest for k, v in extra.items()},
      "goal": "extra host memory <= 1 x the largest tensor in every phase",
      "goal_met": all(v / largest <= 1.0 for v in extra.values()),
      "import_gb_per_second": written["file_bytes"] / measured["total_seconds"] / 1e9,
      "host": {"cpus": os.cpu_count(), "machine": platform.machine(),
               "load_average": os.getloadavg()},
  }
  text = json.dumps(result, indent=1)
  print(text)
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, "w") as f:
    f.write(text + "\n")


if __name__ == "__main__":
  main()
