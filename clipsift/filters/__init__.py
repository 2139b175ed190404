"""Per-clip filters: flashes (brightness jumps) and on-screen text (OCR), registered as measures.

A filter's rule writes ``{name}.json`` (one record per clip, measurements only). Its
:class:`Measure` says what selection, calibration, export and the card read from it: the clip
table's ``{name}.*`` columns taken from each record, and the tests that ``select.{name}`` turns
on, with the key that holds each bound. Selection knows no filter by name; adding one is its
module (the records and a ``MEASURE``), a line in ``REGISTRY``, its rule and its config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..plugins import Plugin, Registry


@dataclass(frozen=True)
class Test:
    """One selection test of a filter: ``column op bound``, the bound read from
    ``select.{filter}.{key}``. A ``None`` (or ``false``) there turns the test off; for ``==``
    tests the key is a switch and ``bound`` the value a clip must have."""

    name: str  # the test's name in rejections (``reasons.failed``)
    column: str
    op: str  # "<=", ">=" or "=="
    key: str
    bound: object = None  # the fixed bound of an "==" test
    verdict: bool = True  # counts toward the filter's ``{filter}_verdict`` column

    def bound_in(self, cfg: dict):
        """The bound this test applies under ``cfg`` (``select.{filter}``), None when off."""
        value = cfg.get(self.key)
        if value is None or value is False:
            return None
        return self.bound if self.op == "==" else value


@dataclass(frozen=True)
class Measure:
    name: str
    about: str  # what the filter removes, for the dataset card ("a flash filter")
    # clip-table columns: (column, function of the clip's record, numeric)
    columns: tuple[tuple[str, Callable[[dict], object], bool], ...]
    tests: tuple[Test, ...]
    # the model it runs, for the provenance: config section -> (id, the package that holds it)
    model: Callable[[dict], tuple[str, str]] | None = None

    def row(self, record: dict | None) -> dict:
        """The clip-table columns of one clip (``None`` where the clip has no record)."""
        return {col: get(record or {}) for col, get, _ in self.columns}


REGISTRY = Registry(
    "filter",
    {
        "flash": Plugin("clipsift.filters.flash:MEASURE"),
        "ocr": Plugin("clipsift.filters.ocr:MEASURE"),
    },
)


def measures() -> list[Measure]:
    """Every registered filter's measure, in cascade order (the registry's)."""
    return [REGISTRY.load(name) for name in REGISTRY]


def enabled(filters_cfg: dict) -> list[str]:
    """The filters that the config's ``filters`` section turns on."""
    return [n for n in REGISTRY if (filters_cfg.get(n) or {}).get("enabled")]
