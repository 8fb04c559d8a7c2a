"""One template per corpus: registered with its tasks, recorded in checkpoints, read back by
`infer` and recorded in the samples, for a corpus written in other delimiters (`[[ ]]`)."""
import json

import pytest
import seqio
import tensorflow as tf

from annotanchor.data import registration, validated, vocabulary
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.prompts import PromptTemplate, marker_symbols
from annotanchor.errors import SettingError
from annotanchor.evaluation.samples import read_samples
from annotanchor.training import metadata
from tests.faults.conftest import infer_anchored, run, write_corpus_gin

BRACKETS = PromptTemplate(annotation_format=AnnotationFormat("[[", "]]"))
DOC = {"text": "The waves rolled in.\n\nThe gulls cried.",
       "annotations": ["[[ topic:sea ]]", "[[ topic:birds ]]"]}
SFT = {"prompt": "Tell a story.", "response": "The sea was calm.", "annotation": "[[ topic:sea ]]"}


def _source(records, convert):
  examples = [convert(r, f"record {i}") for i, r in enumerate(records)]
  signature = {k: tf.TensorSpec([None] if isinstance(v, list) else [], tf.string)
               for k, v in examples[0].items()}
  return seqio.FunctionDataSource(
      lambda split, shuffle_files, seed=None: tf.data.Dataset.from_generator(
          lambda: iter(examples), output_signature=signature), splits=["train"])


@pytest.fixture(scope="module")
def brackets_tasks():
  fmt = BRACKETS.annotation_format
  vocab = seqio.ByteVocabulary()
  registration.register_document_tasks("brk", _source([DOC], validated.Documents(fmt)), vocab,
                                       BRACKETS)
  registration.register_sft_tasks("brk", _source([SFT], validated.SftExamples(fmt)), vocab,
                                  BRACKETS)
  registration.register_anchored_mixture("brk", registration.AnchoredMixtureRates())
  registration.register_sft_tasks("std", _source([{**SFT, "annotation": "<ann> topic:sea </ann>"}],
                                                 validated.SftExamples(AnnotationFormat())),
                                  vocab, PromptTemplate())
  return vocab


def _first_text(task_name, vocab):
  ds = seqio.get_mixture_or_task(task_name).get_dataset(
      {"targets": 128}, split="train", shuffle=False, seed=0)
  return vocab.decode(next(ds.as_numpy_iterator())["targets"].tolist())


def test_the_tasks_lay_out_and_report_their_corpus_template(brackets_tasks):
  assert registration.task_template("brk_pretrain") == BRACKETS
  assert registration.task_template("brk_anchored_sft_mixture") == BRACKETS
  assert registration.task_template("std_sft_anchored") == PromptTemplate()
  assert registration.task_template("synthetic_tokens") == PromptTemplate()
  assert _first_text("brk_pretrain", brackets_tasks).startswith("[[ topic:sea ]] The waves")
  anchored = _first_text("brk_sft_anchored", brackets_tasks)
  assert "[[ topic:sea ]] The sea was calm." in anchored and "<ann>" not in anchored


def test_a_mixture_of_two_templates_is_refused(brackets_tasks):
  if "mixed_templates" in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove("mixed_templates")
  seqio.MixtureRegistry.add("mixed_templates", [("brk_sft_anchored", 1.0),
                                                ("std_sft_anchored", 1.0)])
  with pytest.raises(SettingError, match="registered with different prompt templates"):
    registration.task_template("mixed_templates")


def test_train_records_the_corpus_template_and_infer_samples_in_it(tmp_path):
  """As processes: a JsonlCorpus in `[[ ]]` trains; the checkpoint names the template;
  infer with only CHECKPOINT_PATH samples in it and records the format with every sample."""
  spm = vocabulary.train_sentencepiece(
      (DOC["text"].split("\n\n") + DOC["annotations"] + [SFT["prompt"]]) * 20,
      str(tmp_path / "spm.model"), vocab_size=300,
      user_defined_symbols=marker_symbols(BRACKETS))
  docs = tmp_path / "docs.jsonl"
  docs.write_text("".join(json.dumps(DOC) + "\n" for _ in range(8)))
  corpus_gin = write_corpus_gin(
      tmp_path / "corpus.gin", vocabulary_path=spm, name="brk",
      documents={"train": str(docs)}, cache_dir=str(tmp_path / "cache"),
      lines=["from annotanchor.data import annotations", "from annotanchor.data import prompts",
             "brk/registration.JsonlCorpus.template = @prompts.PromptTemplate()",
             "prompts.PromptTemplate.annotation_format = @annotations.AnnotationFormat()",
             "annotations.AnnotationFormat.open = '[['",
             "annotations.AnnotationFormat.close = ']]'"])
  model_dir = tmp_path / "run"
  trained = run(["train", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/pretrain.gin",
                 f"--gin_file={corpus_gin}", f"--gin.MODEL_DIR='{model_dir}'",
                 "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=2",
                 "--gin.TASK_FEATURE_LENGTHS={'targets': 64}",
                 "--gin.MIXTURE_OR_TASK_NAME='brk_pretrain'", "--gin.VOCAB_SIZE=512"],
                timeout=300)
  assert trained.returncode == 0, trained.stderr[-3000:]
  saved, _ = metadata.read_metadata(str(model_dir))
  assert saved.template == BRACKETS

  prompts = tmp_path / "prompts.jsonl"
  prompts.write_text(json.dumps({"id": "p0", "prompt": "Tell a story."}) + "\n")
  out = tmp_path / "samples"
  sampled = infer_anchored(str(model_dir), out, str(prompts), tokens=4)
  assert sampled.returncode == 0, sampled.stderr[-3000:]
  samples = read_samples(str(out / "samples.jsonl"))
  assert [s.decoding["annotation_format"] for s in samples] == [{"open": "[[", "close": "]]"}] * 2
  assert all(s.annotation.startswith("[[") for s in samples)
