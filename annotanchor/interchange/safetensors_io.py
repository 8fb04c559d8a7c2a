"""safetensors files read one tensor at a time and written one tensor at a time.

A checkpoint is either one `model.safetensors` or shards named by
`model.safetensors.index.json` ({"weight_map": {tensor name: shard file}}). The file
format is an 8-byte little-endian header length, a JSON header
({name: {"dtype", "shape", "data_offsets": [begin, end]}}, offsets relative to the byte
after the header) and the raw little-endian data.

Tensors are read with `readinto` into one fresh numpy buffer each, not through
`safetensors.safe_open(...).get_tensor`: that maps the file, and the mapped pages it touches
count in the process's resident memory on top of the copy it returns (two copies of the
tensor instead of one, for as long as the file stays open); and its numpy path has no
bfloat16, the dtype most published checkpoints are in. `safe_open` still validates every
header first (`read_index`), so a file it would refuse is refused here too.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
from typing import Iterable, Iterator

import ml_dtypes
import numpy as np

from annotanchor.atomic_files import write_with
from annotanchor.errors import UserError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
          "BF16": ml_dtypes.bfloat16, "I64": np.int64, "I32": np.int32}
_CODES = {np.dtype(v): k for k, v in DTYPES.items()}


class SafetensorsError(UserError, ValueError):
  """A safetensors checkpoint that is missing, unreadable or not what it claims."""


@dataclasses.dataclass(frozen=True)
class TensorEntry:
  """Where one tensor's bytes are: its file, dtype, shape and byte range in that file."""
  path: str
  dtype: np.dtype
  shape: tuple[int, ...]
  begin: int
  end: int

  @property
  def nbytes(self) -> int:
    return self.end - self.begin


def _read_header(path: str) -> dict[str, TensorEntry]:
  """The tensors of one .safetensors file, from its header."""
  from safetensors import safe_open  # Validates the header as the library does.

  try:
    with safe_open(path, framework="numpy"):
      pass
    with open(path, "rb") as f:
      (length,) = struct.unpack("<Q", f.read(8))
      header = json.loads(f.read(length))
  except (OSError, ValueError, struct.error) as e:  # safetensors raises SafetensorError(Exception).
    raise SafetensorsError(f"{path}: not a readable safetensors file ({e})") from None
  except Exception as e:  # safetensors_rust.SafetensorError has no importable base here.
    if type(e).__name__ != "SafetensorError":
      raise
    raise SafetensorsError(f"{path}: not a readable safetensors file ({e})") from None
  entries = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    if info["dtype"] not in DTYPES:
      raise SafetensorsError(f"{path}: tensor {name!r} has dtype {info['dtype']}; this "
                             f"converter reads {sorted(DTYPES)}")
    begin, end = info["data_offsets"]
    entries[name] = TensorEntry(path, np.dtype(DTYPES[info["dtype"]]), tuple(info["shape"]),
                                8 + length + begin, 8 + length + end)
  return entries


def read_index(directory: str) -> dict[str, TensorEntry]:
  """Every tensor of the checkpoint in `directory` (single file or sharded), by name.

  Raises:
    SafetensorsError: no safetensors checkpoint there, a shard the index names is missing
      or unreadable, or the index and the shards disagree.
  """
  index_path = os.path.join(directory, INDEX_FILE)
  if os.path.exists(index_path):
    try:
      with open(index_path) as f:
        weight_map = json.load(f)["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise SafetensorsError(f"{index_path}: unreadable index ({e})") from None
    entries: dict[str, TensorEntry] = {}
    for shard in sorted(set(weight_map.values())):
      shard_path = os.path.join(directory, shard)
      if not os.path.exists(shard_path):
        raise SafetensorsError(f"{index_path} names the shard {shard}, which is missing")
      entries.update(_read_header(shard_path))
    missing = sorted(set(weight_map) - set(entries))
    if missing:
      raise SafetensorsError(f"{index_path} maps {missing[0]!r} to "
                             f"{weight_map[missing[0]]}, which does not hold it")
    return entries
  single = os.path.join(directory, SINGLE_FILE)
  if os.path.exists(single):
    return _read_header(single)
  raise SafetensorsError(f"{directory} holds neither {SINGLE_FILE} nor {INDEX_FILE}")


def read_tensor(entry: TensorEntry) -> np.ndarray:
  """The tensor's data, read into one new array (its only host copy)."""
  out = np.empty(entry.shape, entry.dtype)
  expected = math.prod(entry.shape) * entry.dtype.itemsize
  if entry.nbytes != expected:
    raise SafetensorsError(f"{entry.path}: a tensor of shape {entry.shape} {entry.dtype} "
                           f"spans {entry.nbytes} bytes, not {expected}")
  with open(entry.path, "rb") as f:
    f.seek(entry.begin)
    if f.readinto(memoryview(out.reshape(-1).view(np.uint8))) != entry.nbytes:
      raise SafetensorsError(f"{entry.path} is truncated")
  return out


def write_file(path: str, specs: Iterable[tuple[str, tuple[int, ...], np.dtype]],
               tensors: Iterator[tuple[str, np.ndarray]],
               metadata: dict[str, str] | None = None) -> None:
  """Writes a .safetensors file tensor by tensor: the header from `specs`, then each array
  of `tensors` (in the same order, same shapes and dtypes) as it comes.

  Written atomically (`atomic_files.write_with`), so a failure leaves no partial `path`.
  """
  specs = list(specs)
  header: dict[str, object] = {"__metadata__": dict(metadata or {"format": "pt"})}
  offset = 0
  for name, shape, dtype in specs:
    size = math.prod(shape) * np.dtype(dtype).itemsize
    header[name] = {"dtype": _CODES[np.dtype(dtype)], "shape": list(shape),
                    "data_offsets": [offset, offset + size]}
    offset += size
  blob = json.dumps(header, separators=(",", ":")).encode()
  blob += b" " * (-len(blob) % 8)  # The data starts 8-byte aligned, as the library writes.

  def write(tmp):
    with open(tmp, "wb") as f:
      f.write(struct.pack("<Q", len(blob)))
      f.write(blob)
      for (name, shape, dtype), (got_name, array) in zip(specs, tensors, strict=True):
        if (got_name != name or tuple(array.shape) != tuple(shape)
            or array.dtype != np.dtype(dtype)):
          raise ValueError(f"write_file: got {got_name} {array.shape} {array.dtype}, expected "
                           f"{name} {shape} {dtype}")
        f.write(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)
  write_with(path, write)
