"""Atomic file writes: a reader sees the old file (or directory) or the new one, never half.

Every write that must not be seen half-done goes through here (tests/test_layering.py
refuses a temporary-and-rename written anywhere else): the content goes to a temporary
name beside the destination, which is then renamed over it. A failure removes the
temporary and leaves the destination as it was.

Local paths use `os` and are flushed to disk before the rename; a path with a scheme
(`gs://...`) goes through `tf.io.gfile`, imported only then, so the commands that never
write remotely do not load TensorFlow for it.
"""
import json
import os
import shutil
import uuid
from typing import Any, Callable, Union


def _is_remote(path: str) -> bool:
  return "://" in path


def _temporary_name(path: str) -> str:
  """A fresh name beside `path`: `.NAME.<random>.tmp` (hidden, and never a reader's glob)."""
  folder, name = os.path.split(path)
  return os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")


def _fsync(path: str) -> None:
  """Flushes a local file's data to disk, so the rename never publishes an empty file."""
  if os.path.isfile(path):
    fd = os.open(path, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)


def write_with(path: str, write: Callable[[str], Any]) -> None:
  """Calls `write(temporary)` to produce the content, then renames it to `path`.

  The streaming form: `write` opens the temporary path itself (a TFRecord writer, a
  tensor-by-tensor safetensors writer, a directory it fills). An existing file at `path`
  is replaced; an existing directory only when it is empty (a non-empty one raises
  OSError, which a caller racing another writer of the same content may ignore).

  Args:
    path: destination, local or any tf.io.gfile path; its folder is created when missing.
    write: fills the temporary path given to it (a file, or a directory it creates).
  """
  folder = os.path.dirname(path) or "."
  tmp = _temporary_name(path)
  if _is_remote(path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    tf.io.gfile.makedirs(folder)
    try:
      write(tmp)
      tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
      if tf.io.gfile.exists(tmp):
        tf.io.gfile.rmtree(tmp) if tf.io.gfile.isdir(tmp) else tf.io.gfile.remove(tmp)
    return
  os.makedirs(folder, exist_ok=True)
  try:
    write(tmp)
    _fsync(tmp)
    os.replace(tmp, path)
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.exists(tmp):
      os.unlink(tmp)


def write_atomic(path: str, data: Union[str, bytes]) -> None:
  """Writes `data` to `path` atomically.

  Args:
    path: destination file, local or any tf.io.gfile path; its folder is created when missing.
    data: text (written as UTF-8) or bytes.
  """
  payload = data.encode("utf-8") if isinstance(data, str) else data

  def write(tmp):
    if _is_remote(tmp):
      import tensorflow as tf  # pylint: disable=g-import-not-at-top

      with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(payload)
    else:
      with open(tmp, "wb") as f:
        f.write(payload)
  write_with(path, write)


def write_json_atomic(path: str, value: Any, **dumps_kwargs) -> None:
  """Writes `json.dumps(value, **dumps_kwargs)` to `path` atomically."""
  write_atomic(path, json.dumps(value, **dumps_kwargs))


def copy_atomic(source: str, path: str) -> None:
  """Copies the file `source` to `path` atomically (either may be a tf.io.gfile path)."""
  if _is_remote(source) or _is_remote(path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    write_with(path, lambda tmp: tf.io.gfile.copy(source, tmp, overwrite=True))
  else:
    write_with(path, lambda tmp: shutil.copyfile(source, tmp))


def publish(staged: str, path: str) -> None:
  """Renames the finished file or directory `staged` to `path` (local paths).

  For a caller that builds several items in one staging directory of its own and moves
  them into place one by one (a MODEL_DIR imported from Hugging Face); a single item is
  `write_with`'s job.
  """
  os.replace(staged, path)

