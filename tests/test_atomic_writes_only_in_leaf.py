"""Temporary-and-rename writes happen only in annotanchor/atomic_files.py (docs/design.md 3.1).

A write that must not be seen half-done goes through the leaf module, so the temporary's
name, the clean-up on failure and the flush before the rename are written once. The check
reads every module of the project with `ast` and refuses any rename call elsewhere:
`os.replace`, and any `.rename(...)` (`os.rename`, `tf.io.gfile.rename`, `Path.rename`).
"""
import ast
import pathlib

PROJECT = pathlib.Path(__file__).resolve().parent.parent
SCANNED = ("annotanchor", "tasks", "benchmarks")
LEAF = "annotanchor/atomic_files.py"
# Renames that publish no write, each with its reason.
NOT_WRITES = {
    "annotanchor/training/checkpoints.py": "moves a damaged checkpoint step aside",
}


def rename_calls(project: pathlib.Path, scanned=SCANNED) -> list[str]:
  """'path:line' of every rename call under project/scanned, outside LEAF and NOT_WRITES."""
  found = []
  for top in scanned:
    for path in sorted((project / top).rglob("*.py")):
      relative = path.relative_to(project).as_posix()
      if relative == LEAF or relative in NOT_WRITES:
        continue
      for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
          continue
        function = node.func
        is_os_replace = (function.attr == "replace" and isinstance(function.value, ast.Name)
                         and function.value.id == "os")
        if function.attr == "rename" or is_os_replace:
          found.append(f"{relative}:{node.lineno}")
  return found


def test_the_check_finds_each_kind_of_rename(tmp_path):
  (tmp_path / "annotanchor").mkdir()
  (tmp_path / "annotanchor" / "writer.py").write_text(
      "import os\nimport tensorflow as tf\n"
      "def save(path, text):\n"
      "  tmp = path + '.tmp'\n"
      "  open(tmp, 'w').write(text)\n"
      "  os.replace(tmp, path)\n"
      "  os.rename(tmp, path)\n"
      "  tf.io.gfile.rename(tmp, path, overwrite=True)\n"
      "  return text.replace('a', 'b')\n")  # A string's replace is no rename.
  (tmp_path / "annotanchor" / "atomic_files.py").write_text("import os\nos.replace('a', 'b')\n")
  assert rename_calls(tmp_path, ("annotanchor",)) == [
      "annotanchor/writer.py:6", "annotanchor/writer.py:7", "annotanchor/writer.py:8"]


def test_no_temporary_and_rename_write_outside_the_leaf_module():
  found = rename_calls(PROJECT)
  assert not found, f"write through annotanchor.atomic_files instead: {found}"


def test_every_allowed_rename_still_exists():
  """An entry of NOT_WRITES whose rename is gone would let a new write in unseen."""
  for relative in NOT_WRITES:
    assert ".rename(" in (PROJECT / relative).read_text(), relative
