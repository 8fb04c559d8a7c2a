"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
import os
import tempfile
from typing import Union


def write_atomic(path: str, data: Union[str, bytes]) -> None:
  """Writes `data` to `path` through a temporary file in the same folder and a rename.

  Args:
    path: destination file; its folder is created when missing.
    data: text (written as UTF-8) or bytes.
  """
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  payload = data.encode("utf-8") if isinstance(data, str) else data
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(payload)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
