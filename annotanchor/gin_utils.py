"""t5x-style gin flags: `--gin_file=` (repeatable), `--gin.NAME=VALUE`, `--gin_search_path=`.

Every entry point parses its command line with `parse_and_bind`, so all of them accept
the same flags as `python -m t5x.train`:

  annotanchor train --gin_file=gin/models/tiny.gin --gin_file=gin/runs/pretrain.gin \
      --gin.MODEL_DIR="'runs/tiny'" --gin.TRAIN_STEPS=20

A gin file, given with `--gin_file` or named by an `include` in another, is looked up as
given (relative to the working directory), then next to the file that includes it, under
each `--gin_search_path` and under the repository root, so `gin/models/tiny.gin` works from
any directory. A configuration gin refuses is one line that starts with the flag, or the
file and line, at fault:

  --gin.TRAIN_STEPZ=5: no configurable or macro named 'TRAIN_STEPZ' (did you mean TRAIN_STEPS?)
  gin/runs/mine.gin:3: include 'gin/runs/nope.gin': no such gin file (searched ...)
"""
from __future__ import annotations

import contextlib
import difflib
import os
import re
import sys
import tokenize  # gin raises its TokenError for an unclosed bracket.
from typing import Any, Callable, Iterator, Sequence

import gin

from annotanchor.atomic_files import write_atomic
from annotanchor.errors import UserError

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class GinFlagError(UserError, ValueError):
  """A gin file or binding given on the command line could not be applied. Its message is
  one line, `WHERE: REASON`: the flag (`--gin.NAME=VALUE`, `--gin_file=F`), gin file and
  line (`F:LINE`) or setting at fault, then what is wrong with it."""

  def __init__(self, reason: str, where: str | None = None):
    super().__init__(f"{where}: {reason}" if where else reason)
    self.where = where
    self.reason = reason


# gin appends the configurable it was calling to an exception's message: a second line,
# "  In call to configurable 'train' (<function train at 0x7f...>)", useless to a user.
_GIN_CALL_SITE = re.compile(r"\n\s*In call to configurable .*$", re.MULTILINE)


def user_message(error: BaseException) -> str:
  """An error's message without the call-site lines that gin adds to it."""
  return _GIN_CALL_SITE.sub("", str(error)).strip()


def split_gin_flags(argv: Sequence[str]) -> tuple[list[str], list[str], list[str], list[str]]:
  """Separates gin flags from the rest of a command line.

  Args:
    argv: command-line arguments, without the program name.

  Returns:
    (gin files, bindings as `NAME=VALUE` strings, search paths, leftover arguments).

  Raises:
    GinFlagError: a gin flag without a value.
  """
  files, bindings, paths, rest = [], [], [], []
  args = list(argv)
  while args:
    arg = args.pop(0)
    name, has_value, value = arg.partition("=")
    if name in ("--gin_file", "--gin_search_path"):
      if not has_value:  # `--gin_file PATH` form.
        value = args.pop(0) if args else ""
      if not value:
        raise GinFlagError("needs a value", name)
      if name == "--gin_file":
        files.append(value)
      else:
        paths.extend(p for p in value.split(",") if p)
    elif arg.startswith("--gin."):
      if not has_value:
        raise GinFlagError("expected --gin.NAME=VALUE", arg)
      bindings.append(arg[len("--gin."):])
    else:
      rest.append(arg)
  return files, bindings, paths, rest


# --- Finding gin files --------------------------------------------------------------------

_SEARCH_PATHS: list[str] = []  # The `--gin_search_path`s of the current parse.
_PARSING: list[str] = []  # The gin files being parsed (resolved paths), the innermost last.


class GinFileNotFoundError(FileNotFoundError):
  """A gin file (given or included) that is in none of the places searched."""

  def __init__(self, path: str, searched: Sequence[str]):
    super().__init__(f"no such gin file (searched {', '.join(searched)})")
    self.path = path


def _display(path: str) -> str:
  """`path` relative to the working directory when it is under it, else absolute."""
  relative = os.path.relpath(path)
  return path if relative.startswith("..") else relative


def _package_file(path: str) -> str | None:
  """gin's other form, `package/sub/file.gin`: file.gin in the directory of the importable
  package `package.sub` (as gin.resource_reader finds it, without its logging)."""
  import importlib.util

  head, name = os.path.split(path)
  if not head or head.startswith((".", "/")):
    return None
  try:
    spec = importlib.util.find_spec(head.replace("/", "."))
  except (ImportError, ValueError, AttributeError):
    return None
  if spec is None or not spec.origin:
    return None
  candidate = os.path.join(os.path.dirname(spec.origin), name)
  return candidate if os.path.isfile(candidate) else None


