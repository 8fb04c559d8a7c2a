"""Standard SFT reads chat (`messages`) and pair (`prompt`/`response`) records with or without
annotations; anchored SFT needs one on every record (assistant message), and says so in one
line naming the record and the field, when its dataset is first built, not at registration.
The two validations of one file are cached apart."""
import hashlib
import json
import os

import pytest
import seqio
import tensorflow as tf

from annotanchor.data import registration, sources, validated, vocabulary
from annotanchor.data.annotations import AnnotationFormat
from annotanchor.data.chat_template import load_chat_template
from annotanchor.data.prompts import PromptTemplate
from tests.data.test_chat_template import tokenizer_dir
from tests.faults.conftest import run, write_corpus_gin

FMT = AnnotationFormat()
TEMPLATE = PromptTemplate()

PAIR = {"prompt": "Tell a story of the sea.", "response": "The waves rolled in.",
        "annotation": "<ann> topic:sea </ann>"}
BARE_PAIR = {"prompt": "Tell a story of the forest.", "response": "Tall trees hid the path."}
CHAT = {"messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Tell a story of the sea."},
    {"role": "assistant", "content": "The waves rolled in.", "annotation": "<ann> topic:sea </ann>"},
    {"role": "user", "content": "And the forest?"},
    {"role": "assistant", "content": "Tall trees hid the path.", "annotation": {"topic": "forest"}}]}


def _bare(record):
  """The chat record without any annotation."""
  return {"messages": [{k: v for k, v in m.items() if k != "annotation"}
                       for m in record["messages"]]}


def _partly(record):
  """The chat record with its first assistant message's annotation only."""
  messages = [dict(m) for m in record["messages"]]
  del messages[4]["annotation"]
  return {"messages": messages}


BARE_CHAT, PARTLY_CHAT = _bare(CHAT), _partly(CHAT)
NEEDS = "the anchored SFT tasks (*_sft_anchored, *_anchored_sft_mixture) need one"
NOT_STANDARD = "the standard SFT task (*_sft) does not"


def _jsonl(path, records):
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  return str(path)


# Pairs.

def test_standard_pairs_read_with_or_without_an_annotation():
  assert sources.sft_example(BARE_PAIR, "sft.jsonl, record 1", FMT, anchored=False) == {
      **BARE_PAIR, "annotation": ""}
  assert sources.sft_example(PAIR, "sft.jsonl, record 1", FMT, anchored=False) == {
      **PAIR, "annotation": "topic:sea"}
  assert sources.sft_example({**BARE_PAIR, "annotation": None}, "w", FMT,
                             anchored=False)["annotation"] == ""


@pytest.mark.parametrize("anchored", [True, False])
def test_a_malformed_pair_annotation_is_refused_by_both(anchored):
  with pytest.raises(sources.SourceError,
                     match=r"^sft\.jsonl, record 3: field 'annotation': annotation does not "
                           r"parse") as e:
    sources.sft_example({**PAIR, "annotation": "topic sea"}, "sft.jsonl, record 3", FMT,
                        anchored=anchored)
  assert "\n" not in str(e.value)


def test_anchored_pairs_need_the_annotation_and_say_why():
  with pytest.raises(sources.SourceError) as e:
    sources.sft_example(BARE_PAIR, "sft.jsonl, record 2", FMT)
  message = str(e.value)
  assert message.startswith("sft.jsonl, record 2: missing field 'annotation'")
  assert NEEDS in message and NOT_STANDARD in message and "\n" not in message
  fields = sources.SftFields(annotation="tags")
  with pytest.raises(sources.SourceError, match="missing field 'tags'.*anchored SFT tasks"):
    sources.sft_example(BARE_PAIR, "w", FMT, fields)


# Chat records.

def _chat(record, anchored, **kwargs):
  return sources.chat_example(record, "chat.jsonl, record 1", "messages", TEMPLATE,
                              anchored=anchored, **kwargs)


