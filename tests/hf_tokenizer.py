"""A Hugging Face tokenizer directory built locally (no download), GPT-2 style.

Byte-level BPE trained on a few sentences, `<|endoftext|>` its only special token (EOS and,
by the vocabulary's rule, BOS and pad), and ids 0 and 1 swapped onto two frequent words
(" the", " cat"): as in GPT-2/OLMo-2/Llama-3 vocabularies, 0 and 1 are real text.
"""
import json
import os

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

# Ids 0 and 1 hold these words.
WORD_0, WORD_1 = " the", " cat"
TEXTS = ["the cat sat on the mat. the cat ran to the dog.",
         "A story of the sea:\n\nthe waves rolled over the harbour, the cat slept.",
         "héllo wörld, 你好, the end 🙂", "topic:sea topic:forest genre:myth hero:Mira"]


def build(directory, *, pad_token=None, bos_token=None, vocab_size=400) -> str:
  """Writes tokenizer.json and tokenizer_config.json into `directory`; returns it.

  Args:
    directory: where to write (created).
    pad_token, bos_token: also add these special tokens and name them in the config
      (default: the tokenizer has neither, only `<|endoftext|>`).
    vocab_size: the BPE trainer's target size.
  """
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(TEXTS * 20, trainers.BpeTrainer(
      vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
      show_progress=False))
  spec = json.loads(tok.to_str())
  vocab = spec["model"]["vocab"]
  for target, word in enumerate((WORD_0, WORD_1)):
    piece = word.replace(" ", "\u0120")  # ByteLevel's space.
    other = next(k for k, v in vocab.items() if v == target)
    vocab[piece], vocab[other] = target, vocab[piece]
  tok = Tokenizer.from_str(json.dumps(spec))
  specials = ["<|endoftext|>"] + [t for t in (pad_token, bos_token) if t]
  tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
  os.makedirs(directory, exist_ok=True)
  tok.save(os.path.join(directory, "tokenizer.json"))
  config = {"eos_token": "<|endoftext|>", "model_max_length": 1024,
            "tokenizer_class": "PreTrainedTokenizerFast"}
  if pad_token:
    config["pad_token"] = pad_token
  if bos_token:
    config["bos_token"] = {"content": bos_token, "special": True}
  with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
    json.dump(config, f)
  return str(directory)
