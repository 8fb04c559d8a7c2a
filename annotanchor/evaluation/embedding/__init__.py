"""Sentence embeddings for embedding diversity (the optional `embeddings` extra).

An embedder is any callable texts -> (N, D) array; `MiniLMEmbedder` is the default.
"""
from annotanchor.evaluation.embedding.minilm import (EXTRA, EmbeddingsUnavailable,
                                                     MiniLMEmbedder, default_model_dir)

__all__ = ["EXTRA", "EmbeddingsUnavailable", "MiniLMEmbedder", "default_model_dir"]
