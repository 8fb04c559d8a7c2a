"""A small storyworld generated into a per-session temporary cache."""
import gin
import pytest

from tasks.storyworld import generate


@pytest.fixture(scope="session")
def small_config():
  return generate.StoryworldConfig(seed=5, num_pretrain_docs=400, num_sft_examples=2000,
                                   sft_support=4, sft_skew=1.0, num_eval_prompts=40)


@pytest.fixture(scope="session")
def storyworld_cache(tmp_path_factory, small_config):
  """Binds gin so that the registered storyworld tasks use `small_config` in a temp dir."""
  path = tmp_path_factory.mktemp("cache")
  gin.clear_config()
  gin.bind_parameter("cache_dir.path", str(path))
  gin.bind_parameter("vocab_size.size", 512)
  for field in ("seed", "num_pretrain_docs", "num_sft_examples", "sft_support", "sft_skew",
                "num_eval_prompts"):
    gin.bind_parameter(f"StoryworldConfig.{field}", getattr(small_config, field))
  yield path
  gin.clear_config()
