"""The demo job: enroll all but one photo of each person, then identify the held-out photos
(open set: every fourth person with two or more photos is never enrolled, and should come back
"unknown"), and verify a same-person and a different-person pair."""

from __future__ import annotations

import time
from pathlib import Path

from rich.table import Table

from ..errors import FaceIDError
from ..service import FaceService, import_folder, list_folder
from .app import console
from .views import operating_point_line


def run_demo(folder: Path, limit: int | None, collection: str, workers: int) -> None:
    import shutil
    import tempfile

    entries = list_folder(folder, limit)
    by_person: dict[str, list[Path]] = {}
    for person, path in entries:
        by_person.setdefault(person, []).append(path)
    probes = {p: paths[-1] for p, paths in by_person.items() if len(paths) >= 2}
    strangers = set(list(probes)[3::4])  # never enrolled: find should say "unknown"
    # A view of the folder without the probe photos, made of links: nothing is copied.
    view = Path(tempfile.mkdtemp(prefix="faceid-demo-"))
    try:
        enrolled = 0
        for person, paths in by_person.items():
            if person in strangers:
                continue
            (view / person).mkdir()
            for path in paths:
                if probes.get(person) != path:
                    (view / person / path.name).symlink_to(path.resolve())
                    enrolled += 1
        console.print(
            f"[bold]1. enroll[/bold] {enrolled} photos of {len(by_person) - len(strangers)} "
            f"people from {folder} into collection {collection!r} ({workers} processes); "
            f"{len(strangers)} people are kept out as strangers"
        )
        with FaceService.embedded(workers=workers) as service:
            coll = service.get_or_create_collection(collection)
            report = import_folder(service, coll, view)
            console.print(
                f"   {report.faces_added} faces added, {report.duplicates} already there, "
                f"{len(report.failures)} failed, in {report.seconds:.1f} s"
            )
            _find(service, coll, probes, strangers)
            _verify(service, by_person)
            _analyze(service, [paths[0] for paths in list(by_person.values())[:3]])
    finally:
        shutil.rmtree(view, ignore_errors=True)


def _find(service: FaceService, coll, probes: dict[str, Path], strangers: set[str]) -> None:
    console.print(
        f"[bold]2. find[/bold] the {len(probes)} held-out photos, {len(strangers)} of them "
        "strangers (open set)"
    )
    if not probes:
        console.print("   nobody has two photos: nothing to find")
        return
    start = time.perf_counter()
    hits = accepted = no_face = strangers_accepted = 0
    point = None
    shown = Table(title="first few probes")
    for col in ("probe", "top match", "similarity", "decision"):
        shown.add_column(col)
    people = list(probes)
    for i in range(0, len(people), 32):
        batch = people[i : i + 32]
        try:
            results = service.find_batch(coll, [probes[p] for p in batch], k=1)
        except FaceIDError:
            results = []
            for p in batch:
                try:
                    results.append(service.find(coll, probes[p], k=1))
                except FaceIDError:
                    results.append([])
                    no_face += 1
        for person, matches in zip(batch, results, strict=True):
            top = matches[0] if matches else None
            point = getattr(matches, "operating_point", point)
            if person in strangers:
                strangers_accepted += bool(top and top.accepted)
                continue
            hits += bool(top and top.external_id == person)
            accepted += bool(top and top.accepted and top.external_id == person)
            if shown.row_count < 8 and top is not None:
                shown.add_row(
                    probes[person].name,
                    top.name or top.external_id,
                    f"{top.similarity:.3f}",
                    "match" if top.accepted else "unknown",
                )
    seconds = time.perf_counter() - start
    console.print(shown)
    n = len(probes) - len(strangers)
    console.print(
        f"   enrolled people: rank-1 {hits}/{n} = {hits / max(n, 1):.1%}; accepted and right "
        f"{accepted}/{n}; strangers accepted as someone {strangers_accepted}/{len(strangers)}; "
        f"no face {no_face}; {1000 * seconds / len(probes):.0f} ms per probe"
    )
    if point is not None:
        console.print(f"   {operating_point_line(point)}")


def _verify(service: FaceService, by_person: dict[str, list[Path]]) -> None:
    console.print("[bold]3. verify[/bold]")
    multi = [paths for paths in by_person.values() if len(paths) >= 2]
    if len(multi) < 2:
        console.print("   need two people with two photos each")
        return
    pipeline = service.pipeline()
    for a, b in ((multi[0][0], multi[0][1]), (multi[0][0], multi[1][0])):
        try:
            r = pipeline.verify(a, b)
        except FaceIDError as exc:
            console.print(f"   {a.name} vs {b.name}: {exc.code}: {exc.message}")
            continue
        verdict = "same person" if r.verified else "different people"
        console.print(
            f"   {a.name} vs {b.name}: {verdict} (distance {r.distance:.4f}, threshold "
            f"{r.threshold:.4f}, {r.timings_ms['total']:.0f} ms)"
        )


def _analyze(service: FaceService, photos: list[Path]) -> None:
    from ..attributes.analyze import ATTRIBUTE_EMBEDDER

    console.print("[bold]4. analyze[/bold] (age, gender, emotion, race, with their scores)")
    pipeline = service.pipeline(ATTRIBUTE_EMBEDDER)
    table = Table()
    for col in ("photo", "age", "gender", "emotion", "race"):
        table.add_column(col)
    for photo in photos:
        try:
            face = pipeline.analyze(photo, max_faces=1)[0]
        except FaceIDError as exc:
            console.print(f"   {photo.name}: {exc.code}: {exc.message}")
            continue
        cells = []
        for attr in (face.age, face.gender, face.emotion, face.race):
            score = max(attr.scores.values()) if attr is not None and attr.scores else None
            if attr is None:
                cells.append("")
            elif isinstance(attr.value, float):
                cells.append(f"{attr.value:.0f}")
            else:
                cells.append(f"{attr.value} ({score:.2f})")
        table.add_row(photo.name, *cells)
    console.print(table)
