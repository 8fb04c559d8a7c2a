"""`annotanchor annotate` against a missing or failing endpoint; `annotanchor serve` stopped.

An annotate run that writes nothing (no server at the URL, or every chunk failing) exits 2
after its summary, so a pipeline does not carry on with an empty corpus; one that loses a
few chunks exits 0 and counts them. A server stopped by SIGTERM or SIGINT closes its port,
answers the requests in flight, then exits 0.
"""
import http.client
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from tests import random_checkpoint
from tests.annotation.fake_server import FakeEndpoint
from tests.faults.conftest import ANNOTANCHOR, ENV, REPO, assert_one_line_error, run

FAST_RETRIES = ["--gin.annotators.RetryPolicy.max_attempts=2",
                "--gin.annotators.RetryPolicy.backoff_s=0.0", "--gin.CONCURRENCY=2"]


def _corpus(tmp_path, count=6, **fields):
  path = tmp_path / "raw.jsonl"
  path.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Chunk {i}a.\n\nChunk {i}b.",
                                      **fields}) + "\n" for i in range(count)))
  return str(path)


def _annotate(tmp_path, *extra):
  return run(["annotate", "--gin_file=gin/runs/annotate.gin",
              f"--gin.INPUTS=['{_corpus(tmp_path)}']", f"--gin.OUTPUT_DIR='{tmp_path / 'out'}'",
              "--gin.DOCS_PER_SHARD=2", *FAST_RETRIES, *extra], timeout=90)


def _summary(tmp_path):
  return json.loads((tmp_path / "out" / "summary.json").read_text())


def _closed_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_annotate_against_a_closed_port_stops_at_once_with_exit_2_and_its_summary(tmp_path):
  url = f"http://127.0.0.1:{_closed_port()}/v1"
  start = time.monotonic()
  result = _annotate(tmp_path, f"--gin.ENDPOINT_URL='{url}'")
  line = assert_one_line_error(result, "annotate", "EndpointError", "cannot reach", url)
  assert "Connection refused" in line and time.monotonic() - start < 60
  summary = _summary(tmp_path)
  assert (summary["shards"], summary["chunks_written"]) == (0, 0)  # Stopped in shard 0.
  assert "this run:" in result.stdout and (tmp_path / "out" / "config.gin").exists()


def test_annotate_where_every_chunk_fails_exits_2_naming_the_cause(tmp_path):
  # Records without the metadata fields: every chunk fails, but no endpoint is at fault.
  result = _annotate(tmp_path, "--gin.ANNOTATOR=@annotators.MetadataAnnotator()")
  assert_one_line_error(result, "annotate", "NothingAnnotatedError", "nothing annotated",
                        "missing_metadata 12", str(tmp_path / "out"))
  summary = _summary(tmp_path)
  assert (summary["shards"], summary["chunks"], summary["chunks_written"]) == (3, 12, 0)
  assert "missing_metadata 12" in result.stdout


def test_annotate_with_one_failing_chunk_exits_0_and_counts_it(tmp_path):
  def script(n, prompt):
    return ("status", 500) if "Chunk 3b." in prompt else ("answer", "topic:tide")
  with FakeEndpoint(script) as server:
    result = _annotate(tmp_path, f"--gin.ENDPOINT_URL='{server.url}'")
  assert result.returncode == 0, result.stderr[-3000:]
  assert not result.error_lines("annotate") and "Traceback" not in result.stderr
  summary = _summary(tmp_path)
  assert summary["failures"] == {"server_error": 1}
  assert (summary["documents_written"], summary["chunks_written"]) == (5, 10)


