"""Helpers that build sample files for the evaluation tests."""
import pytest

from annotanchor.evaluation.samples import Sample, write_samples

DECODING = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "max_new_tokens": 64,
            "mode": "direct", "seed": 0}


def make_samples(arm, responses_by_prompt, annotations_by_prompt=None, mode="direct"):
  """Samples of one arm from {prompt_id: [response, ...]}, decoded in `mode`."""
  out = []
  for pid, responses in responses_by_prompt.items():
    anns = (annotations_by_prompt or {}).get(pid, [""] * len(responses))
    for i, (r, a) in enumerate(zip(responses, anns)):
      out.append(Sample(prompt_id=pid, prompt=f"Tell story {pid}.", annotation=a,
                        response=r, sample_index=i, arm=arm,
                        decoding={**DECODING, "mode": mode}))
  return out


@pytest.fixture
def write_arm(tmp_path):
  def _write(arm, responses_by_prompt, annotations_by_prompt=None, name=None, mode="direct"):
    path = str(tmp_path / (name or f"{arm}.jsonl"))
    write_samples(path, make_samples(arm, responses_by_prompt, annotations_by_prompt, mode))
    return path
  return _write