def resolve_gin_file(path: str) -> str:
  """The gin file `path` names: absolute as it is; relative, the first that exists of
  it in the working directory, next to the file including it, under each search path and
  under the repository root.

  Raises:
    GinFileNotFoundError: in none of them.
  """
  if os.path.isabs(path):
    places = [""]
  else:
    places = [os.getcwd()]
    if _PARSING:
      places.append(os.path.dirname(_PARSING[-1]))
    places += [*_SEARCH_PATHS, _REPO_ROOT]
    places = list(dict.fromkeys(places))
  for place in places:
    candidate = os.path.join(place, path)
    if os.path.isfile(candidate):
      return os.path.abspath(candidate)
  packaged = _package_file(path)
  if packaged:
    return packaged
  raise GinFileNotFoundError(path, [p for p in places if p] or [path])


def _gin_file_exists(path: str) -> bool:
  """gin's existence check: true for every file `resolve_gin_file` finds. A missing one
  raises at once (the readers after this one would log an ERROR line per search path)."""
  resolve_gin_file(path)
  return True


@contextlib.contextmanager
def _read_gin_file(path: str) -> Iterator[Any]:
  """gin's file reader: opens the resolved file and, while gin parses it, makes its
  directory the one its includes are looked up next to."""
  resolved = resolve_gin_file(path)
  with open(resolved) as f:
    _PARSING.append(resolved)
    try:
      yield f
    finally:
      _PARSING.pop()


def _install_file_reader() -> None:
  """Makes `_read_gin_file` gin's first reader.

  gin tries its readers in order for each search prefix, the path as given first; its
  second (gin.resource_reader, for `package/file.gin` resources) logs `ERROR Path not
  found: gin/runs/pretrain.gin` for every repository path tried from another directory,
  before a later prefix finds the file. Ours finds every file first, or stops the search.
  """
  gin.config.register_file_reader(_read_gin_file, _gin_file_exists)
  readers = getattr(gin.config, "_FILE_READERS", None)  # gin has no API to order them.
  if isinstance(readers, list):
    ours = [r for r in readers if r[0] is _read_gin_file]
    readers[:] = ours + [r for r in readers if r[0] is not _read_gin_file]


# --- Parsing, with one-line errors ------------------------------------------------------

# What gin raises for a configuration it refuses.
_GIN_ERRORS = (ValueError, KeyError, OSError, SyntaxError, tokenize.TokenError)
# gin's location lines, innermost first: "\n  In file "F", line N\n    TEXT".
_LOCATION = re.compile(r'\n  In (?:file "(?P<file>[^"]*)", |bindings string )line (?P<line>\d+)'
                       r'\n    (?P<text>[^\n]*)')
_UNKNOWN_MACRO = re.compile(r"No bindings specified for '(?:[^']*/)?(?P<name>[^'/]+)/gin\.macro'")
_REQUIRED = re.compile(r"(?P<name>\S+?)(?:/macro\.value)? set to `%gin\.REQUIRED` but not "
                       r"subsequently overridden")
_MACRO_NAME = re.compile(r"[A-Za-z_]\w*")


def _reason(error: BaseException) -> tuple[str, tuple[str | None, str, str] | None]:
  """(what gin objects to, on one line; (file or None, line, statement) where it is)."""
  if isinstance(error, tokenize.TokenError):
    return f"unclosed bracket or quote ({error.args[0]})", None
  if isinstance(error, SyntaxError) and not _LOCATION.search(str(error)):
    location = None
    if error.lineno is not None:
      location = (error.filename, str(error.lineno), (error.text or "").strip())
    reason = error.msg or str(error)
  else:
    text = str(error)
    found = _LOCATION.search(text)
    location = (found["file"], found["line"], found["text"].strip()) if found else None
    reason = text[:found.start()] if found else text
    if isinstance(error, GinFileNotFoundError):
      reason = error.args[0] if error.args else reason
    elif isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
      reason = error.args[0]
  missing = _NOT_IMPORTED.search(reason)
  if missing:
    name = missing["name"]
    modules = _modules_named(name)
    fix = (f"add `from {modules[0].rpartition('.')[0]} import {name}` to the gin file"
           if len(modules) == 1 else "import it in the gin file")
    reason = f"{name!r} is not imported: {fix}"
  token = re.search(r"Failed to parse token '(.*)'", reason)
  if token:
    reason = (f"cannot parse {token[1]} as a value (a string needs quotes: "
              f"'{token[1]}')")
  macro = _UNKNOWN_MACRO.search(reason)
  if macro:
    reason = f"no macro named {macro['name']!r}"
  lines = [line.strip() for line in reason.strip().splitlines() if line.strip()]
  return (lines[0] if lines else type(error).__name__), location


_NOT_IMPORTED = re.compile(r"'(?P<name>[A-Za-z_]\w*)' was not provided by an import statement")


