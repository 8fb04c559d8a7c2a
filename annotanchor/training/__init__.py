"""Mesh and logical-axis rules, train state, jitted steps, metrics, checkpoints."""
