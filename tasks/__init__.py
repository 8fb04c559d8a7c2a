"""SeqIO task and mixture registrations for concrete corpora."""
