"""What `annotanchor compile` reports: per-chip memory against HBM, roofline time, MFU.

The estimated step time is a roofline bound from XLA's per-chip cost estimate:
max(FLOPs / peak FLOP/s, HBM bytes / HBM bandwidth). It leaves out collectives over the
interconnect and any stall, so it is a lower bound on the step time and the MFU it implies
(model FLOPs per step / (time x chips x peak)) an upper bound.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from annotanchor.tpu.aot import CompiledStep
from annotanchor.hardware import GIB
from annotanchor.tpu.chips import Topology

# Arrays named in a does-not-fit message.
LARGEST_SHOWN = 5


def step_summary(step: CompiledStep, topology: Topology,
                 model_flops_per_step: float | None = None) -> dict[str, Any]:
  """A JSON-ready summary of one compiled step.

  Args:
    step: the compile result.
    topology: the slice compiled for (chip facts, chip count).
    model_flops_per_step: training FLOPs of the model per step, for MFU (train step only).

  Returns:
    {"step", "fits", "hbm_bytes_per_chip", "memory" (bytes per chip, total included),
     "cost" (per chip, with the roofline estimate), "mfu", "compile_seconds", "arrays"
     (every input array with its sharding), "error"}; memory/cost/mfu are None when XLA
     refused to compile.
  """
  chip = topology.chip
  summary: dict[str, Any] = {"step": step.name, "hbm_bytes_per_chip": chip.hbm_bytes,
                             "memory": None, "cost": None, "mfu": None, "error": step.error,
                             "compile_seconds": step.compile_seconds,
                             "arrays": [dataclasses.asdict(a) for a in step.arrays]}
  if step.memory is not None:
    summary["memory"] = {**dataclasses.asdict(step.memory), "total": step.memory.total}
  summary["fits"] = step.memory is not None and step.memory.total <= chip.hbm_bytes
  if step.cost is not None:
    compute = step.cost.flops / chip.peak_bf16_flops
    memory = step.cost.bytes_accessed / chip.hbm_bandwidth
    seconds = max(compute, memory)
    summary["cost"] = {"flops_per_chip": step.cost.flops,
                       "bytes_accessed_per_chip": step.cost.bytes_accessed,
                       "compute_seconds": compute, "hbm_seconds": memory,
                       "estimated_step_seconds": seconds,
                       "bound": "compute" if compute >= memory else "HBM bandwidth"}
    if model_flops_per_step and seconds > 0:
      summary["mfu"] = model_flops_per_step / (
          seconds * topology.num_chips * chip.peak_bf16_flops)
  return summary


def _gib(n: float) -> str:
  """Bytes in GiB, or MiB below one GiB (small test models)."""
  return f"{n / GIB:.2f} GiB" if abs(n) >= GIB else f"{n / 2**20:.2f} MiB"


def does_not_fit(summary: dict[str, Any], topology: Topology) -> str:
  """One paragraph naming how much over HBM the step is and its largest arrays."""
  hbm = summary["hbm_bytes_per_chip"]
  largest = ", ".join(f"{a['name']} {_gib(a['bytes_per_chip'])} (shape {tuple(a['shape'])}, "
                      f"{a['spec']})" for a in summary["arrays"][:LARGEST_SHOWN])
  if summary["memory"] is not None:
    total = summary["memory"]["total"]
    head = (f"the {summary['step']} step does not fit {topology.name}: it needs "
            f"{_gib(total)} per chip of {_gib(hbm)} HBM ({_gib(total - hbm)} over; "
            f"temporaries {_gib(summary['memory']['temporaries'])})")
  else:
    head = (f"the {summary['step']} step does not fit {topology.name} ({_gib(hbm)} HBM per "
            f"chip): XLA refused to compile it:\n  " + _xla_gist(summary["error"]))
  return f"{head}\n  largest inputs per chip: {largest}"


def _xla_gist(message: str, lines: int = 12) -> str:
  """XLA's out-of-memory message without the stack of C++ frames."""
  kept = [l for l in message.splitlines() if l.strip() and "Source Location" not in l]
  return "\n  ".join(kept[:lines])


def render_text(result: dict[str, Any], topology: Topology) -> str:
  """The terminal report of a whole `annotanchor compile` result."""
  chip = topology.chip
  out = [f"{result['config']} on {topology.name} ({topology.libtpu_name}, {topology.num_chips} "
         f"{chip.name} chips, {_gib(chip.hbm_bytes)} HBM and {chip.peak_bf16_flops / 1e12:.0f} "
         f"TFLOP/s bf16 each), mesh {result['mesh']}",
         f"  train: batch {result['batch_size']} x {result['length']} tokens, "
         f"{result['microbatches']} microbatch(es); model FLOPs/step "
         f"{result['model_flops_per_step']:.3e}"]
  for summary in result["steps"]:
    name = summary["step"]
    if summary["memory"] is None:
      out.append(f"  {name}: DOES NOT FIT\n  " + does_not_fit(summary, topology))
      continue
    m = summary["memory"]
    out.append(
        f"  {name}: {_gib(m['total'])} per chip of {_gib(summary['hbm_bytes_per_chip'])} HBM "
        f"({'fits' if summary['fits'] else 'DOES NOT FIT'}): arguments {_gib(m['arguments'])}, "
        f"outputs {_gib(m['outputs'])} (aliased {_gib(m['aliased'])}), temporaries "
        f"{_gib(m['temporaries'])}, generated code {_gib(m['generated_code'])}; compiled in "
        f"{summary['compile_seconds']:.0f} s")
    if not summary["fits"]:
      out.append("  " + does_not_fit(summary, topology))
    c = summary["cost"]
    if c is not None:
      mfu = f", MFU <= {summary['mfu']:.1%}" if summary["mfu"] is not None else ""
      out.append(
          f"    XLA cost per chip: {c['flops_per_chip']:.3e} FLOPs, "
          f"{c['bytes_accessed_per_chip']:.3e} HBM bytes -> roofline step time "
          f"{c['estimated_step_seconds'] * 1e3:.1f} ms ({c['bound']}-bound; collectives not "
          f"counted){mfu}")
  train = next(s for s in result["steps"] if s["step"] == "train")
  state = [a for a in train["arrays"] if a["name"].startswith("state/")]
  params = sorted((a for a in state if a["name"].startswith("state/params/")),
                  key=lambda a: a["name"])
  moments = [a for a in state if a["name"].startswith("state/opt_state/")]
  per_chip = lambda arrays: _gib(sum(a["bytes_per_chip"] for a in arrays))
  out.append(f"  parameter shardings ({len(params)} arrays, {per_chip(params)} per chip; global "
             f"shape -> per-chip shard, mesh axes per dimension):")
  out += [f"    {a['name'][len('state/params/'):]}: {tuple(a['shape'])} -> "
          f"{tuple(a['shard_shape'])} {a['spec']}" for a in params]
  out.append(f"  optimizer state: {len(moments)} arrays, {per_chip(moments)} per chip; the Adam "
             f"moments take their parameter's sharding (every array and its sharding is in the "
             f"JSON output)")
  if "wall_seconds" in result:
    out.append(f"  all compiles (the cost's loop-free ones included): {result['wall_seconds']:.0f} s "
               f"wall, {result['cpu_seconds']:.0f} s CPU")
  return "\n".join(out)
