"""Semantic labels from an LLM judge: the paper's labeller for real prompts.

For a response and a list of attributes (summary, character name, location, genre, ...),
the judge is asked for one short value per attribute as a JSON object; each value is
normalised (lower case, words joined by "_", quotes and end punctuation dropped; "none",
"n/a", "" -> unknown) so that "The Glass Harbor." and "glass harbor" are one label.

Answers are cached on disk, one JSON line per (judge, attribute, response), so a
re-evaluation asks nothing twice and a run killed mid-way keeps what it had asked. A
request is made only for the attributes a response still lacks. Requests that fail after
the endpoint's retries, and replies without a usable value, leave the attribute unknown
(not cached) and are counted by cause; if every request fails the run stops with the
cause, as annotate does for an unreachable endpoint.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import re
import threading
from typing import Dict, Mapping, Optional, Sequence, Tuple

from annotanchor.evaluation.judge import JudgeEndpoint, JudgeError
from annotanchor.evaluation.labels import UNKNOWN
from annotanchor.evaluation.progress import Progress

DEFAULT_LABEL_TEMPLATE = (
    "Read the response and give, for each attribute below, its value in the response in "
    "at most three words (\"none\" if the response has none). Reply with one JSON object "
    "mapping each attribute name to its value, and nothing else.\n\n"
    "ATTRIBUTES:\n{attributes}\n\nRESPONSE:\n{response}")
PROMPT_TEMPLATE = "PROMPT:\n{prompt}\n\n"
CACHE_FILE = "judge_labels.jsonl"
_NONE = {"", "none", "n/a", "na", "null", "unknown", "-"}
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def normalise_label(value) -> str:
  """'The Glass Harbor.' -> 'the_glass_harbor'; empty or 'none'-like -> UNKNOWN."""
  if not isinstance(value, (str, int, float)) or isinstance(value, bool):
    return UNKNOWN
  text = str(value).strip().strip("\"'`").rstrip(".!?,;:").strip().lower()
  return UNKNOWN if text in _NONE else "_".join(text.split())


def parse_reply(content: str, attributes: Sequence[str]) -> Dict[str, str]:
  """The normalised values of the reply's JSON object for `attributes` (absent ones left
  out); {} when the reply holds no JSON object."""
  match = _OBJECT.search(content)
  try:
    answer = json.loads(match.group(0)) if match else None
  except ValueError:
    answer = None
  if not isinstance(answer, dict):
    return {}
  return {a: normalise_label(answer[a]) for a in attributes if a in answer}


@dataclasses.dataclass
class JudgeLabeller(JudgeEndpoint):
  """Labels samples with a chat model (the endpoint settings are JudgeEndpoint's).

  Attributes:
    attributes: attribute name -> a short description shown to the judge (a list of
      names is taken as names without description).
    template: the user message; `{attributes}` (one "- name: description" line each) and
      `{response}` are filled in.
    include_prompt: show the judge the sample's prompt before the template.
    cache_dir: where the cache file lives (None: in memory only).
    concurrency: requests in flight at once when labelling many samples.
  """
  attributes: Mapping[str, str] | Sequence[str] = ()
  template: str = DEFAULT_LABEL_TEMPLATE
  include_prompt: bool = False
  cache_dir: Optional[str] = None
  concurrency: int = 8

  def __post_init__(self):
    super().__post_init__()
    if not isinstance(self.attributes, Mapping):
      self.attributes = {name: "" for name in self.attributes}
    if not self.attributes:
      raise JudgeError("JudgeLabeller.attributes is empty: name the attributes to label")
    self._lock = threading.Lock()
    self._cache: Dict[str, str] = {}
    self.counts = {"requests": 0, "failed_requests": 0, "answered_from_cache": 0}
    self._last_error: Optional[JudgeError] = None
    self.failures: Dict[str, int] = {}
    # The judge's identity in cache keys: another model or template asks anew.
    self._judge = hashlib.sha256(json.dumps(
        [self.model, self.template, self.include_prompt]).encode()).hexdigest()
    if self.cache_dir:
      self._load_cache()

  def _cache_path(self) -> str:
    return os.path.join(self.cache_dir, CACHE_FILE)

  def _load_cache(self) -> None:
    path = self._cache_path()
    if not os.path.exists(path):
      return
    with open(path, encoding="utf-8") as f:
      for line in f:
        try:
          entry = json.loads(line)
          self._cache[entry["key"]] = entry["value"]
        except (ValueError, KeyError, TypeError):  # A line cut short by a kill.
          continue

  def _key(self, attribute: str, prompt: str, response: str) -> str:
    shown = [prompt, response] if self.include_prompt else [response]
    return hashlib.sha256(json.dumps(
        [self._judge, attribute, self.attributes[attribute], *shown]).encode()).hexdigest()

  def _store(self, entries: Mapping[str, str]) -> None:
    with self._lock:
      self._cache.update(entries)
      if self.cache_dir and entries:
        os.makedirs(self.cache_dir, exist_ok=True)
        with open(self._cache_path(), "a", encoding="utf-8") as f:
          f.write("".join(json.dumps({"key": k, "value": v}) + "\n" for k, v in entries.items()))

  def _count(self, cause: str, n: int = 1) -> None:
    with self._lock:
      self.failures[cause] = self.failures.get(cause, 0) + n

  def __call__(self, prompt: str, annotation: str, response: str) -> Dict[str, str]:
    keys = {a: self._key(a, prompt, response) for a in self.attributes}
    with self._lock:
      labels = {a: self._cache[k] for a, k in keys.items() if k in self._cache}
    missing = [a for a in self.attributes if a not in labels]
    if not missing:
      with self._lock:
        self.counts["answered_from_cache"] += 1
      return labels
    asked = self._ask_for(missing, prompt, response)
    self._store({keys[a]: v for a, v in asked.items()})
    labels.update(asked)
    return {a: labels.get(a, UNKNOWN) for a in self.attributes}

  def _ask_for(self, attributes: Sequence[str], prompt: str, response: str) -> Dict[str, str]:
    listing = "\n".join(f"- {a}: {self.attributes[a]}" if self.attributes[a] else f"- {a}"
                        for a in attributes)
    message = self.template.format(attributes=listing, response=response)
    if self.include_prompt:
      message = PROMPT_TEMPLATE.format(prompt=prompt) + message
    with self._lock:
      self.counts["requests"] += 1
    try:
      content = self.ask(message)
    except JudgeError as e:
      self._count(e.cause)
      with self._lock:
        self.counts["failed_requests"] += 1
        self._last_error = e
      return {}
    values = parse_reply(content, attributes)
    if not values:
      self._count("unparsable_reply")
    elif len(values) < len(attributes):
      self._count("missing_attribute", len(attributes) - len(values))
    return values

  def label_many(self, samples: Sequence[Tuple[str, str, str]],
                 progress_bar: Optional[bool] = None) -> None:
    """Labels (prompt, annotation, response) triples `concurrency` at a time, into the
    cache that later calls read, showing progress: a tqdm bar (`progress_bar`, default
    when stderr is a terminal), otherwise a line at every tenth (`judge: 120/256 samples`).

    Raises:
      JudgeError: every request failed (the endpoint is unreachable or refuses).
    """
    before = dict(self.counts)
    # One request per distinct text the judge sees: repeats would race past the cache.
    distinct = {(p if self.include_prompt else "", r): (p, a, r) for p, a, r in samples}
    with Progress("judge", len(distinct), "samples", progress_bar) as progress:
      def label(sample: Tuple[str, str, str]) -> None:
        self(*sample)
        progress.update()
      with concurrent.futures.ThreadPoolExecutor(max(1, self.concurrency)) as pool:
        list(pool.map(label, distinct.values()))
    requests = self.counts["requests"] - before["requests"]
    if requests and self.counts["failed_requests"] - before["failed_requests"] == requests:
      raise JudgeError(f"the judge at {self.base_url} answered none of {requests} requests; "
                       f"last: {self._last_error}", self._last_error.cause)

  def summary(self) -> Dict[str, object]:
    """Requests sent, samples answered from the cache, failures by cause."""
    return {**self.counts, "failures": dict(sorted(self.failures.items()))}
