"""The API over a tiny random checkpoint, in process: shapes, options, errors, batching, stop."""
import concurrent.futures
import http.client
import json
import socket
import threading
import urllib.error
import urllib.request

import pytest
import seqio

from annotanchor.data.prompts import PromptTemplate
from annotanchor.decoding.model_sampler import restore_sampler
from annotanchor.serving.batcher import Batcher
from annotanchor.serving.engine import Engine
from annotanchor.serving.protocol import Limits
from annotanchor.serving.server import API, make_server
from tests import random_checkpoint

CFG = random_checkpoint.TINY_BYTES


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  return random_checkpoint.save(str(tmp_path_factory.mktemp("model")), CFG, step=3)


def start(checkpoint, mode, max_batch=4, window_s=0.2):
  sampler, params = restore_sampler(CFG, checkpoint, {"data": 4, "model": 2})
  engine = Engine(sampler, params, seqio.ByteVocabulary(), PromptTemplate(), mode,
                  max_annotation_tokens=6)
  batcher = Batcher(engine.run, max_batch, window_s)
  server = make_server(API(engine, batcher, Limits(model="tiny", max_tokens=64)), port=0)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  return server, batcher, f"http://127.0.0.1:{server.server_address[1]}/v1"


@pytest.fixture(scope="module")
def direct(checkpoint):
  server, batcher, url = start(checkpoint, "direct")
  yield url, batcher
  server.shutdown()
  batcher.close()


def call(url, path, body=None, method=None):
  data = None if body is None else json.dumps(body).encode()
  request = urllib.request.Request(url + path, data=data, method=method,
                                   headers={"Content-Type": "application/json"})
  try:
    with urllib.request.urlopen(request, timeout=300) as r:
      return r.status, json.loads(r.read())
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())


def test_models_completions_and_chat_answer_in_the_api_shapes(direct):
  url, _ = direct
  status, models = call(url, "/models")
  assert status == 200 and models["object"] == "list" and models["data"][0]["id"] == "tiny"
  status, out = call(url, "/completions", {"model": "tiny", "prompt": ["Once", "Twice"], "n": 2,
                                           "max_tokens": 8, "seed": 1})
  assert status == 200 and out["object"] == "text_completion" and out["model"] == "tiny"
  assert out["id"].startswith("cmpl-") and isinstance(out["created"], int)
  assert [c["index"] for c in out["choices"]] == [0, 1, 2, 3]
  assert all(c["finish_reason"] in ("stop", "length") and isinstance(c["text"], str)
             for c in out["choices"])
  usage = out["usage"]
  assert usage["prompt_tokens"] == (1 + 4) + (1 + 5)  # BOS + bytes, per prompt.
  assert 0 < usage["completion_tokens"] <= 4 * 8
  assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
  status, chat = call(url, "/chat/completions", {"messages": [{"role": "user", "content": "Hi"}],
                                                 "max_tokens": 8, "seed": 1, "stop": ["e"]})
  assert status == 200 and chat["object"] == "chat.completion"
  assert chat["id"].startswith("chatcmpl-")
  message = chat["choices"][0]["message"]
  assert message["role"] == "assistant" and "e" not in message["content"]


def test_bad_requests_get_error_shapes_and_statuses(direct):
  url, _ = direct
  cases = [("/completions", {"prompt": "x", "max_tokens": 0}, None, 400, "max_tokens"),
           ("/completions", {"prompt": "x" * 100, "max_tokens": 64}, None, 400, "max_tokens"),
           ("/completions", {"prompt": "x", "model": "other"}, None, 404, "model"),
           ("/embeddings", {"input": "x"}, None, 404, None),
           ("/completions", None, "GET", 405, None)]
  for path, body, method, status, param in cases:
    got, out = call(url, path, body, method)
    assert got == status, (path, body, out)
    assert set(out["error"]) == {"message", "type", "param", "code"} and out["error"]["param"] == param
  got, out = call(url, "/completions", {"prompt": "x" * 100, "max_tokens": 64})
  assert out["error"]["code"] == "context_length_exceeded" and "max_tokens <= 28" in out["error"]["message"]
  request = urllib.request.Request(url + "/completions", data=b"{not json", method="POST")
  with pytest.raises(urllib.error.HTTPError) as e:
    urllib.request.urlopen(request, timeout=60)
  assert e.value.code == 400 and "not valid JSON" in json.loads(e.value.read())["error"]["message"]


