"""Annotation schema, SeqIO preprocessors, feature conversion, vocabularies, input.

Modules (one job each):
  annotations        the `<ann> key:value </ann>` format: format, parse, validate, chunk
  prompts            PromptTemplate: user/assistant markers, build prompts, split generations;
                     the markers every vocabulary keeps as single tokens
  segments           tokenizing text pieces into targets + per-token loss weights (tf)
  preprocessors      the sequence kinds: pretraining (annotated/plain), SFT, anchored SFT,
                     annotation-only (both forms)
  feature_converter  WeightedLMFeatureConverter: decoder_* features with per-token weights;
                     PreferenceFeatureConverter: both rows of a preference pair
  sources            JSONL / text / TFRecord / TFDS records, validated, with a skip policy
  validated          file sources checked in Python before tf.data, cached as TFRecord
  vocabulary         SentencePiece: train (CLI, cached) or load (a HF tokenizer by its path)
  hf_vocabulary      HuggingFaceVocabulary: a tokenizer.json with its own pad/BOS/EOS ids
  ids                the id shifted in before every sequence (per vocabulary)
  registration       task/mixture registration for a corpus; JsonlCorpus from gin
  preference_records preference records (prompt, chosen, rejected) -> both answers' pieces
  preference_sequences  both answers as weighted sequences (prompt, annotation 0)
  preference_corpus  PreferenceCorpus: pair files as P_preference(_anchored) tasks
  reporting          token accounting (annotation fraction, token-matched budgets)
  pipeline           get_dataset: sharded, packed, deterministic, resumable batches
"""
