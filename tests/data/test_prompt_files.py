"""The one reader of users' prompt files (annotanchor/data/prompt_files.py): infer's
PROMPTS_FILE and a user corpus's held-out evaluation prompts."""
import pytest

from annotanchor.data import sources
from annotanchor.data.prompt_files import PromptsError, read_prompts


def test_ids_count_the_prompts_of_all_files_and_blank_lines_are_skipped(tmp_path):
  (tmp_path / "a.jsonl").write_text('{"prompt": "Tell me a story."}\n\n'
                                    '{"prompt": "A poem.", "id": "poem"}\n')
  (tmp_path / "b.jsonl").write_text('{"prompt": "A riddle."}\n{"prompt": "", "id": 7}\n')
  assert read_prompts(str(tmp_path / "*.jsonl")) == [
      ("p1", "Tell me a story."), ("poem", "A poem."), ("p3", "A riddle."), ("7", "")]
  assert read_prompts([str(tmp_path / "b.jsonl")])[0] == ("p1", "A riddle.")


@pytest.mark.parametrize("content, message", [
    ('{"prompt": "a"}\n{"text": "b"}\n', r"p.jsonl:2: expected an object with a string field"),
    ('{"prompt": "a"}\n["a"]\n', r"p.jsonl:2: expected an object"),
    ('{"prompt": "a"\n', r"p.jsonl:1: not a JSON record"),
    (b'{"prompt": "\xff"}\n', r"p.jsonl:1: not a JSON record"),
    ('{"prompt": "a", "id": "x"}\n{"prompt": "b", "id": "x"}\n', r"prompt id 'x' occurs twice"),
    ('{"prompt": "a"}\n{"prompt": "b", "id": "p1"}\n', r"prompt id 'p1' occurs twice"),
    ('\n\n', r"holds no prompts"),
])
def test_a_bad_file_is_one_error_naming_the_file_and_line(tmp_path, content, message):
  path = tmp_path / "p.jsonl"
  path.write_bytes(content if isinstance(content, bytes) else content.encode())
  with pytest.raises(PromptsError, match=message):
    read_prompts(str(path))


def test_evaluation_prompts_may_not_be_empty(tmp_path):
  path = tmp_path / "p.jsonl"
  path.write_text('{"prompt": "a"}\n{"prompt": "  "}\n')
  assert read_prompts(str(path))[1] == ("p2", "  ")
  with pytest.raises(PromptsError, match=r"p.jsonl:2: expected an object with a non-empty"):
    read_prompts(str(path), allow_empty=False)


def test_no_matching_file_is_named(tmp_path):
  with pytest.raises(sources.SourceError, match="No input files match"):
    read_prompts(str(tmp_path / "missing-*.jsonl"))
