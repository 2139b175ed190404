# dedup stage (see the README).
