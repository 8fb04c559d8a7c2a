"""The error policy of the entry points.

`UserError` is bad input or configuration: a file, record or setting the user can fix.
Every entry point prints such an error as one line naming the file, record or setting and
exits with status 2. Any other exception is a bug (ours, or a library's): it propagates
with its traceback, even when it is a `ValueError` raised deep inside JAX.
"""


class UserError(Exception):
  """Bad input or configuration; the message names the file, record or setting at fault."""


class ConfigError(UserError, ValueError):
  """A setting out of its range or not one of its choices; the message names the setting.

  Also a `ValueError`, what such settings raised before.
  """
