"""`annotanchor serve` / `python -m annotanchor.serve`: a checkpoint behind an OpenAI-compatible API.

  annotanchor serve --gin_file=gin/models/tiny.gin --gin_file=gin/runs/serve.gin \
      --gin.CHECKPOINT_PATH="'runs/tiny_anchored'" --gin.VOCABULARY_PATH="'runs/spm.model'" \
      --gin.PORT=8000

Answers `POST /v1/completions`, `POST /v1/chat/completions` and `GET /v1/models` on
HOST:PORT (PORT 0: a free port), batching concurrent requests into one sampler call. A chat
request is rendered with the SFT prompt template; in the anchored mode the model samples an
annotation first, which the request's `"annotation": "return"` keeps before the text and
`"strip"` (the default) removes. Prints `serving MODEL on http://HOST:PORT/v1` once
listening. SIGTERM or Ctrl-C (SIGINT) stops it: the port is closed, the requests in flight
are answered, exit status 0 (a second signal ends it at once). See gin/runs/serve.gin.
"""
from __future__ import annotations

if __name__ == "__main__":
  from annotanchor.gin_utils import run_module_main
  run_module_main("annotanchor.serve")

import logging
from typing import Mapping, Sequence

import gin
import seqio

from annotanchor import gin_utils
from annotanchor.data.prompts import PromptTemplate
from annotanchor.data.vocabulary import load_vocabulary
from annotanchor.decoding.from_checkpoint import restore_for_sampling
from annotanchor.errors import SettingError
from annotanchor.serving.batcher import Batcher
from annotanchor.serving.engine import Engine
from annotanchor.serving.protocol import Limits
from annotanchor.serving.server import API, make_server
from annotanchor.training.given_model import GivenModel


@gin.configurable
def serve(*, checkpoint_path: str = gin.REQUIRED, model: GivenModel = GivenModel(),
          vocabulary_path: str | None = None, vocabulary: seqio.Vocabulary | None = None,
          host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits(),
          batch_window_s: float = 0.0, mode: str = "anchored", max_annotation_tokens: int = 64,
          annotation_temperature: float = 1.0, mesh: Mapping[str, int] | None = None,
          template: PromptTemplate | None = None) -> None:
  """Serves a checkpoint until SIGTERM or Ctrl-C.

  Args:
    checkpoint_path: a MODEL_DIR, its checkpoints/ directory or a step directory.
    model: a model gin file's network and MODEL_OVERRIDES (serve.gin binds it), checked
      against the checkpoint's (annotanchor/training/given_model.py); default nothing
      given: the checkpoint's network.
    vocabulary_path: a SentencePiece model or a Hugging Face tokenizer (directory or
      tokenizer.json); default the checkpoint's (a given one must be the checkpoint's).
    vocabulary: instead of vocabulary_path, the vocabulary itself (e.g. seqio.ByteVocabulary()).
    host, port: where to listen (port 0: a free one, printed).
    limits: what requests may ask, the model's name, the default of the request option
      "annotation", and the most prompts in one sampler call (gin/runs/serve.gin binds
      it from MODEL_NAME, ANNOTATION and MAX_BATCH).
    batch_window_s: how long a batch waits for more requests after its first (0: it takes
      the requests already waiting, so batches grow only when the model is the bottleneck
      and a lone request waits for nothing).
    mode: "anchored" (sample an annotation, then the response), "direct" or
      "given_annotation" (the empty annotation).
    max_annotation_tokens, annotation_temperature: annotation sampling (anchored mode).
    mesh: degrees per mesh axis; default every device on `data`.
    template: the prompt template; default the checkpoint's.
  """
  if vocabulary is not None and vocabulary_path is not None:
    raise SettingError("set at most one of VOCABULARY_PATH and serve.serve.vocabulary")
  if vocabulary_path is not None:
    vocabulary = load_vocabulary(vocabulary_path)
  setup = restore_for_sampling(checkpoint_path, model=model, vocabulary=vocabulary,
                               template=template, mesh=mesh)
  engine = Engine(setup.sampler, setup.params, setup.vocabulary, setup.template, mode,
                  max_annotation_tokens, annotation_temperature)
  batcher = Batcher(engine.run, limits.max_prompts, batch_window_s)
  api = API(engine, batcher, limits)
  server = make_server(api, host, port)
  bound_host, bound_port = server.server_address[:2]
  name = server.serve_until_signal(
      f"serving {limits.model} on http://{bound_host}:{bound_port}/v1")
  logging.info("stopping: %s", name)
  # Every request is answered within request_timeout_s, if need be with a 500.
  if server.stop(api.request_timeout_s):
    batcher.close()
  else:
    logging.warning("stopped with requests unanswered after %ss", api.request_timeout_s)


def main(argv: Sequence[str] | None = None) -> int:
  return gin_utils.run_main(
      "serve", serve, argv, doc=__doc__)
