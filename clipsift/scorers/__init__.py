"""Scorers: one module per scorer, registered under the name used in the config."""