def test_concurrent_requests_share_sampler_calls_and_keep_their_samples(direct):
  url, batcher = direct
  body = lambda i: {"prompt": f"Prompt {i}", "max_tokens": 8, "seed": 100 + i, "temperature": 1.0}
  alone = [call(url, "/completions", body(i))[1]["choices"][0]["text"] for i in range(2)]
  calls_before = len(batcher.calls)
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    outs = list(pool.map(lambda i: call(url, "/completions", body(i)), range(8)))
  assert all(status == 200 for status, _ in outs)
  calls = batcher.calls[calls_before:]
  assert sum(calls) == 8 and len(calls) < 8 and max(calls) > 1  # Batched, at most 4 a call.
  # A seeded request's samples do not depend on what shared its batch.
  assert [outs[i][1]["choices"][0]["text"] for i in range(2)] == alone


def test_anchored_mode_returns_or_strips_the_sampled_annotation(checkpoint):
  server, batcher, url = start(checkpoint, "anchored")
  try:
    body = {"prompt": "Tell a story.", "max_tokens": 8, "seed": 3}
    _, kept = call(url, "/completions", {**body, "annotation": "return"})
    _, stripped = call(url, "/completions", body)
    kept, stripped = kept["choices"][0]["text"], stripped["choices"][0]["text"]
    # A random model never closes the annotation: it is closed after 6 drawn tokens.
    assert kept.startswith("<ann>") and "</ann>" in kept and "<ann>" not in stripped
    assert kept.endswith(stripped)
  finally:
    server.shutdown()
    batcher.close()


def test_serve_command_errors_name_the_setting(tmp_path, capsys):
  from annotanchor import serve as serve_lib
  import gin
  def main(*flags):
    try:
      return serve_lib.main(["--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/serve.gin",
                             "--gin.VOCAB_SIZE=264", *flags])
    finally:
      gin.clear_config()
  missing = str(tmp_path / "none")
  assert main(f"--gin.CHECKPOINT_PATH='{missing}'") == 2
  assert f"CHECKPOINT_PATH='{missing}' holds no checkpoint" in capsys.readouterr().err
  assert main(f"--gin.CHECKPOINT_PATH='{missing}'", f"--gin.VOCABULARY_PATH='{missing}'",
              "--gin.ANNOTATION='keep'") == 2
  assert "Limits.annotation='keep': expected one of" in capsys.readouterr().err
  with pytest.raises(FileNotFoundError, match=f"CHECKPOINT_PATH='{missing}' holds no checkpoint"):
    restore_sampler(CFG, missing, {"data": 4, "model": 2})


def test_stop_closes_the_port_and_refuses_requests_on_open_connections():
  server = make_server(API(None, None, Limits(model="m")), port=0)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  port = server.server_address[1]
  kept = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
  kept.request("GET", "/v1/models")
  first = kept.getresponse()
  assert first.status == 200 and first.getheader("Connection") is None
  first.read()
  assert server.stop(timeout_s=10)  # Nothing in flight: returns at once.
  with pytest.raises(ConnectionRefusedError):
    socket.create_connection(("127.0.0.1", port), timeout=10)
  kept.request("GET", "/v1/models")  # A keep-alive connection opened before the stop.
  late = kept.getresponse()
  assert late.status == 503 and late.getheader("Connection") == "close"
  assert "shutting down" in json.loads(late.read())["error"]["message"]