@pytest.fixture(scope="module")
def serve_args(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("serve")
  checkpoint = random_checkpoint.save(str(tmp / "model"), random_checkpoint.TINY_BYTES)
  (tmp / "bytes.gin").write_text("from __gin__ import dynamic_registration\nimport seqio\n"
                                 "from annotanchor import serve\n"
                                 "serve.serve.vocabulary = @seqio.ByteVocabulary()\n")
  return ["serve", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/serve.gin",
          f"--gin_file={tmp / 'bytes.gin'}", f"--gin.CHECKPOINT_PATH='{checkpoint}'",
          "--gin.VOCAB_SIZE=264", "--gin.config.TransformerConfig.max_len=128",
          "--gin.PORT=0", "--gin.MODE='direct'", "--gin.MODEL_NAME='tiny'"]


def _first_line(stream, timeout: float) -> str:
  box = []
  reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
  reader.start()
  reader.join(timeout)
  if not box:
    pytest.fail(f"no line on stdout within {timeout} s")
  return box[0]


def _refused(port: int, within_s: float) -> bool:
  """Whether a new connection to the port is refused within `within_s` seconds."""
  deadline = time.monotonic() + within_s
  while time.monotonic() < deadline:
    try:
      socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):  # Reset: closed while queued.
      return True
    time.sleep(0.05)
  return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_answers_the_requests_in_flight_then_exits_0_on_a_signal(serve_args, tmp_path,
                                                                        signum):
  body = json.dumps({"model": "tiny", "prompt": "Once", "n": 2, "max_tokens": 48}).encode()
  with open(tmp_path / "stderr", "w+") as stderr:
    proc = subprocess.Popen([ANNOTANCHOR, *serve_args], cwd=REPO, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL)
    try:
      line = _first_line(proc.stdout, 120)
      assert line.startswith("serving tiny on http://127.0.0.1:"), (tmp_path / "stderr").read_text()
      port = int(line.rsplit(":", 1)[1].split("/")[0])
      answers = []
      def ask():  # A request the sampler is busy with (its first call compiles).
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
          answers.append((response.status, json.loads(response.read())))
      busy = threading.Thread(target=ask)
      busy.start()
      # A request whose body is still on its way when the signal comes.
      slow = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
      slow.putrequest("POST", "/v1/completions")
      slow.putheader("Content-Type", "application/json")
      slow.putheader("Content-Length", str(len(body)))
      slow.endheaders()
      time.sleep(1.0)
      assert busy.is_alive(), "the request was answered before the signal"
      proc.send_signal(signum)
      assert _refused(port, 10), "the port still takes connections after the signal"
      assert proc.poll() is None, "exited with a request unanswered"
      slow.send(body)
      response = slow.getresponse()
      answers.append((response.status, json.loads(response.read())))
      busy.join(120)
      proc.wait(timeout=60)
    finally:
      proc.kill()
    stderr.seek(0)
    log = stderr.read()
  assert [status for status, _ in answers] == [200, 200], log[-3000:]
  for _, answer in answers:
    assert len(answer["choices"]) == 2
    assert all(c["finish_reason"] in ("stop", "length") for c in answer["choices"])
  assert proc.returncode == 0, log[-3000:]
  assert f"stopping: {signum.name}" in log and "Traceback" not in log, log[-3000:]


def test_serve_on_a_port_in_use_is_one_line_naming_it(serve_args):
  with socket.socket() as busy:
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    args = [a for a in serve_args if not a.startswith("--gin.PORT=")] + [f"--gin.PORT={port}"]
    assert_one_line_error(run(args), "serve", f"PORT={port}", "cannot listen there")


def test_serve_with_a_missing_vocabulary_is_one_line_naming_it(serve_args, tmp_path):
  missing = str(tmp_path / "nowhere.model")
  args = [a for a in serve_args if "bytes.gin" not in a] + [f"--gin.VOCABULARY_PATH='{missing}'"]
  assert_one_line_error(run(args), "serve", missing, "no such file")


def test_annotate_refuses_a_schema_in_other_delimiters_than_it_writes(tmp_path):
  """The files' format and the schema's are one setting; two that differ stop at start-up."""
  brackets = tmp_path / "brackets.gin"
  brackets.write_text("from __gin__ import dynamic_registration\n"
                      "from annotanchor import annotate\n"
                      "from annotanchor.data import annotations\n"
                      "annotate.annotate.annotation_format = @annotations.AnnotationFormat()\n"
                      "annotations.AnnotationFormat.open = '[['\n"
                      "annotations.AnnotationFormat.close = ']]'\n")
  result = _annotate(tmp_path, f"--gin_file={brackets}",
                     f"--gin.ENDPOINT_URL='http://127.0.0.1:{_closed_port()}/v1'")
  assert_one_line_error(result, "annotate", "SettingError", "TagSchema.fmt=",
                        "differs from annotate.annotation_format", "'[['")
  assert not (tmp_path / "out").exists()
