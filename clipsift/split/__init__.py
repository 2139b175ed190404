"""Scene splitting: one decode pass per video (scan), then scenes into clips (clips)."""
