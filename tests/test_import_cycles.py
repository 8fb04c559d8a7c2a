"""No import circle between annotanchor's modules (docs/design.md section 2).

tests/test_layering.py keeps the stages in order; inside a stage two modules could still
import each other, which works only while one of the imports stays hidden in a function.
Every import is read with `ast`, at module level or inside a function, and each edge goes
to the module it names (`from annotanchor.data import vocabulary` names the module
`annotanchor.data.vocabulary`; `from annotanchor.data.vocabulary import x` names it too).
"""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "annotanchor"


def module_graph(package_dir: pathlib.Path) -> dict[str, set[str]]:
  """module -> the modules of the same package it imports (a package is its __init__)."""
  package = package_dir.name
  paths = {}
  for path in package_dir.rglob("*.py"):
    parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
    paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  graph = {}
  for module, path in paths.items():
    named = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        named.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        for alias in node.names:  # `from pkg import mod` names a module, `from mod import f` mod.
          full = f"{node.module}.{alias.name}"
          named.add(full if full in paths else node.module)
    graph[module] = {m for m in named if m in paths and m != module}
  return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import circle `[a, b, ..., a]` of `graph`, or None."""
  done, path = set(), []

  def visit(node):
    if node in path:
      return path[path.index(node):] + [node]
    if node in done:
      return None
    path.append(node)
    for target in sorted(graph.get(node, ())):
      if cycle := visit(target):
        return cycle
    path.pop()
    done.add(node)
    return None
  for node in sorted(graph):
    if cycle := visit(node):
      return cycle
  return None


def _write_package(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
  package = root / "pkg"
  for name, source in {"__init__.py": "", "sub/__init__.py": "", **files}.items():
    (package / name).parent.mkdir(parents=True, exist_ok=True)
    (package / name).write_text(source)
  return package


def test_the_check_finds_a_circle_hidden_inside_a_function(tmp_path):
  package = _write_package(tmp_path, {
      "sub/a.py": "from pkg.sub import b\n",
      "sub/b.py": "def load():\n  from pkg.sub.a import thing\n  return thing\n",
      "c.py": "import pkg.sub.a\n",
  })
  assert find_cycle(module_graph(package)) == ["pkg.sub.a", "pkg.sub.b", "pkg.sub.a"]


def test_the_check_passes_a_tree_without_a_circle(tmp_path):
  package = _write_package(tmp_path, {
      "sub/a.py": "from pkg.sub import b\nimport os\n",
      "sub/b.py": "def load():\n  from pkg import c\n",
      "c.py": "import json\n",
  })
  assert find_cycle(module_graph(package)) is None


def test_annotanchor_modules_import_no_circle():
  cycle = find_cycle(module_graph(ROOT))
  assert cycle is None, f"import circle: {' -> '.join(cycle)}"
