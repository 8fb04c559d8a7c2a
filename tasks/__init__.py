"""SeqIO task and mixture registrations for concrete corpora.

Importing this package registers every task and mixture below.
"""
from tasks import synthetic  # noqa: F401  (registers `synthetic_tokens`)
from tasks import storyworld  # noqa: F401  (registers the storyworld_* tasks and mixture)
