"""SeqIO task and mixture registrations for concrete corpora.

Importing this package registers `synthetic_tokens` (no settings) and makes the storyworld
corpus available to gin (`Storyworld`, registered from `configured_corpora.corpora`).
"""
from tasks import synthetic  # noqa: F401  (registers `synthetic_tokens`)
from tasks import storyworld  # noqa: F401  (the Storyworld corpus)
