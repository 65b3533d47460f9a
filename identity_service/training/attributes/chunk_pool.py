"""Per-image passes over shared data (FER features, dlib chips) in the pipeline's ``workers``
processes: each worker builds its own pipeline once, then works through chunks of files."""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ...pipeline import FacePipeline

Row = TypeVar("Row")
# work(pipeline, state, chunk) -> one row per file; state is what make_state built, or None
Work = Callable[["FacePipeline", Any, list[Path]], list[Row]]
MakeState = Callable[["FacePipeline"], Any]

_worker: dict[str, Any] = {}


def map_chunks(
    pipeline: FacePipeline,
    chunks: list[list[Path]],
    work: Work,
    make_state: MakeState | None = None,
) -> Iterator[list[Row]]:
    """``work`` on each chunk, results in order; ``work`` and ``make_state`` must be module-level
    functions. One process when the pipeline has one worker or there is one chunk."""
    if pipeline.workers <= 1 or len(chunks) == 1:
        state = make_state(pipeline) if make_state else None
        return (work(pipeline, state, chunk) for chunk in chunks)
    pool = ProcessPoolExecutor(
        max_workers=pipeline.workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_init_worker,
        # the embedder's own name: pipeline.model is a tag (with the TTA views), not a name
        initargs=(pipeline.settings, pipeline.detector.name, pipeline.embedder.name, make_state),
    )
    return _closing_map(pool, functools.partial(_run, work), chunks)


def _closing_map(pool: ProcessPoolExecutor, run: Callable, chunks: list[list[Path]]):
    with pool:
        yield from pool.map(run, chunks)


def _init_worker(settings, detector: str, embedder: str, make_state: MakeState | None) -> None:
    pipeline = FacePipeline(detector, embedder, settings=settings, workers=1)
    _worker["pipeline"] = pipeline
    _worker["state"] = make_state(pipeline) if make_state else None


def _run(work: Work, chunk: list[Path]) -> list:
    return work(_worker["pipeline"], _worker["state"], chunk)
