"""`annotanchor demo` with a bad binding in an experiment, run as a process.

A binding was checked only when its step ran, so a typo in the anchored run's bindings
surfaced after the corpus build and both pretrainings. Now: one line naming the step and
the binding (or the demo setting whose binding is not a gin name), exit 2, in seconds,
before the first step.
"""

import pytest

from tests.faults.conftest import assert_one_line_error, run
from tests.test_demo import tiny_flags

TYPO = {"AnchoredMixtureRates.annotation_only_rat": 0.3}
NOT_A_NAME = {"AnchoredMixtureRates.annotation_only_rate)": 0.3}
SHARED_TYPO = {"StoryworldConfig.num_pretrain_doc": 120}


@pytest.mark.parametrize("anchored_bindings, shared_bindings, needles", [
    (TYPO, {}, ["StepError: step [5/14] fine-tune sft_anchored",
                "binding 'AnchoredMixtureRates.annotation_only_rat=0.3'",
                "doesn't have a parameter named 'annotation_only_rat'"]),
    # Slow: refused as the demo's settings are read, in-process in tests/test_demo.py.
    pytest.param(NOT_A_NAME, {}, [
        "SettingError: demo.plan.anchored_sft_bindings='AnchoredMixtureRates.annotation_only_"
        "rate)': expected gin names as keys"], marks=pytest.mark.slow),
    ({}, SHARED_TYPO, ["StepError: step [1/14] build the corpus",
                       "binding 'StoryworldConfig.num_pretrain_doc=120'",
                       "doesn't have a parameter named 'num_pretrain_doc'"]),
    # Values the corpus cannot use, refused as the configured corpus is built.
    # Slow: the same start-up refusal as bad_draw's, and `train` refuses this rate as a
    # process in tests/faults/test_train_faults.py.
    pytest.param({"AnchoredMixtureRates.annotation_only_rate": 1.5}, {},
                 ["step [5/14] fine-tune sft_anchored", "annotation_only_rate must be in [0, 1]"],
                 marks=pytest.mark.slow),
    ({}, {"StoryworldConfig.sft_support": 99},
     ["step [1/14] build the corpus", "sft_support=99 must be in"]),
], ids=["misspelled", "not_a_name", "demo_bindings", "bad_rate", "bad_draw"])
def test_a_bad_binding_stops_the_demo_before_its_first_step(tmp_path, anchored_bindings,
                                                            shared_bindings, needles):
  experiment = tmp_path / "experiment.gin"
  experiment.write_text("include 'gin/experiments/storyworld_demo.gin'\n"
                        f"ANCHORED_SFT_BINDINGS = {anchored_bindings!r}\n")
  out = tmp_path / "out"
  result = run(["demo", f"--gin_file={experiment}",
                *tiny_flags(out, tmp_path / "cache", shared_bindings)], timeout=120)
  assert_one_line_error(result, "demo", *needles)
  assert "[1/14]" not in result.stdout  # No step started, not even the corpus build.
  assert not out.exists() and not (tmp_path / "cache").exists()
