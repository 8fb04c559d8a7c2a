"""Hugging Face interchange: config.json and safetensors checkpoints in and out."""
