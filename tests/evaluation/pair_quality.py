"""The quality function of tests/evaluation/test_on_policy_pairs.py, in a module of its own:
`annotanchor pair` imports it after gin's config is locked, when importing a module that
registers configurables (the test module's imports do) would fail."""


def good_quality(response: str) -> dict:
  """A response passes when it says 'good' (two checks, the minimum wins)."""
  return {"good": response.startswith("good"), "nonempty": bool(response)}
