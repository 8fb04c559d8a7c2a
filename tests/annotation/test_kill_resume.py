"""`annotanchor annotate` killed (SIGKILL) mid-run, then rerun: no chunk lost or duplicated."""
import json
import os
import re
import signal
import subprocess
import sys
import time

from annotanchor.data import sources
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.validated import Documents
from tests.annotation.fake_server import FakeEndpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
NUM_DOCS, DOCS_PER_SHARD = 20, 2


def _answer(n, prompt):
  time.sleep(0.1)
  doc, part = re.search(r"Chunk (\d+)([ab])\.", prompt).groups()
  return ("answer", f"topic:c{doc}{part} genre:test")


def test_killed_run_resumes_without_losing_or_duplicating_a_chunk(tmp_path):
  raw = tmp_path / "raw.jsonl"
  raw.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Chunk {i}a.\n\nChunk {i}b."}) + "\n"
                         for i in range(NUM_DOCS)))
  out = tmp_path / "out"
  with FakeEndpoint(_answer) as server:
    cmd = [sys.executable, "-m", "annotanchor.cli", "annotate", "--gin_file=gin/runs/annotate.gin",
           f"--gin.INPUTS=['{raw}']", f"--gin.OUTPUT_DIR='{out}'",
           f"--gin.ENDPOINT_URL='{server.url}'", "--gin.CONCURRENCY=2",
           f"--gin.DOCS_PER_SHARD={DOCS_PER_SHARD}"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(list(out.glob("*.done"))) < 2 and proc.poll() is None and time.time() < deadline:
      time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr[-2000:]
    finished = len(list(out.glob("*.done")))
    assert 2 <= finished < NUM_DOCS // DOCS_PER_SHARD
    requests_before = len(server.requests)

    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
  # The rerun asked only for the chunks of the shards without a marker.
  unfinished_chunks = 2 * (NUM_DOCS - finished * DOCS_PER_SHARD)
  assert len(server.requests) - requests_before == unfinished_chunks
  docs = list(sources.read_examples([str(out / "annotated-*.jsonl")], Documents(AnnotationFormat())))
  assert [d["chunks"] for d in docs] == [[f"Chunk {i}a.", f"Chunk {i}b."] for i in range(NUM_DOCS)]
  assert [d["annotations"] for d in docs] == [
      [f"topic:c{i}a genre:test", f"topic:c{i}b genre:test"] for i in range(NUM_DOCS)]
  summary = json.loads((out / "summary.json").read_text())
  assert (summary["shards"], summary["chunks_written"], summary["chunks_this_run"],
          summary["failed"]) == (10, 40, unfinished_chunks, 0)
  assert "chunks/s" in done.stdout and "entropy 0.00 bits" in done.stdout  # genre: one value
  assert not [p for p in os.listdir(out) if p.endswith(".tmp")]
