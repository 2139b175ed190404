"""Batched inference that survives out-of-memory: the batch halves and the batch is retried."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from .device import free_memory

log = logging.getLogger(__name__)


def is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class Batcher:
    """Calls ``fn(items[i:j])`` over ``items``; on OOM halves the batch size (down to 1) and
    retries the same items. The smaller size sticks for the rest of the job.

    The cache is emptied after the ``except`` block has ended: while it runs, the exception's
    traceback still references the failed call's frames and so its tensors, and
    ``torch.cuda.empty_cache()`` could not give their memory back.
    """

    def __init__(self, batch_size: int):
        self.batch_size = max(1, int(batch_size))
        self.n_oom = 0  # out-of-memory errors recovered from (recorded in the job's log)

    def map(self, fn: Callable[[Sequence], list], items: Sequence) -> list:
        out: list = []
        i = 0
        while i < len(items):
            chunk = items[i : i + self.batch_size]
            oom = False
            try:
                out.extend(fn(chunk))
            except Exception as exc:
                if not is_oom(exc) or self.batch_size == 1:
                    raise
                oom = True
            if oom:
                self.n_oom += 1
                self.batch_size = max(1, self.batch_size // 2)
                log.warning("out of memory: batch size now %d", self.batch_size)
                free_memory()
                continue
            i += len(chunk)
        return out
