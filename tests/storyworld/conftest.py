"""A small storyworld generated into a per-session temporary cache."""
import pytest

from annotanchor.data.registration import AnchoredMixtureRates
from tasks.storyworld import Storyworld, generate


@pytest.fixture(scope="session")
def small_config():
  return generate.StoryworldConfig(seed=5, num_pretrain_docs=400, num_sft_examples=2000,
                                   sft_support=4, sft_skew=1.0, num_eval_prompts=40)


@pytest.fixture(scope="session")
def storyworld_cache(tmp_path_factory, small_config):
  """The storyworld tasks registered for `small_config` in a temp cache; the Storyworld."""
  world = Storyworld(config=small_config, mixture_rates=AnchoredMixtureRates(), vocab_size=512,
                     cache_dir=str(tmp_path_factory.mktemp("cache")))
  world.register()
  return world
