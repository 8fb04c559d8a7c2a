"""storyworld: the synthetic corpus that lets the method run and be measured on a CPU.

Importing this package registers (corpus generated lazily, on first use):

  storyworld_pretrain                        annotated pretraining
  storyworld_pretrain_plain                  its plain twin
  storyworld_annotation_only                 annotation-only, pretraining form
  storyworld_annotation_only_sft_context     annotation-only, SFT-context form
  storyworld_sft                             standard SFT
  storyworld_sft_anchored                    anchored SFT
  storyworld_anchored_sft_mixture            anchored SFT + annotation-only
  storyworld_eval_prompts                    held-out prompts (`targets` is the
                                             model prompt, no EOS, weight 0)

Knobs: `StoryworldConfig.*`, `cache_dir.path`, `vocab_size.size`, and those of
`annotanchor.data.preprocessors` / `registration.AnchoredMixtureRates`.
"""
from tasks.storyworld.tasks import register

register()
