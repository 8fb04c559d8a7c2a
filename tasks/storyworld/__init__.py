"""storyworld: the synthetic corpus that lets the method run and be measured on a CPU.

`Storyworld` is the corpus as a typed object (its draw `StoryworldConfig`, vocabulary size,
cache directory and anchored mixture shares). Bound in gin as
`configured_corpora.corpora = [@Storyworld()]` with `Storyworld.config = @StoryworldConfig()`
and `Storyworld.mixture_rates = @AnchoredMixtureRates()` (gin/experiments/storyworld_data.gin),
it is registered by every entry point at start-up, or from Python by `Storyworld(...).register()`:

  storyworld_pretrain                        annotated pretraining
  storyworld_pretrain_plain                  its plain twin
  storyworld_annotation_only                 annotation-only, pretraining form
  storyworld_annotation_only_sft_context     annotation-only, SFT-context form
  storyworld_sft                             standard SFT
  storyworld_sft_anchored                    anchored SFT
  storyworld_anchored_sft_mixture            anchored SFT + annotation-only
  storyworld_eval_prompts                    held-out prompts (`targets` is the
                                             model prompt, no EOS, weight 0)

The corpus files are generated on first use (or by `python -m tasks.storyworld.build`).
Knobs: `Storyworld.*`, `StoryworldConfig.*`, `AnchoredMixtureRates.*`, and those of
`annotanchor.data.preprocessors`.
"""
from tasks.storyworld.generate import StoryworldConfig  # noqa: F401
from tasks.storyworld.tasks import Storyworld, configured  # noqa: F401
