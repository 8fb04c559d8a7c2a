"""The typed TrainConfig: what the run files build, and what is refused as it is built."""
import gin
import pytest

from annotanchor import gin_utils, train
from annotanchor.errors import SettingError
from annotanchor.model.config import TransformerConfig
from annotanchor.training.optim import OptimizerConfig
from annotanchor.training.run_config import CheckpointConfig, DataConfig, StepConfig, TrainConfig

RUN = ["--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/sft.gin",
       "--gin.MODEL_DIR='runs/x'", "--gin.MIXTURE_OR_TASK_NAME='synthetic_tokens'",
       "--gin.INITIAL_CHECKPOINT_PATH='runs/base'"]


@pytest.fixture
def parsed():
  def parse(*flags):
    gin.clear_config()
    gin_utils.parse_and_bind([*RUN, *flags], finalize=False)
  yield parse
  gin.clear_config()


def test_the_run_files_build_one_typed_config(parsed):
  parsed("--gin.StepConfig.microbatches=2", "--gin.CheckpointConfig.every=7")
  config = train.configured_run()
  assert config.model_dir == "runs/x" and config.train_steps == 500
  assert isinstance(config.model, TransformerConfig) and config.model.d_model == 64
  assert config.data == DataConfig(mixture_or_task_name="synthetic_tokens",
                                   task_feature_lengths={"targets": 256}, batch_size=16)
  assert config.step == StepConfig(microbatches=2, z_loss=1e-4)
  assert config.checkpoint == CheckpointConfig(every=7, initial_checkpoint_path="runs/base")
  # sft.gin's schedule over pretrain.gin's.
  assert config.optimizer == OptimizerConfig(learning_rate=3e-4, warmup_steps=20,
                                             decay="linear", final_lr_ratio=0.0)
  assert config.mesh == {"data": -1, "fsdp": 1, "model": 1}


def test_overrides_replace_bindings(parsed):
  parsed()
  assert train.configured_run(model_dir="elsewhere").model_dir == "elsewhere"


def test_without_a_model_file_the_model_is_named(parsed):
  gin.clear_config()
  gin_utils.parse_and_bind(RUN[1:], finalize=False)
  with pytest.raises(SettingError, match="TrainConfig.model is not bound: pass a gin/models/"):
    train.configured_run()


def test_without_a_run_file_the_data_is_named(parsed):
  gin.clear_config()
  gin_utils.parse_and_bind(["--gin_file=gin/models/tiny.gin"], finalize=False)
  with pytest.raises(SettingError, match="TrainConfig.model_dir is not bound: set --gin.MODEL_DIR"):
    train.configured_run()
  with pytest.raises(SettingError, match="TrainConfig.data is not bound: pass a gin/runs/ file"):
    train.configured_run(model_dir="x", train_steps=3)


MODEL = TransformerConfig(vocab_size=32, d_model=8, num_layers=1, num_heads=2, num_kv_heads=1,
                          head_dim=4, mlp_dim=16)


def _data(**changes):
  return DataConfig(**{"mixture_or_task_name": "t", "task_feature_lengths": {"targets": 8},
                       "batch_size": 4, **changes})


@pytest.mark.parametrize("build, message", [
    (lambda: _data(batch_size=0), "BATCH_SIZE=0: expected a positive integer"),
    (lambda: _data(batch_size=True), "BATCH_SIZE=True"),
    (lambda: _data(task_feature_lengths={"inputs": 8}), "TASK_FEATURE_LENGTHS="),
    (lambda: _data(task_feature_lengths={"targets": 1}), "lengths >= 2"),
    (lambda: _data(mixture_or_task_name=""), "MIXTURE_OR_TASK_NAME=''"),
    (lambda: StepConfig(nan_policy="never"), "StepConfig.nan_policy='never'"),
    (lambda: StepConfig(loss_normalization="mean"), "StepConfig.loss_normalization='mean'"),
    (lambda: StepConfig(z_loss=-1.0), "StepConfig.z_loss=-1.0"),
    (lambda: CheckpointConfig(keep=0), "CheckpointConfig.keep=0"),
    (lambda: CheckpointConfig(initial_checkpoint_path=""), "INITIAL_CHECKPOINT_PATH=''"),
    (lambda: TrainConfig(model_dir="m", train_steps=0, model=MODEL, data=_data()),
     "TRAIN_STEPS=0"),
    (lambda: TrainConfig(model_dir="m", train_steps=2, model=MODEL, data=_data(),
                         step=StepConfig(microbatches=3)),
     "StepConfig.microbatches=3: expected a positive integer that divides BATCH_SIZE=4"),
    (lambda: TrainConfig(model_dir="m", train_steps=2, model={"d_model": 8}, data=_data()),
     "TrainConfig.model="),
    (lambda: TrainConfig(model_dir="m", train_steps=2, model=MODEL, data=_data(),
                         peak_flops=0), "TrainConfig.peak_flops=0"),
])
def test_a_value_a_run_cannot_use_is_refused_when_built(build, message):
  with pytest.raises(SettingError, match=message.replace("(", r"\(").replace("[", r"\[")):
    build()


def test_configs_are_frozen():
  with pytest.raises(AttributeError):
    StepConfig().microbatches = 2
