"""What every model stage shares: device choice (with per-GPU locks), dtype, loading with pinned
revisions, out-of-memory-safe batching, and frame decoding overlapped with model work."""
