"""Writes for activation: destinations and runs (see activation.services.runs)."""
