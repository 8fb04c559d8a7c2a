"""What a command that reads a checkpoint is told about its network, as gin files say it.

`infer`, `serve`, `capability` and `compile` (with CHECKPOINT_PATH) take one `GivenModel`
argument, and their run files show where each part comes from:

  # gin/models/tiny.gin: the network this file describes, for a checkpoint to be checked
  # against (a checkpoint without metadata needs it whole).
  given_model.GivenModel.config = @config.TransformerConfig()

  # gin/runs/infer.gin (and serve.gin, capability.gin, compile.gin):
  infer.infer.model = @given_model.GivenModel()
  given_model.GivenModel.overrides = %MODEL_OVERRIDES    # {} unless the user sets it

`metadata.resolve_model` checks both against the checkpoint's own description. Nothing
here asks gin which fields were bound: the command gets values, so a binding that no
command reads cannot change what it runs unseen.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Mapping

from annotanchor.errors import SettingError
from annotanchor.model.config import TransformerConfig

FIELDS = tuple(f.name for f in dataclasses.fields(TransformerConfig))


@dataclasses.dataclass(frozen=True, kw_only=True)
class GivenModel:
  """The network settings given with a checkpoint.

  Attributes:
    config: a whole network (a gin/models/ file's TransformerConfig, with any
      `--gin.config.TransformerConfig.x=...` applied), or None: the checkpoint's.
    overrides: TransformerConfig fields to set over the checkpoint's network (the
      MODEL_OVERRIDES macro), e.g. {'max_len': 128}.
  """
  config: TransformerConfig | None = None
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.config is not None and not isinstance(self.config, TransformerConfig):
      raise SettingError(f"GivenModel.config={self.config!r}: expected a TransformerConfig "
                         "(a gin/models/ file binds it) or None")
    if not isinstance(self.overrides, Mapping):
      raise SettingError(f"MODEL_OVERRIDES={self.overrides!r}: expected a dict of "
                         "TransformerConfig fields, e.g. {'max_len': 128}")
    for name in self.overrides:
      if name not in FIELDS:
        close = difflib.get_close_matches(str(name), FIELDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SettingError(f"MODEL_OVERRIDES={dict(self.overrides)!r}: {name!r} is no "
                           f"TransformerConfig field{hint}")

  def requested(self) -> dict[str, tuple[str, Any]]:
    """Each field the user set -> (the setting that set it, for messages; its value):
    every field of `config`, then `overrides` over them."""
    fields = {}
    if self.config is not None:
      fields = {name: (f"TransformerConfig.{name}", value)
                for name, value in dataclasses.asdict(self.config).items()}
    for name, value in self.overrides.items():
      fields[name] = (f"MODEL_OVERRIDES[{name!r}]", value)
    return fields
