"""Request validation, chat rendering and stop strings, without a model."""
import re

import pytest

from annotanchor.data.prompts import PromptTemplate
from annotanchor.errors import SettingError
from annotanchor.serving import protocol
from annotanchor.serving.protocol import APIError, Limits

LIMITS = Limits(model="tiny", max_n=4, max_prompts=2, max_tokens=32, default_max_tokens=16)


def error_of(fn, *args):
  with pytest.raises(APIError) as e:
    fn(*args)
  return e.value.status, e.value.body()["error"]


def test_a_valid_completion_request_and_its_defaults():
  r = protocol.parse_completion({"model": "tiny", "prompt": ["a", "b"], "n": 2, "stop": "\n",
                                 "temperature": 0, "seed": 7, "logprobs": None}, LIMITS)
  assert (r.texts, r.n, r.stop, r.temperature, r.seed, r.max_tokens, r.annotation, r.chat) == (
      ("a", "b"), 2, ("\n",), 0.0, 7, 16, "strip", False)
  assert protocol.parse_completion({"prompt": "x"}, LIMITS).seed != \
      protocol.parse_completion({"prompt": "x"}, LIMITS).seed  # Unseeded: fresh samples.


@pytest.mark.parametrize("body, status, param, text", [
    ({"prompt": [1, 2]}, 400, "prompt", "token-id prompts"),
    ({"prompt": ["a", "b", "c"]}, 400, "prompt", "at most 2"),
    ({"prompt": "x", "n": 5}, 400, "n", "'n'=5 is out of range"),
    ({"prompt": "x", "n": True}, 400, "n", "must be an integer"),
    ({"prompt": "x", "temperature": 2.5}, 400, "temperature", "out of range"),
    ({"prompt": "x", "top_p": 0}, 400, "top_p", "0.0 < top_p"),
    ({"prompt": "x", "max_tokens": 33}, 400, "max_tokens", "out of range"),
    ({"prompt": "x", "stop": ["a", ""]}, 400, "stop", "at most 4"),
    ({"prompt": "x", "stream": True}, 400, "stream", "not supported"),
    ({"prompt": "x", "annotation": "keep"}, 400, "annotation", "'return', 'strip'"),
    ({"prompt": "x", "model": "gpt-4"}, 404, "model", "does not exist"),
    (["not", "an", "object"], 400, None, "JSON object"),
])
def test_bad_completion_requests_get_the_api_error_shape(body, status, param, text):
  got_status, error = error_of(protocol.parse_completion, body, LIMITS)
  assert got_status == status and error["param"] == param and text in error["message"]
  assert set(error) == {"message", "type", "param", "code"}
  assert error["type"] == "invalid_request_error"


def test_chat_is_rendered_with_the_sft_template():
  template = PromptTemplate()
  r = protocol.parse_chat({"messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Tell a story."}]}],
      "max_completion_tokens": 5}, LIMITS, template)
  assert r.texts == ("<user> Be brief.\n\nTell a story.\n<assistant>",) and r.max_tokens == 5
  assert protocol.render_chat([{"role": "user", "content": " A dragon. "}], template) == \
      template.build("A dragon.")  # Exactly the SFT prompt.
  assert protocol.render_chat([{"role": "user", "content": "u1"}, {"role": "assistant",
                               "content": "a1"}, {"role": "user", "content": "u2"}], template) \
      == "<user> u1\n<assistant> a1\n<user> u2\n<assistant>"
  for messages, text in [([], "non-empty list"), ([{"role": "tool", "content": "x"}], "role"),
                         ([{"role": "user", "content": "x"}, {"role": "assistant",
                                                              "content": "y"}], "last message")]:
    assert text in error_of(protocol.parse_chat, {"messages": messages}, LIMITS, template)[1][
        "message"]


def test_stop_strings_cut_at_the_earliest():
  assert protocol.apply_stops("a. b\n\nc", ["\n\n", "b"]) == ("a. ", True)
  assert protocol.apply_stops("abc", ["x"]) == ("abc", False)


@pytest.mark.parametrize("fields, message", [
    ({"max_n": 0}, "Limits.max_n=0: expected a positive int"),
    ({"max_tokens": 32}, "Limits.default_max_tokens=64: expected a positive int of at most "
                         "Limits.max_tokens=32"),
    ({"annotation": "keep"}, "Limits.annotation='keep': expected one of"),
    ({"model": ""}, "Limits.model='': expected a non-empty string"),
])
def test_limits_refuse_what_the_server_cannot_use(fields, message):
  with pytest.raises(SettingError, match=re.escape(message)):
    Limits(**fields)