def _not_imported_by_gin_file(error: NameError) -> bool:
  """Whether `error` is gin's: a gin file under `from __gin__ import dynamic_registration`
  names a module it does not import (`optim.OptimizerConfig.x = 1`, no `from ... import
  optim`). gin raises it with the file and line; a NameError of Python code has neither."""
  return bool(_NOT_IMPORTED.search(str(error)) and _LOCATION.search(str(error)))


def _modules_named(name: str) -> list[str]:
  """annotanchor's modules whose last name is `name` ('optim' -> annotanchor.training.optim)."""
  root = os.path.dirname(os.path.abspath(__file__))
  found = []
  for directory, _, files in os.walk(root):
    if f"{name}.py" in files:
      package = os.path.relpath(directory, os.path.dirname(root)).replace(os.sep, ".")
      found.append(f"{package}.{name}")
  return sorted(found)


def _imported_by_gin_file(error: ImportError) -> bool:
  """Whether `error` is a gin file's own `import`/`from` line naming a missing module."""
  text = str(error)
  missing = re.match(r"No module named '([^']+)'", text)
  found = _LOCATION.search(text)
  return bool(missing and found and re.match(r"(from|import)\s", found["text"].strip())
              and missing[1].rsplit(".", 1)[-1] in found["text"])


def _located(where: str, error: BaseException) -> GinFlagError:
  """A GinFlagError for `error`, raised for `where` (the flag or file at fault): its
  message starts with the gin file and line when gin names one, else with `where`."""
  reason, location = _reason(error)
  if location and location[0]:
    file, line, statement = location
    return GinFlagError(f"{statement}: {reason}" if statement else reason,
                        f"{_display(file)}:{line}")
  return GinFlagError(reason, where)


def _defined_macros(config: str) -> list[str]:
  return re.findall(r"^([A-Za-z_]\w*) = ", config, re.MULTILINE)


def _suggestion(name: str, candidates: Sequence[str]) -> str:
  close = difflib.get_close_matches(name, [c for c in candidates if c != name], n=3)
  return f" (did you mean {' or '.join(close)}?)" if close else ""


_MACRO_REFERENCE = r"%(?:[\w.]+/)*{}(?![\w.])"  # `%NAME` or a scoped `%scope/NAME`.


def _referenced_macros(text: str) -> set[str]:
  return set(re.findall(_MACRO_REFERENCE.format(r"([A-Za-z_]\w*)"), text))


_repository_macros: set[str] | None = None


def _macros_of_the_repository() -> set[str]:
  """The macros some gin file under gin/ reads (cached)."""
  global _repository_macros
  if _repository_macros is None:
    found = set()
    for directory, _, names in os.walk(os.path.join(_REPO_ROOT, "gin")):
      for name in names:
        if name.endswith(".gin"):
          with contextlib.suppress(OSError, UnicodeDecodeError), \
              open(os.path.join(directory, name), encoding="utf-8") as f:
            found |= _referenced_macros(f.read())
    _repository_macros = found
  return _repository_macros


def _check_macro_flags(bindings: Sequence[str]) -> None:
  """A `--gin.NAME=VALUE` whose NAME no gin file reads (`%NAME`), neither one this command
  parsed nor any under gin/, is a typo: gin itself takes it as a new macro and goes on
  without it. (One that only other commands read passes: the demo writes
  `demo.plan.bindings` into the step.gin of every step that reads data.)"""
  macros = [(b, b.partition("=")[0].strip()) for b in bindings]
  macros = [(b, name) for b, name in macros if _MACRO_NAME.fullmatch(name)]
  if not macros:
    return
  config = gin.config_str()
  here = _referenced_macros(config)
  for binding, name in macros:
    if name not in here and name not in _macros_of_the_repository():
      hint = (_suggestion(name, sorted(here))  # Those of this command first.
              or _suggestion(name, sorted(_macros_of_the_repository())))
      raise GinFlagError(f"no configurable or macro named {name!r}{hint}", f"--gin.{binding}")


def _finalize_error(bindings: Sequence[str], error: BaseException) -> GinFlagError:
  """A GinFlagError for a config that parsed but cannot be finalized."""
  text = str(error)
  required = _REQUIRED.search(text)
  if required:
    name = required["name"]
    return GinFlagError(f"required but not set (give --gin.{name}=VALUE)", name)
  macro = _UNKNOWN_MACRO.search(text)
  if macro:
    name = macro["name"]
    users = [b for b in bindings if re.search(_MACRO_REFERENCE.format(re.escape(name)), b)]
    where = f"--gin.{users[0]}" if users else f"%{name}"
    return GinFlagError(
        f"no macro named {name!r}" + _suggestion(name, _defined_macros(gin.config_str())), where)
  return _located("gin configuration", error)


