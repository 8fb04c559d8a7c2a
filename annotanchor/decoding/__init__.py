"""Sampling with a KV cache, and writing sample files."""
