"""`annotanchor convert import-hf|export-hf` / `python -m annotanchor.convert`: HF checkpoints.

  annotanchor convert import-hf --gin.HF_DIR="'llama-3.2-1b'" --gin.MODEL_DIR="'runs/llama1b'"
  annotanchor convert export-hf --gin.CHECKPOINT_PATH="'runs/llama1b'" --gin.HF_DIR="'out'"

gin/runs/convert.gin (its settings, listed in its header) is included before the given
gin files and flags. Progress goes to stdout, one line per tensor.

export-hf writes the tokenizer the checkpoint was trained with (an imported one as found,
else the vocabulary its metadata records) and its pad/BOS/EOS ids into config.json and
generation_config.json (docs/interchange.md).

Exit status: 0 done, 2 bad configuration or input (an unsupported config.json, a missing
or misshapen tensor, a destination in use, a vocabulary no Hugging Face tokenizer
reproduces): one line naming it, nothing written.
"""
from __future__ import annotations

if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.convert")

import sys
from typing import Mapping

import gin

from annotanchor import gin_utils
from annotanchor.errors import require
# At import: they register gin configurables (PromptTemplate, ...), which must exist
# before gin's config is locked.
from annotanchor.interchange import export_hf as export_lib, import_hf as import_lib
from annotanchor.training import partitioning

CONVERT_GIN = "gin/runs/convert.gin"
DIRECTIONS = ("import-hf", "export-hf")


def _mesh(mesh: Mapping[str, int] | None):
  return partitioning.make_mesh(mesh or {"data": -1})


def _progress(line: str) -> None:
  print(line, flush=True)


@gin.configurable
def import_hf(*, hf_dir: str | None = None, model_dir: str | None = None,
              max_len: int | None = None, param_dtype: str = "float32", dtype: str = "float32",
              scan_layers: bool = False, mesh: Mapping[str, int] | None = None):
  """Imports a Hugging Face causal LM into MODEL_DIR (annotanchor/interchange/import_hf.py).

  Args:
    hf_dir: the Hugging Face model directory.
    model_dir: the run directory to write.
    max_len: decode cache bound (default config.json's max_position_embeddings).
    param_dtype, dtype: storage and compute dtypes recorded in the TransformerConfig.
    scan_layers: store the blocks stacked for nn.scan.
    mesh: degrees per mesh axis the parameters are placed on.
  """
  require(isinstance(hf_dir, str) and bool(hf_dir), "HF_DIR", hf_dir, "a Hugging Face model directory")
  require(isinstance(model_dir, str) and bool(model_dir), "MODEL_DIR", model_dir,
          "the run directory to import into")
  return import_lib.import_checkpoint(hf_dir, model_dir, mesh=_mesh(mesh), max_len=max_len,
                                      dtype=dtype, param_dtype=param_dtype,
                                      scan_layers=scan_layers, log=_progress)


@gin.configurable
def export_hf(*, checkpoint_path: str | None = None, hf_dir: str | None = None,
              hf_source: str | None = None, dtype: str | None = None,
              mesh: Mapping[str, int] | None = None):
  """Exports a checkpoint as a Hugging Face directory (annotanchor/interchange/export_hf.py).

  Args:
    checkpoint_path: a MODEL_DIR, its checkpoints/ directory or a step directory.
    hf_dir: the directory to create.
    hf_source: an imported MODEL_DIR or HF directory whose tokenizer, token ids and
      logit-neutral config.json fields are kept (default the checkpoint's MODEL_DIR). A
      checkpoint trained with another tokenizer, or with none there (trained here from
      scratch), exports the vocabulary it records and the ids it was trained with.
    dtype: the tensors' dtype (default the parameters').
    mesh: degrees per mesh axis the parameters are restored onto.
  """
  require(isinstance(checkpoint_path, str) and bool(checkpoint_path), "CHECKPOINT_PATH",
          checkpoint_path, "a MODEL_DIR, checkpoints/ directory or step directory")
  require(isinstance(hf_dir, str) and bool(hf_dir), "HF_DIR", hf_dir, "the directory to create")
  return export_lib.export_checkpoint(checkpoint_path, hf_dir, mesh=_mesh(mesh), dtype=dtype,
                                      hf_source=hf_source, log=_progress)


def main(argv: list[str] | None = None) -> int:
  """Exit status: 0 done, 2 bad configuration or input."""
  argv = sys.argv[1:] if argv is None else list(argv)
  if not argv or argv[0] not in DIRECTIONS:
    if argv and argv[0] in ("-h", "--help"):
      print(__doc__)
      return 0
    given = repr(argv[0]) if argv else "nothing"
    print(f"annotanchor convert: expected {' or '.join(DIRECTIONS)} first, got {given}",
          file=sys.stderr)
    return 2
  fn = import_hf if argv[0] == "import-hf" else export_hf
  return gin_utils.run_main("convert", fn, [f"--gin_file={CONVERT_GIN}", *argv[1:]], doc=__doc__)
