"""TPU facts and ahead-of-time compilation for named pod topologies (`annotanchor compile`)."""
