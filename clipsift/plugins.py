"""The one registry mechanism: every family of model or measure is a named entry of a
:class:`Registry`.

A registry maps the name the config uses (``scorers.aesthetic``, ``caption.model: qwen2_vl``,
``encode.vae.name: wan2_1``, ``scan.detector: transnetv2``, ``sources[].generator: wan``) to an
entry. Code entries are :class:`Plugin` records that name their code as ``"module:attribute"``,
imported only when a job loads them, so parsing the Snakefile imports neither torch nor any
model library. Data entries (the generators, which differ only in data) are stored as they are.

A plugin says what it needs: ``device`` is ``"gpu"`` for a model that runs on a GPU when one is
there (its rule asks for ``resources: gpu=1`` unless the config's ``device`` is ``cpu``, see
:func:`gpus_for`), ``"cpu"`` otherwise; ``needs`` lists the Python packages it cannot load
without; ``gives`` what it writes besides its own output (``embeddings``: the per-clip
vectors the near-duplicate stage reads). The device itself is chosen, and a GPU locked, in one place:
:func:`clipsift.models.device.resolve_device`.

Adding a family is its module plus one line in its kind's registry (docs/plugins.md shows one
from start to end).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from dataclasses import dataclass


class UnknownPlugin(KeyError):
    """A name that no entry of the registry has (the message lists the known ones)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Plugin:
    target: str  # "module:attribute", imported when loaded
    device: str = "cpu"  # "gpu": runs on a GPU when there is one (its rule asks for one)
    needs: tuple[str, ...] = ()  # Python packages it cannot load without
    gives: tuple[str, ...] = ()  # what it writes besides its own output ("embeddings")
    # a scorer's columns besides clip_id and error, so that a threshold on any other stops the
    # run when the Snakefile is parsed; () when they depend on the config (checked once written)
    columns: tuple[str, ...] = ()

    def load(self):
        return resolve(self.target)


def resolve(target: str):
    """The object named by ``"module:attribute"``."""
    module, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"{target!r} is not 'module:attribute'")
    return getattr(importlib.import_module(module), attr)


class Registry(dict):
    """``name -> entry`` for one kind of plug-in (``kind`` names it in messages)."""

    def __init__(self, kind: str, entries: dict | Iterable = ()):
        super().__init__(entries)
        self.kind = kind

    def entry(self, name: str):
        """The entry registered as ``name``; an unknown name fails with the close matches."""
        if name in self:
            return self[name]
        close = difflib.get_close_matches(str(name), list(self), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownPlugin(
            f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(self))})"
        )

    def load(self, name: str):
        """The code of the plugin ``name`` (its module imported now)."""
        return self.entry(name).load()

    def register(self, name: str, entry) -> None:
        """Add a family at run time (an extension outside the package); names are unique."""
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = entry

    def on(self, device: str) -> list[str]:
        """The names of the plugins of one ``device`` class, sorted."""
        return sorted(n for n, e in self.items() if getattr(e, "device", None) == device)


def gpus_for(plugin: Plugin | None, device_pref: str | None) -> int:
    """The ``gpu`` resource of a job running ``plugin`` with the config's ``device``: 1 for a
    GPU plugin unless the config pins it to the CPU, else 0."""
    if plugin is None or plugin.device != "gpu":
        return 0
    return int((device_pref or "auto") != "cpu")
