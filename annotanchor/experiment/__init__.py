"""The experiment pipeline (`annotanchor demo`) as typed values.

corpus.Corpus is what a corpus supplies (its tasks, data gin files, build step, labeller,
quality function, capability probes and SFT prompts to sample); steps.TrainRun, steps.Arm and
preference.PreferenceRun (on-policy DPO of a fine-tuned run) are what an experiment adds;
steps.demo_plan turns them into a plan.Plan of plan.Steps (a command, its gin files, its
bindings as name -> value, the steps it reads), each written to OUTPUT_DIR/<step>/step.gin;
runner checks every step's configuration, then runs them, reusing finished ones.
"""
