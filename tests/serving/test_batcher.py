"""The Batcher with a recording run function: grouping by settings, padding, result routing."""
import pytest

from annotanchor.decoding.generate import DecodeSettings
from annotanchor.serving.batcher import Batcher
from annotanchor.serving.engine import padded_size


def test_requests_group_by_settings_pad_to_the_batch_and_get_their_own_results():
  calls = []
  def run(settings, ids, texts):
    calls.append((settings.temperature, list(ids)))
    return [[f"{settings.temperature}:{text}"] for text in texts]
  batcher = Batcher(run, max_batch=8, window_s=0.3)
  hot, cold = DecodeSettings(temperature=1.0), DecodeSettings(temperature=0.0)
  a = batcher.submit(hot, ["a"], ["A"])
  b = batcher.submit(hot, ["b0", "b1"], ["B0", "B1"])
  c = batcher.submit(cold, ["c"], ["C"])
  assert a.result(60) == [["1.0:A"]] and b.result(60) == [["1.0:B0"], ["1.0:B1"]]
  assert c.result(60) == [["0.0:C"]]
  batcher.close()
  assert calls == [(1.0, ["a", "b0", "b1"] + ["b1"] * 5), (0.0, ["c"])]
  assert batcher.calls == [3, 1]


def test_a_failed_call_fails_its_requests_and_the_batcher_goes_on():
  def run(settings, ids, texts):
    if texts[0] == "bad":
      raise ValueError("sampler broke")
    return [["ok"] for _ in texts]
  batcher = Batcher(run)
  with pytest.raises(ValueError, match="sampler broke"):
    batcher.submit(DecodeSettings(), ["x"], ["bad"]).result(60)
  assert batcher.submit(DecodeSettings(), ["y"], ["good"]).result(60) == [["ok"]]
  batcher.close()


def test_padded_sizes():
  assert [padded_size(n, 8) for n in (1, 2, 7, 8)] == [1, 8, 8, 8]
