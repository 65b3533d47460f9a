"""``faceid detect | represent | verify``: the pipeline on local images."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..client.models import FaceInfo
from ..pipeline import FacePipeline
from .app import app, console, print_json
from .remote import ApiKeyOpt, ServerOpt, local_only, remote
from .views import show_faces, show_verification

DetectorOpt = typer.Option(None, "--detector", help="dlib-hog (default) or yunet")
EmbedderOpt = typer.Option(None, "--embedder", help="registry name or path to an ArcFace .onnx")
JsonOpt = typer.Option(False, "--json", help="print JSON")


@app.command("detect")
def detect_command(
    image: Path = typer.Argument(..., help="image file"),
    detector: str = DetectorOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Find faces: boxes, 5 landmarks and scores, centre-most first."""
    from ..detect import create_detector, order_faces
    from ..imaging import load_image

    det = create_detector(detector) if detector else None
    array = load_image(image)
    if det is None:
        from ..config import get_settings

        det = create_detector(get_settings().models.detector)
    found = order_faces(det.detect(array), array.shape)
    rows = [
        {
            "index": i,
            "box": d.box.to_list(),
            "landmarks": [[round(float(v), 1) for v in p] for p in d.landmarks],
            "score": round(d.score, 4),
        }
        for i, d in enumerate(found)
    ]
    if json_out:
        print_json({"image": str(image), "detector": det.name, "faces": rows})
        return
    table = Table(title=f"{len(rows)} face(s) in {image} ({det.name})")
    for col in ("#", "box x1,y1,x2,y2", "score"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["index"]), ", ".join(f"{v:.0f}" for v in r["box"]), str(r["score"]))
    console.print(table)


@app.command("represent")
def represent_command(
    image: Path = typer.Argument(..., help="image file"),
    detector: str = DetectorOpt,
    embedder: str = EmbedderOpt,
    collection: str = typer.Option(None, "--collection", "-c", help="with --server: its model"),
    json_out: bool = JsonOpt,
    server: str = ServerOpt,
    api_key: str = ApiKeyOpt,
) -> None:
    """Embed every face of an image (L2-normalised vectors)."""
    if server:
        local_only(detector=detector, embedder=embedder)
        with remote(server, api_key) as client:
            faces = client.represent(image, collection=collection)
    else:
        local_only(collection=collection)  # the local path picks the model with --embedder
        faces = [
            FaceInfo.from_dict(f.to_dict())
            for f in FacePipeline(detector, embedder).represent(image)
        ]
    show_faces(str(image), faces, json_out)


@app.command("verify")
def verify_command(
    image1: Path = typer.Argument(...),
    image2: Path = typer.Argument(...),
    detector: str = DetectorOpt,
    embedder: str = EmbedderOpt,
    threshold: float = typer.Option(None, help="cosine-distance threshold (default: calibrated)"),
    json_out: bool = JsonOpt,
    server: str = ServerOpt,
    api_key: str = ApiKeyOpt,
) -> None:
    """Same person? Compares the centre-most face of each image, at the threshold of the newest
    stored calibration of the model (else the model's shipped default)."""
    if server:
        local_only(detector=detector, embedder=embedder, threshold=threshold)
        with remote(server, api_key) as client:
            remote_result = client.verify(image1, image2)
        show_verification(remote_result, remote_result.to_dict() if json_out else None)
        return
    if detector or threshold is not None:
        result = FacePipeline(detector, embedder, threshold=threshold).verify(image1, image2)
    else:
        from ..service import FaceService

        with FaceService.embedded() as service:
            result = service.pipeline(embedder).verify(image1, image2)
    show_verification(result, result.to_dict() if json_out else None)
