"""`import-hf` saves without OCDBT, so Orbax's "nothing to merge" warning is dropped for
that save only; the same warning from any other save still shows."""
import logging

from annotanchor.interchange import import_hf
from annotanchor.training import partitioning
from tests.interchange.conftest import build_hf

_NOTICE = "Skipping merge of OCDBT checkpoints"


def test_the_import_drops_orbaxs_merge_notice_and_only_during_its_save(tmp_path, caplog):
  build_hf("llama", str(tmp_path / "hf"))
  absl_logger = logging.getLogger("absl")
  filters_before = list(absl_logger.filters)
  with caplog.at_level(logging.WARNING):
    import_hf.import_checkpoint(str(tmp_path / "hf"), str(tmp_path / "model"),
                                mesh=partitioning.make_mesh({"data": -1}), log=lambda _: None)
  assert not [r for r in caplog.records if _NOTICE in r.getMessage()]
  assert absl_logger.filters == filters_before
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    absl_logger.warning("[process=0][thread=x] %s: No per-process OCDBT checkpoint subdirs", _NOTICE)
  assert [r for r in caplog.records if _NOTICE in r.getMessage()]
