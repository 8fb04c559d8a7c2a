"""The import graph keeps the layering of docs/design.md (section 2): data flows one way, nothing reaches upward.

Every import in annotanchor/ (module level or inside a function) is read with `ast` and
mapped to its stage package; each stage may import only the stages below it, the leaf
modules (atomic_files, compile_cache, errors, hardware, openai_client, platforms) import no
other part of annotanchor, and no stage imports an entry point or `tasks`.
"""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "annotanchor"
LEAVES = {"atomic_files", "compile_cache", "errors", "hardware", "openai_client", "platforms"}
# Stage -> the stages it may import: those before it in the flow tasks -> data -> model ->
# training -> decoding -> evaluation (docs/design.md section 2), less two: the network knows only
# arrays (model imports no data code), and evaluation works from sample files alone.
ALLOWED = {
    "data": set(),
    "model": set(),
    "training": {"data", "model"},
    "decoding": {"data", "model", "training"},
    "evaluation": {"data"},
    "annotation": {"data", "evaluation"},
    "serving": {"data", "decoding"},
    "tpu": {"model", "training", "decoding"},
    # Checkpoint conversion (Hugging Face <-> MODEL_DIR) sits with the checkpoints: it
    # builds the network's parameter tree and writes training's checkpoints and metadata.
    "interchange": {"data", "model", "training"},
    # The experiment pipeline (`annotanchor demo`) runs the commands as processes: it imports
    # none of the stages.
    "experiment": set(),
}


def _unit(module: str) -> str | None:
  """'annotanchor.data.sources' -> 'data'; 'annotanchor.train' -> 'train'; others None."""
  parts = module.split(".")
  if parts[0] != "annotanchor" or len(parts) == 1:
    return None
  return parts[1]


def _imports(path: pathlib.Path):
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      if node.module == "annotanchor":  # `from annotanchor import gin_utils, errors`
        yield from (f"annotanchor.{alias.name}" for alias in node.names)
      else:
        yield node.module


def _graph() -> dict[str, dict[str, set[str]]]:
  """unit -> imported unit -> the files whose imports make that edge."""
  graph: dict[str, dict[str, set[str]]] = {}
  for path in ROOT.rglob("*.py"):
    source = _unit("annotanchor." + ".".join(path.relative_to(ROOT).with_suffix("").parts))
    for module in _imports(path):
      target = _unit(module) if module.startswith("annotanchor") else (
          "tasks" if module.split(".")[0] == "tasks" else None)
      if target and source and target != source:
        graph.setdefault(source, {}).setdefault(target, set()).add(str(path.relative_to(ROOT)))
  return graph


def test_every_stage_imports_only_the_stages_below_it():
  stages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
  assert stages == set(ALLOWED), "a new stage package needs its row in ALLOWED"
  bad = [f"{source} -> {target} ({sorted(files)})"
         for source, targets in _graph().items() if source in ALLOWED
         for target, files in targets.items()
         if target not in ALLOWED[source] and target not in LEAVES]
  assert not bad, bad


def test_leaf_modules_import_nothing_of_annotanchor_but_leaves():
  graph = _graph()
  bad = {leaf: graph[leaf] for leaf in LEAVES if set(graph.get(leaf, {})) - LEAVES}
  assert not bad, bad


def test_stage_imports_have_no_cycle():
  graph = {s: set(t) & set(ALLOWED) for s, t in _graph().items() if s in ALLOWED}
  done, path = set(), []

  def visit(node):
    assert node not in path, f"import cycle {path[path.index(node):] + [node]}"
    if node in done:
      return
    path.append(node)
    for target in graph.get(node, ()):
      visit(target)
    path.pop()
    done.add(node)
  for node in graph:
    visit(node)
