"""Serving a checkpoint over an OpenAI-compatible HTTP API (`annotanchor serve`).

Modules (one job each):
  protocol  request validation, chat rendering with the SFT template, response and error shapes
  engine    Engine: requests to DecodeSettings, context-length checks, sampling via Generator
  batcher   Batcher: concurrent requests batched into one sampler call
  server    the ThreadingHTTPServer handler: routes, bodies, errors

The `annotanchor serve` entry point (annotanchor/serve.py) loads the checkpoint and wires them.
"""
