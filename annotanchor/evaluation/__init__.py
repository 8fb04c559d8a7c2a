"""Diversity and quality metrics over sample files; knows no model."""
