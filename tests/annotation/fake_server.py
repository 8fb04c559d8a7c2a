"""A local OpenAI-compatible server for the annotation tests, failing on purpose.

`FakeEndpoint(script)` serves `/v1/chat/completions` and `/v1/completions` on a loopback
port. `script(n, prompt)` (n: the request's number, from 1) returns what to do:

  ("answer", text)     200 with text as the answer
  ("status", code)     that HTTP status with the API's error shape (429: Retry-After 2)
  ("sleep", seconds)   answer "topic:late" after sleeping (past the client's timeout)
  ("garbage", bytes)   200 with a body that is not the API's JSON
"""
from __future__ import annotations

import http.server
import json
import threading
import time


class FakeEndpoint:

  def __init__(self, script):
    self.script, self.requests, self.lock = script, [], threading.Lock()
    outer = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *args):
        pass

      def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        with outer.lock:
          outer.requests.append(body)
          n = len(outer.requests)
        kind, arg = outer.script(n, prompt)
        if kind == "sleep":
          time.sleep(arg)
          kind, arg = "answer", "topic:late"
        if kind == "status":
          return self._send(arg, json.dumps({"error": {"message": f"failing on purpose ({arg})",
                                                       "type": "server_error", "param": None,
                                                       "code": None}}).encode())
        if kind == "garbage":
          return self._send(200, arg)
        choice = ({"index": 0, "message": {"role": "assistant", "content": arg},
                   "finish_reason": "stop"} if "messages" in body else
                  {"index": 0, "text": arg, "finish_reason": "stop"})
        self._send(200, json.dumps({"id": "x", "object": "chat.completion", "created": 0,
                                    "model": body.get("model", ""), "choices": [choice]}).encode())

      def _send(self, status, payload):
        try:
          self.send_response(status)
          self.send_header("Content-Type", "application/json")
          self.send_header("Content-Length", str(len(payload)))
          if status == 429:
            self.send_header("Retry-After", "2")
          self.end_headers()
          self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # The client timed out and left.
          pass

    self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.server.daemon_threads = True
    self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
    self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

  def __enter__(self):
    self.thread.start()
    return self

  def __exit__(self, *exc):
    self.server.shutdown()
    self.server.server_close()