def test_standard_chat_reads_bare_partly_and_fully_annotated_conversations():
  full = _chat(CHAT, anchored=False)
  assert full == _chat(CHAT, anchored=True)
  bare = _chat(BARE_CHAT, anchored=False)
  assert not any(k.startswith("annotation") for k in bare["kinds"])
  drop = lambda ex: [p for p, k in zip(ex["pieces"], ex["kinds"])
                     if not k.startswith("annotation")]
  # Without its annotations a conversation is the same text the standard task reads.
  assert drop(full) == bare["pieces"] == drop(_chat(PARTLY_CHAT, anchored=False))
  partly = _chat(PARTLY_CHAT, anchored=False)
  assert partly["pieces"][1:4] == ["<ann>", " topic:", "sea"]
  assert partly["kinds"].count("annotation_value") == 1


def test_anchored_chat_needs_every_annotation_and_says_why():
  for record, index in ((BARE_CHAT, 2), (PARTLY_CHAT, 4)):
    with pytest.raises(sources.SourceError) as e:
      _chat(record, anchored=True)
    message = str(e.value)
    assert message.startswith(f"chat.jsonl, record 1: field 'messages': messages[{index}] "
                              "(assistant) has no 'annotation': ")
    assert NEEDS in message and "assistant message" in message and NOT_STANDARD in message
    assert "\n" not in message


@pytest.mark.parametrize("anchored", [True, False])
def test_a_malformed_chat_annotation_is_refused_by_both(anchored):
  record = json.loads(json.dumps(PARTLY_CHAT))
  record["messages"][2]["annotation"] = "topic sea"
  with pytest.raises(sources.SourceError, match=r"^chat\.jsonl, record 1: field 'messages': "
                                                r"messages\[2\]\.annotation does not parse"):
    _chat(record, anchored=anchored)


def test_standard_chat_in_a_hugging_face_template_reads_bare_turns(tmp_path):
  jinja = load_chat_template(tokenizer_dir(tmp_path))
  bare = _chat(BARE_CHAT, anchored=False, chat_template=jinja)
  assert "".join(bare["pieces"]).count("<|im_start|>assistant") == 2
  assert not any(k.startswith("annotation") for k in bare["kinds"])
  partly = _chat(PARTLY_CHAT, anchored=False, chat_template=jinja)
  assert partly["kinds"].count("annotation_value") == 1
  with pytest.raises(sources.SourceError, match=r"messages\[2\] \(assistant\) has no"):
    _chat(BARE_CHAT, anchored=True, chat_template=jinja)


# Validation cache.

def test_the_two_validations_are_cached_apart(tmp_path):
  path = _jsonl(tmp_path / "sft.jsonl", [PAIR, BARE_PAIR, PAIR])
  cache = str(tmp_path / "cache")
  standard = validated.SftExamples(FMT, anchored=False)
  anchored = validated.SftExamples(FMT)
  out, counts = validated.validated_file(path, standard, cache_dir=cache)
  assert counts == {"kept": 3, "skipped": 0}
  # The standard cache is there; the anchored validation still reads the file anew.
  with pytest.raises(sources.SourceError, match="sft.jsonl, record 2: missing field"):
    validated.validated_file(path, anchored, cache_dir=cache)
  skipped, counts = validated.validated_file(path, anchored, on_error="skip", cache_dir=cache)
  assert counts == {"kept": 2, "skipped": 1} and skipped != out
  assert validated.validated_file(path, standard, cache_dir=cache) == (out, {"kept": 3,
                                                                             "skipped": 0})
  chat = _jsonl(tmp_path / "chat.jsonl", [CHAT])
  keys = {validated._cache_key(chat, validated.ChatExamples(TEMPLATE, anchored=a), "raise")
          for a in (True, False)}
  assert len(keys) == 2


def test_the_anchored_validation_keeps_its_cache_key(tmp_path):
  """Caches written before the standard validation existed are still read."""
  path = _jsonl(tmp_path / "sft.jsonl", [PAIR])
  for convert in (validated.SftExamples(FMT), validated.ChatExamples(TEMPLATE)):
    assert "anchored" not in repr(convert)
    stat = tf.io.gfile.stat(path)
    # The identity `_cache_key` hashed before the standard validation existed.
    identity = {"path": path, "convert": repr(convert), "on_error": "raise",
                "version": validated.CACHE_VERSION, "length": stat.length,
                "mtime_nsec": stat.mtime_nsec}
    legacy = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    assert validated._cache_key(path, convert, "raise") == legacy


