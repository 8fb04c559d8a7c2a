"""`annotanchor scale` / `python -m annotanchor.scale`: the scale trend from one report per size.

  annotanchor scale --gin_file=gin/runs/scale.gin --gin.OUTPUT_DIR="'runs/experiments/scale'" \
      --gin.REPORTS="{'tiny': 'runs/experiments/size_tiny/report_model_size/report.json',
                      'demo': 'runs/demo/report/report.json', ...}"

Reads each size's `annotanchor evaluate` report (a model_size_sweep.gin pipeline each) and
writes OUTPUT_DIR/scale.json (one row per size, the reports' estimates with their
intervals), scale.md (the table, also printed) and scale.png (collapse and gap closed by
size), each atomically (annotanchor/evaluation/scale.py). See gin/runs/scale.gin.
"""
from __future__ import annotations

if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.scale")

import json
import os
from typing import Mapping, Sequence

import gin

from annotanchor import gin_utils
from annotanchor.atomic_files import write_atomic
from annotanchor.evaluation import plots
from annotanchor.evaluation import scale as scale_lib


def _read_report(size: str, path: str) -> dict:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except FileNotFoundError:
    raise scale_lib.ScaleError(f"REPORTS[{size!r}]: {path} does not exist") from None
  except OSError as e:
    raise scale_lib.ScaleError(f"REPORTS[{size!r}]: {path} cannot be read ({e.strerror})") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise scale_lib.ScaleError(f"REPORTS[{size!r}]: {path} is not JSON ({e})") from None


@gin.configurable
def scale(*, reports: Mapping[str, str] = gin.REQUIRED,
          output_dir: str = gin.REQUIRED) -> Sequence[dict]:
  """Writes the scale table and plot; returns its rows.

  Args:
    reports: size label (e.g. "tiny (0.1M)") -> report.json, smallest first.
    output_dir: gets scale.json, scale.md and scale.png.
  """
  if not isinstance(reports, Mapping) or not reports:
    raise scale_lib.ScaleError(f"REPORTS={reports!r}: expected a dict of size label -> report.json")
  rows = scale_lib.scale_rows({size: _read_report(size, path) for size, path in reports.items()})
  os.makedirs(output_dir, exist_ok=True)
  write_atomic(os.path.join(output_dir, "scale.json"),
               json.dumps({"reports": dict(reports), "rows": rows}, indent=1) + "\n")
  table = scale_lib.scale_markdown(rows)
  write_atomic(os.path.join(output_dir, "scale.md"), table)
  plots.scale_trend(rows, os.path.join(output_dir, "scale.png"))
  print(table)
  return rows


def main(argv: Sequence[str] | None = None) -> int:
  """`annotanchor scale` with gin flags."""
  return gin_utils.run_main("scale", scale, argv, doc=__doc__)
