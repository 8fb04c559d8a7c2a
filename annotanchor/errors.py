"""The error policy of the entry points.

`UserError` is bad input or configuration: a file, record or setting the user can fix.
Every entry point prints such an error as one line naming the file, record or setting and
exits with status 2. Any other exception is a bug (ours, or a library's): it propagates
with its traceback, even when it is a `ValueError` raised deep inside JAX.
"""


class UserError(Exception):
  """Bad input or configuration; the message names the file, record or setting at fault."""


class SettingError(UserError, ValueError):
  """A setting (gin binding, flag or config field) whose value cannot work; the message
  names it and the value."""


def require(ok: bool, setting: str, value, expected: str) -> None:
  """Raises SettingError("SETTING=VALUE: expected ...") unless `ok`."""
  if not ok:
    raise SettingError(f"{setting}={value!r}: expected {expected}")


def is_count(value, minimum: int = 1) -> bool:
  """Whether `value` is an int (not a bool) of at least `minimum`."""
  return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