# Registered tasks.

@pytest.fixture(scope="module")
def spm(tmp_path_factory):
  texts = [PAIR["prompt"], PAIR["response"], BARE_PAIR["prompt"], BARE_PAIR["response"],
           "Be brief. And the forest? topic:sea topic:forest"]
  path = tmp_path_factory.mktemp("vocab") / "spm.model"
  return vocabulary.train_sentencepiece(texts * 20, str(path), vocab_size=400)


def _register(tmp_path, spm, records, sft_format, name):
  files = _jsonl(tmp_path / f"{name}.jsonl", records)
  corpus = registration.JsonlCorpus(name=name, vocabulary_path=spm, sft={"train": files},
                                    sft_format=sft_format, cache_dir=str(tmp_path / "cache"))
  names = corpus.register()  # Reads no file: a corpus without annotations registers.
  assert not os.path.exists(tmp_path / "cache")
  assert names == [f"{name}_sft", f"{name}_sft_anchored"]
  return files


def _examples(task):
  ds = seqio.get_mixture_or_task(task).get_dataset({"targets": 128}, split="train",
                                                   shuffle=False, seed=0)
  return list(ds.as_numpy_iterator())


@pytest.mark.parametrize("sft_format,records,first_bare", [
    ("pairs", [BARE_PAIR] * 3, 1),
    ("pairs", [PAIR, BARE_PAIR, PAIR], 2),
    ("messages", [BARE_CHAT] * 3, 1),
    ("messages", [CHAT, PARTLY_CHAT, BARE_CHAT], 2),
], ids=["pairs-bare", "pairs-mixed", "messages-bare", "messages-mixed"])
def test_standard_sft_trains_on_what_anchored_sft_refuses(tmp_path, spm, sft_format, records,
                                                          first_bare):
  name = f"opt_{sft_format}_{first_bare}"
  files = _register(tmp_path, spm, records, sft_format, name)
  examples = _examples(f"{name}_sft")
  assert len(examples) == 3
  assert all(not ex["targets_annotation_mask"].any() for ex in examples)
  field = "'annotation'" if sft_format == "pairs" else "messages"
  with pytest.raises(sources.SourceError) as e:
    _examples(f"{name}_sft_anchored")
  message = str(e.value)
  assert message.startswith(f"{files}, record {first_bare}: ") and field in message
  assert NEEDS in message and NOT_STANDARD in message


def test_anchored_sft_reads_a_fully_annotated_corpus(tmp_path, spm):
  _register(tmp_path, spm, [CHAT, CHAT], "messages", "opt_full")
  standard, anchored = _examples("opt_full_sft"), _examples("opt_full_sft_anchored")
  assert len(standard) == len(anchored) == 2
  assert anchored[0]["targets_annotation_mask"].any()
  assert not standard[0]["targets_annotation_mask"].any()


# As a process.

def test_train_runs_standard_chat_sft_on_records_without_annotations(tmp_path, spm):
  corpus = _jsonl(tmp_path / "chat.jsonl", [BARE_CHAT] * 8)
  corpus_gin = write_corpus_gin(
      tmp_path / "corpus.gin", vocabulary_path=spm, sft={"train": corpus},
      sft_format="messages", cache_dir=str(tmp_path / "cache"))
  done = run(["train", "--gin_file=gin/models/tiny.gin", "--gin_file=gin/runs/sft.gin",
              f"--gin_file={corpus_gin}", f"--gin.MODEL_DIR='{tmp_path / 'run'}'",
              "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=2",
              "--gin.TASK_FEATURE_LENGTHS={'targets': 64}", "--gin.MIXTURE_OR_TASK_NAME='user_sft'",
              "--gin.VOCAB_SIZE=512", "--gin.INITIAL_CHECKPOINT_PATH=None"])
  assert done.returncode == 0, done.stderr[-3000:]
  assert os.path.isdir(tmp_path / "run" / "checkpoints" / "2")
  assert "Traceback" not in done.stderr
