"""Markdown table of `annotanchor compile` JSON results (docs/tpu.md).

  python benchmarks/compile_table.py benchmarks/results/compile_*.json
"""
import json
import sys

GIB = 2**30


def row(result: dict) -> str:
  """One table line: model, slice, mesh, per-chip memory against HBM, roofline, MFU and
  compile wall time (the train step's, then every compile of the entry)."""
  train, *decode = result["steps"]
  model = result["config"].split(" + ")[0].rsplit("/", 1)[-1].removesuffix(".gin")
  mesh = "x".join(f"{k}{v}" for k, v in result["mesh"].items() if v > 1) or "1"
  hbm = f"{train['hbm_bytes_per_chip'] / GIB:.0f}"

  def memory(step):
    if step["memory"] is None:
      return "does not fit (XLA)"
    m = step["memory"]
    verdict = "fits" if step["fits"] else "DOES NOT FIT"
    return (f"{m['total'] / GIB:.2f} / {hbm} GiB ({verdict}; args {m['arguments'] / GIB:.2f}, "
            f"temps {m['temporaries'] / GIB:.2f})")

  cost = train["cost"]
  step_time = (f"{cost['estimated_step_seconds'] * 1e3:.0f} ms ({cost['bound']})"
               if cost else "-")
  mfu = f"{train['mfu']:.0%}" if train["mfu"] is not None else "-"
  decode_cell = memory(decode[0]) if decode else "-"
  compile_time = (f"{train['compile_seconds']:.0f} s (all {result['wall_seconds']:.0f} s)"
                  if train.get("compile_seconds") is not None else "-")
  return (f"| {model} | {result['num_params'] / 1e9:.2f}B | {result['topology']} | {mesh} | "
          f"{result['batch_size']}x{result['length']}, {result['microbatches']} mb | "
          f"{memory(train)} | {step_time} | {mfu} | {decode_cell} | {compile_time} |")


def main(paths: list[str]) -> None:
  print("| model | params | slice | mesh | batch | train step memory per chip | roofline "
        "step time | MFU (upper bound) | decode step memory per chip | train step compile "
        "(wall) |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  results = [json.load(open(p)) for p in paths]
  for result in sorted(results, key=lambda r: (r["num_params"], r["chips"])):
    print(row(result))


if __name__ == "__main__":
  main(sys.argv[1:])
