"""Annotation schema, SeqIO preprocessors, feature conversion, vocabularies, input."""