def parse_and_bind(argv: Sequence[str], *, finalize: bool = True) -> list[str]:
  """Applies the gin flags in `argv` and returns the arguments that are not gin flags.

  The gin files are parsed in order (found as the module docstring says), then each
  binding, then gin's config is finalized.

  Raises:
    GinFlagError: one line naming the flag, or the gin file and line, at fault.
  """
  files, bindings, paths, rest = split_gin_flags(argv)
  _install_file_reader()
  _SEARCH_PATHS[:] = [os.path.abspath(p) for p in paths]
  for path in files:
    try:
      gin.parse_config_file(path)
    except _GIN_ERRORS as e:
      raise _located(f"--gin_file={path}", e) from None
    except ImportError as e:
      if not _imported_by_gin_file(e):
        raise  # A module that the gin file's import reached failed: a bug, not a typo.
      raise _located(f"--gin_file={path}", e) from None
    except NameError as e:
      if not _not_imported_by_gin_file(e):
        raise  # Python code that gin ran failed: a bug, not a configuration error.
      raise _located(f"--gin_file={path}", e) from None
  for binding in bindings:
    try:
      gin.parse_config(binding)
    except _GIN_ERRORS as e:
      raise _located(f"--gin.{binding}", e) from None
    except NameError as e:
      if not _not_imported_by_gin_file(e):
        raise
      raise _located(f"--gin.{binding}", e) from None
  _check_macro_flags(bindings)
  if finalize:
    try:
      gin.finalize()
    except _GIN_ERRORS as e:
      raise _finalize_error(bindings, e) from None
  return rest


def write_operative_config(model_dir: str) -> str:
  """Writes gin's operative config (every binding actually used) to MODEL_DIR/config.gin."""
  path = os.path.join(model_dir, "config.gin")
  write_atomic(path, gin.operative_config_str())  # Also on GCS paths, on pods.
  return path


def run_module_main(module_name: str) -> None:
  """Runs `module_name.main()` from its canonical import, then exits.

  `python -m annotanchor.train` executes the file as `__main__`, a second copy of the
  module that gin files (which import `annotanchor.train`) never bind. Each entry point
  calls this at its top under `if __name__ == "__main__":`, before defining anything.
  `-h`/`--help` prints the module's docstring, read from its source (no TF or JAX import);
  otherwise the command runs quiet or verbose (annotanchor/quiet.py).
  """
  import importlib

  from annotanchor import quiet, startup

  if quiet.wants_help(sys.argv[1:]):
    doc = quiet.module_docstring(module_name)
    if doc is not None:
      print(doc)
      sys.exit(0)
  with quiet.command(sys.argv[1:]) as argv:
    sys.argv[1:] = argv  # main() reads sys.argv: without --verbose.
    startup.before_jax()  # Before the module imports JAX.
    code = importlib.import_module(module_name).main()
  sys.exit(code)


def run_main(command: str, fn: Callable[[], Any], argv: Sequence[str] | None, *,
             doc: str | None = None,
             exit_code: Callable[[Any], int] = lambda result: 0, finalize: bool = True) -> int:
  """The shared `main()` of the gin-configured entry points.

  Parses the gin flags, calls `fn()` and turns a `UserError` (bad configuration or input)
  into one line on stderr naming the command, exit status 2. Any other exception is a bug
  and propagates with its traceback (annotanchor/errors.py).

  Args:
    command: subcommand name, for messages ("train").
    fn: the gin-configured entry function, called with no arguments.
    argv: arguments without the program name (default sys.argv[1:]); `--verbose` (or
      ANNOTANCHOR_VERBOSE=1) keeps the libraries' log records (annotanchor/quiet.py).
    doc: printed for -h/--help.
    exit_code: maps fn's result to the exit status.
    finalize: finalize gin's config (False leaves required macros unchecked, for commands
      that read another entry point's bindings and need only some of them).
  """
  from annotanchor import quiet

  argv = sys.argv[1:] if argv is None else list(argv)
  verbose = quiet.verbose_requested(argv)
  argv = quiet.strip_verbose(argv)
  if doc and quiet.wants_help(argv):
    print(doc)
    return 0
  quiet.configure_logging(verbose)
  try:
    rest = parse_and_bind(argv, finalize=finalize)
    if rest:
      raise GinFlagError(f"unexpected arguments {rest}; {command} takes only gin flags")
    result = fn()
  except GinFlagError as e:  # Its message starts with the flag or file at fault.
    print(f"annotanchor {command}: {user_message(e)}", file=sys.stderr)
    return 2
  except UserError as e:
    print(f"annotanchor {command}: {type(e).__name__}: {user_message(e)}", file=sys.stderr)
    return 2
  return exit_code(result)
