"""The HTTP front: `/v1/completions`, `/v1/chat/completions`, `/v1/models` on a ThreadingHTTPServer.

Each request is handled on its own thread: parsed and validated (`protocol`), checked
against the model's context (`Engine.prompt_tokens`), queued on the Batcher and answered
when its batch is sampled. Errors are answered in the API's error shape with their status
(400 bad request, 404 unknown route or model, 405 wrong method, 413 body too large, 500
sampler failure).
"""
from __future__ import annotations

import http.server
import json
import logging
import time
from typing import Any

from annotanchor.data.prompts import PromptTemplate
from annotanchor.serving import protocol
from annotanchor.serving.batcher import Batcher
from annotanchor.serving.engine import Engine
from annotanchor.serving.protocol import APIError, Limits

MAX_BODY_BYTES = 4 << 20
ROUTES = {"/v1/completions": "POST", "/v1/chat/completions": "POST", "/v1/models": "GET"}


class API:
  """What the handler threads share: the engine, the batcher, the limits.

  Args:
    engine: samples the checkpoint.
    batcher: batches the sampling of concurrent requests.
    limits: what requests may ask for.
    request_timeout_s: a request waiting longer for its batch gets a 500.
  """

  def __init__(self, engine: Engine, batcher: Batcher, limits: Limits,
               request_timeout_s: float = 600.0):
    self.engine, self.batcher, self.limits = engine, batcher, limits
    self.request_timeout_s = request_timeout_s
    self.created = int(time.time())

  @property
  def template(self) -> PromptTemplate:
    return self.engine.template

  def complete(self, body: Any, chat: bool) -> dict[str, Any]:
    """The answer to a completion or chat request (raises APIError)."""
    request = (protocol.parse_chat(body, self.limits, self.template) if chat
               else protocol.parse_completion(body, self.limits))
    prompt_tokens = self.engine.prompt_tokens(request)
    ids = [f"{request.seed}:{i}" for i in range(len(request.texts))]
    future = self.batcher.submit(self.engine.settings(request), ids, request.texts)
    try:
      rows = future.result(timeout=self.request_timeout_s)
    except TimeoutError:
      raise APIError(500, f"no answer within {self.request_timeout_s}s", type="server_error")
    except Exception as e:  # The sampler failed: the request gets a 500 in the API's shape.
      raise APIError(500, f"sampling failed: {e}", type="server_error") from None
    choices, completion_tokens = [], 0
    for row in rows:
      for c in row:
        g = c.generation
        text = f"{g.annotation} {g.response}".strip() if request.annotation == "return" \
            else g.response
        text, stopped = protocol.apply_stops(text, request.stop)
        choices.append((text, "stop" if stopped or c.ended else "length"))
        completion_tokens += c.num_tokens
    return protocol.response(request, self.limits.model, choices, prompt_tokens,
                             completion_tokens)


def make_handler(api: API) -> type[http.server.BaseHTTPRequestHandler]:
  """A request handler class bound to `api`."""

  class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # Keep-alive: clients reuse connections.
    server_version = "annotanchor-serve"

    def log_message(self, fmt, *args):
      logging.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
      data = json.dumps(payload).encode("utf-8")
      self.send_response(status)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      self.wfile.write(data)

    def _route(self, method: str) -> None:
      path = self.path.split("?", 1)[0].rstrip("/")
      try:
        if path not in ROUTES:
          raise APIError(404, f"Unknown request URL: {method} {self.path}; this server has "
                         f"{sorted(ROUTES)}", code="unknown_url")
        if ROUTES[path] != method:
          raise APIError(405, f"{path} takes {ROUTES[path]}, not {method}",
                         code="method_not_allowed")
        if path == "/v1/models":
          return self._send(200, protocol.models_response(api.limits.model, api.created))
        self._send(200, api.complete(self._body(), chat=path.endswith("chat/completions")))
      except APIError as e:
        self.close_connection = True  # The body may be unread: do not reuse the connection.
        self._send(e.status, e.body())
      except (BrokenPipeError, ConnectionResetError):
        logging.info("client %s left before its answer", self.address_string())

    def _body(self) -> Any:
      try:
        length = int(self.headers.get("Content-Length", ""))
      except ValueError:
        raise APIError(411, "a Content-Length header is required") from None
      if length > MAX_BODY_BYTES:
        raise APIError(413, f"request body of {length} bytes; at most {MAX_BODY_BYTES}")
      try:
        return json.loads(self.rfile.read(length))
      except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise APIError(400, f"the request body is not valid JSON ({e})") from None

    def do_GET(self):
      self._route("GET")

    def do_POST(self):
      self._route("POST")

  return Handler


class _Server(http.server.ThreadingHTTPServer):
  # socketserver's listen backlog of 5 drops the connects of a burst of clients, which the
  # kernel retries only after a second: 8 concurrent annotators stalled ~1 s per burst.
  request_queue_size = 1024
  daemon_threads = True


def make_server(api: API, host: str = "127.0.0.1", port: int = 8000
                ) -> http.server.ThreadingHTTPServer:
  """A bound (not yet serving) server; port 0 picks a free port (see `server_address`)."""
  return _Server((host, port), make_handler(api))
