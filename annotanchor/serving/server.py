"""The HTTP front: `/v1/completions`, `/v1/chat/completions`, `/v1/models` on a ThreadingHTTPServer.

Each request is handled on its own thread: parsed and validated (`protocol`), checked
against the model's context (`Engine.prompt_tokens`), queued on the Batcher and answered
when its batch is sampled. Errors are answered in the API's error shape with their status
(400 bad request, 404 unknown route or model, 405 wrong method, 413 body too large, 500
sampler failure). On SIGTERM or SIGINT (`Server.serve_until_signal`), `Server.stop` closes
the port and waits for the requests in flight to be answered; a request that arrives on an
open connection after that gets 503.
"""
from __future__ import annotations

import http.server
import json
import logging
import signal
import socket
import threading
import time
from typing import Any

from annotanchor.data.prompts import PromptTemplate
from annotanchor.errors import SettingError
from annotanchor.serving import protocol
from annotanchor.serving.batcher import Batcher
from annotanchor.serving.engine import Engine
from annotanchor.serving.protocol import APIError, Limits

MAX_BODY_BYTES = 4 << 20
ROUTES = {"/v1/completions": "POST", "/v1/chat/completions": "POST", "/v1/models": "GET"}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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
      if self.server.stopping:  # Keep-alive clients: this connection is not reused.
        self.send_header("Connection", "close")
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

    def _handle(self, method: str) -> None:
      if not self.server.begin_request():
        self.close_connection = True
        return self._send(503, APIError(503, "the server is shutting down",
                                        type="server_error").body())
      try:
        self._route(method)
      finally:
        self.server.end_request()

    def do_GET(self):
      self._handle("GET")

    def do_POST(self):
      self._handle("POST")

  return Handler


class Server(http.server.ThreadingHTTPServer):
  """The HTTP server; counts the requests in flight so that `stop` can wait for them."""
  # socketserver's listen backlog of 5 drops the connects of a burst of clients, which the
  # kernel retries only after a second: 8 concurrent annotators stalled ~1 s per burst.
  request_queue_size = 1024
  daemon_threads = True

  def __init__(self, address, handler):
    super().__init__(address, handler)
    self.stopping = False
    self._in_flight = 0
    self._cond = threading.Condition()

  def serve_until_signal(self, announce: str) -> str:
    """Serves on a thread, prints `announce`, waits for SIGTERM or SIGINT; returns its name.

    Call it from the main thread. The handlers do nothing: the C-level handler writes the
    signal's number to a socket (`signal.set_wakeup_fd`) that this thread reads, so no lock
    is taken inside a handler (setting an Event there can deadlock). Afterwards the default
    handlers are back: a second signal ends the process at once.
    """
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno())
    for s in STOP_SIGNALS:
      signal.signal(s, lambda *_: None)
    try:
      threading.Thread(target=self.serve_forever, name="http", daemon=True).start()
      print(announce, flush=True)
      while (number := reader.recv(1)[0]) not in STOP_SIGNALS:
        pass  # Another signal that has a Python handler.
    finally:
      signal.set_wakeup_fd(previous)
      for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_DFL)
      reader.close()
      writer.close()
    return signal.Signals(number).name

  def begin_request(self) -> bool:
    """Counts a request in flight; False (refuse it) once stopping."""
    with self._cond:
      if not self.stopping:
        self._in_flight += 1
      return not self.stopping

  def end_request(self) -> None:
    with self._cond:
      self._in_flight -= 1
      self._cond.notify_all()

  def stop(self, timeout_s: float) -> bool:
    """Closes the port and waits until the requests in flight are answered.

    Call it from another thread than `serve_forever`'s. Returns False if some request was
    still unanswered after `timeout_s` seconds.
    """
    with self._cond:
      self.stopping = True
    self.shutdown()
    self.server_close()
    with self._cond:
      return self._cond.wait_for(lambda: not self._in_flight, timeout_s)


def make_server(api: API, host: str = "127.0.0.1", port: int = 8000) -> Server:
  """A bound (not yet serving) server; port 0 picks a free port (see `server_address`).

  Raises:
    SettingError: the address cannot be bound (in use, not this host's, no permission).
  """
  try:
    return Server((host, port), make_handler(api))
  except OSError as e:
    raise SettingError(f"HOST={host!r} PORT={port}: cannot listen there ({e.strerror})") from None
