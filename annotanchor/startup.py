"""What every `annotanchor` process settles before it imports JAX: the platform JAX starts
(annotanchor/platforms.py) and the persistent compilation cache (annotanchor/compile_cache.py).
Both `annotanchor CMD` (cli.py) and `python -m annotanchor.CMD` (gin_utils.run_module_main)
call `before_jax()`."""
from __future__ import annotations

from annotanchor import compile_cache, platforms


def before_jax() -> None:
  platforms.choose_platform()
  compile_cache.configure()
