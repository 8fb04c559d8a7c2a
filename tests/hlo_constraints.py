"""Reading the sharding constraints out of a lowered step's StableHLO text."""
import re

_CONSTRAINT = re.compile(r"sdy\.sharding_constraint [^<]*<@\w+, \[(.*?)\]> : tensor<([^>]*)>")


def sharding_constraints(lowered_text: str) -> set[tuple[str, str]]:
  """(mesh axes per dimension, tensor type) of every sharding constraint, e.g.
  ('{"data","fsdp"},{},{"model"}', '8x16x64xf32')."""
  return {(re.sub(r"\s", "", axes), shape) for axes, shape in _CONSTRAINT.findall(lowered_text)}
