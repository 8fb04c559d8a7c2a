"""Hugging Face chat templates: the pieces concatenate to what transformers renders (the
reference), the exact token and weight layout with a ChatML template, and refusals."""
import json

import pytest
import tokenizers
import transformers

from annotanchor.data import sources
from annotanchor.data.chat_template import load_chat_template
from annotanchor.data.prompts import PromptTemplate
from annotanchor.errors import SettingError
from tests.data.test_chat_sft import run
from tests.data.test_preprocessors import check, layout

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Tell a story."},
    {"role": "assistant", "content": "Once.", "annotation": "<ann> genre:myth </ann>"},
    {"role": "user", "content": "Again?"},
    {"role": "assistant", "content": "Twice.", "annotation": {"genre": "epic"}},
]


def tokenizer_dir(tmp_path, template=CHATML):
  """A tokenizer directory as transformers writes one: tokenizer.json + tokenizer_config.json."""
  model = tokenizers.models.WordLevel({"[UNK]": 0, "<|im_end|>": 1}, unk_token="[UNK]")
  tok = tokenizers.Tokenizer(model)
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  tok.save(str(tmp_path / "tokenizer.json"))
  (tmp_path / "tokenizer_config.json").write_text(json.dumps({
      "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": template,
      "eos_token": "<|im_end|>", "unk_token": "[UNK]"}))
  return str(tmp_path)


def example(path, messages=MESSAGES):
  return sources.chat_example({"messages": messages}, "chat.jsonl:1", "messages",
                              PromptTemplate(), load_chat_template(path))


def test_pieces_concatenate_to_what_transformers_renders(tmp_path):
  path = tokenizer_dir(tmp_path)
  reference = transformers.AutoTokenizer.from_pretrained(path).apply_chat_template(
      [{"role": m["role"], "content": m["content"]} for m in MESSAGES], tokenize=False)
  ex = example(path)
  plain = [p for p, k in zip(ex["pieces"], ex["kinds"]) if not k.startswith("annotation")]
  assert "".join(plain) == reference


def test_chatml_layout_anchored_and_standard(tmp_path):
  ex = example(tokenizer_dir(tmp_path))
  (anchored,) = run([ex], anchored=True, loss_on="all", key_only_rate=0.0, append_eos=False)
  check(anchored, layout(
      ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nTell a story.<|im_end|>\n"
       "<|im_start|>assistant\n", 0, False),
      ("<ann> genre:myth </ann> ", 0, True),
      ("Once.<|im_end|>\n", 1, False),
      ("<|im_start|>user\nAgain?<|im_end|>\n<|im_start|>assistant\n", 0, False),
      ("<ann> genre:epic </ann> ", 0, True),
      ("Twice.<|im_end|>\n", 1, False), eos=False))
  (standard,) = run([ex], anchored=False, loss_on="last", append_eos=False)
  check(standard, layout(
      ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nTell a story.<|im_end|>\n"
       "<|im_start|>assistant\n", 0, False),
      ("Once.<|im_end|>\n", 0, False),
      ("<|im_start|>user\nAgain?<|im_end|>\n<|im_start|>assistant\n", 0, False),
      ("Twice.<|im_end|>\n", 1, False), eos=False))


def test_a_template_that_rewrites_earlier_turns_is_refused(tmp_path):
  counting = "{{ messages|length }}|" + CHATML
  with pytest.raises(sources.SourceError, match="chat.jsonl:1: .*not render .* continuation"):
    example(tokenizer_dir(tmp_path, counting))


def test_a_template_that_raises_names_the_record(tmp_path):
  strict = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}"
  with pytest.raises(sources.SourceError, match="chat.jsonl:1: .*refused the conversation: no system"):
    example(tokenizer_dir(tmp_path, strict + CHATML))


def test_a_directory_without_a_chat_template(tmp_path):
  (tmp_path / "tokenizer_config.json").write_text("{}")
  with pytest.raises(SettingError, match="holds no chat_template"):
    load_chat_template(str(tmp_path))
  with pytest.raises(SettingError, match="no such file"):
    load_chat_template(str(tmp_path / "missing"))
