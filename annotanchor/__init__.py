"""annotanchor: annotation-anchored training in JAX (see README.md and docs/design.md)."""

__version__ = "0.1.0"
