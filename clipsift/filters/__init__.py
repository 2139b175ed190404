"""Per-clip filters: flashes (brightness jumps) and on-screen text (OCR)."""
