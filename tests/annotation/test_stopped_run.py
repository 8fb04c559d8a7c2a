"""`annotanchor annotate` stopped by an endpoint it cannot reach: exit 2, and a summary that
counts the chunks it tried, by cause."""
import json
import socket

from tests.faults.conftest import assert_one_line_error, run


def _closed_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_a_run_stopped_by_an_unreachable_endpoint_records_its_failures_by_cause(tmp_path):
  corpus = tmp_path / "raw.jsonl"
  corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Chunk {i}a.\n\nChunk {i}b."})
                            + "\n" for i in range(6)))
  url = f"http://127.0.0.1:{_closed_port()}/v1"
  result = run(["annotate", "--gin_file=gin/runs/annotate.gin", f"--gin.INPUTS=['{corpus}']",
                f"--gin.OUTPUT_DIR='{tmp_path / 'out'}'", f"--gin.ENDPOINT_URL='{url}'",
                "--gin.DOCS_PER_SHARD=2", "--gin.CONCURRENCY=2",
                "--gin.annotators.RetryPolicy.max_attempts=2",
                "--gin.annotators.RetryPolicy.backoff_s=0.0"], timeout=90)
  assert_one_line_error(result, "annotate", "EndpointError", "cannot reach", url)
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  # How many chunks were in flight when it stopped varies; each one tried failed to connect.
  assert summary["failed"] > 0 and summary["failures"] == {"connection": summary["failed"]}
  assert (summary["chunks"], summary["chunks_written"]) == (summary["failed"], 0)
  assert summary["stopped"].startswith("cannot reach the endpoint")
  assert f"failures: connection {summary['failed']}" in result.stdout
