"""The HTTP API's request and response bodies (msgspec Structs, so Litestar validates them and
documents them in the OpenAPI schema).

A search result names an image and where it was shown, never which ranker produced it.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from serving.figures import Figures

__all__ = [
    "ClickIn",
    "ClickOut",
    "ExperimentIn",
    "ExperimentOut",
    "ExperimentPatch",
    "ExperimentVersionOut",
    "Health",
    "Sample",
    "SearchIn",
    "SearchOut",
    "SearchPage",
    "SearchResult",
]

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
# "(?!\n)$": Python's "$" (msgspec searches with `re`) also matches before a final newline.
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(?!\n)$")]
Weight = Annotated[float, msgspec.Meta(gt=0, le=1e9)]


class SearchIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A search by the id of a corpus image, or continuing an earlier upload by its query id.

    Exactly one of `corpus_id` and `query_id`. Uploads are multipart (field `image`).
    """

    corpus_id: Id | None = None
    query_id: Id | None = None
    unit_id: Id | None = None
    page: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1


class SearchResult(msgspec.Struct, frozen=True, gc=False):
    """One result: the image, where to fetch it, and its rank (1-based, across pages)."""

    image_id: str
    thumbnail_url: str
    image_url: str
    rank: int
    position: int


class _SearchHead(msgspec.Struct, frozen=True, gc=False):
    """What a page of results says besides its results."""

    impression_id: str
    query_id: str
    unit_id: str
    page: int
    page_size: int
    has_more: bool


class SearchOut(_SearchHead, frozen=True, gc=False):
    """A page of results; click positions refer to `results[i].position`."""

    results: list[SearchResult]


class SearchPage(_SearchHead, frozen=True, gc=False):
    """A `SearchOut` as the service answers it, with its results already encoded: a page's
    results are the same for every unit whose draft fell the same way, so they are encoded
    once and kept. It encodes to the same JSON as the `SearchOut` it stands for (`out`)."""

    results: msgspec.Raw

    def out(self) -> SearchOut:
        """The `SearchOut` this page encodes as."""
        return msgspec.json.decode(msgspec.json.encode(self), type=SearchOut)


class ClickIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A click on a shown position; `click_id` is the client's event id (idempotency key)."""

    impression_id: Id
    position: Annotated[int, msgspec.Meta(ge=0, le=10_000)]
    click_id: Id


class ClickOut(msgspec.Struct, frozen=True):
    """The click was logged (`duplicate` if this click id was logged before)."""

    click_id: str
    impression_id: str
    position: int
    image_id: str
    duplicate: bool


class ExperimentVersionOut(msgspec.Struct, frozen=True):
    """One version of an experiment as designed."""

    version: int
    salt: str
    rankers: list[str]
    weights: list[float]
    method: str | None
    options: dict[str, Any]
    started_at: str


class ExperimentOut(msgspec.Struct, frozen=True):
    """An experiment, its current version, and (on `GET /experiments/{id}`) live figures."""

    id: str
    design: str
    version: int
    running: bool
    rankers: list[str]
    weights: list[float]
    method: str | None
    options: dict[str, Any]
    layer: str
    traffic: float
    page_size: int
    versions: list[ExperimentVersionOut]
    figures: Figures | None = None


class ExperimentIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new experiment (see `serving.config.ExperimentConfig`)."""

    id: Name
    rankers: Annotated[list[Name], msgspec.Meta(min_length=2, max_length=16)]
    design: str = "interleaving"
    weights: list[Weight] | None = None
    method: str | None = None
    options: dict[str, Any] | None = None
    layer: Name = "main"
    traffic: Annotated[float, msgspec.Meta(gt=0, le=1)] = 1.0
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    salt: Id | None = None
    running: bool = True


class ExperimentPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A change to an experiment; new `weights` start a new version with a new salt."""

    weights: list[Weight] | None = None
    traffic: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None
    page_size: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None


class Sample(msgspec.Struct, frozen=True):
    """A corpus image offered on the search page."""

    image_id: str
    thumbnail_url: str


class Health(msgspec.Struct, frozen=True):
    """Liveness and the state of the event log."""

    status: str
    experiments_running: int
    journal_commits: int
    journal_records: int
    uncompacted_records: int
    fsync_restarts: int
    """Times the journal's fsync process was lost and started again (the journal breaks
    when it is lost a fourth time within a minute)."""
