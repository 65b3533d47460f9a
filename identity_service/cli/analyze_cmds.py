"""``faceid analyze | train-attributes``: age, gender, emotion and race of faces."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from .app import app, console, err_console, print_json
from .remote import ApiKeyOpt, ServerOpt, local_only, remote
from .views import show_analyses


@app.command("analyze")
def analyze_command(
    image: Path = typer.Argument(..., help="image file"),
    actions: str = typer.Option(
        "age,gender,emotion,race", "--actions", help="comma-separated subset"
    ),
    detector: str = typer.Option(None, "--detector", help="detector registry name"),
    embedder: str = typer.Option(
        None, "--embedder", help="must be the embedder the heads were trained on"
    ),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
    server: str = ServerOpt,
    api_key: str = ApiKeyOpt,
) -> None:
    """Age, gender, emotion and race of every face, with class scores (centre-most first)."""
    from ..client.models import Analysis

    wanted = tuple(a.strip() for a in actions.split(",") if a.strip())
    if server:
        local_only(detector=detector, embedder=embedder)
        with remote(server, api_key) as client:
            faces = client.analyze(image, actions=wanted)
    else:
        from ..pipeline import FacePipeline

        with FacePipeline(detector, embedder) as pipeline:
            found = pipeline.analyze(image, actions=wanted)
        faces = [Analysis.from_dict(f.to_dict()) for f in found]
    show_analyses(str(image), faces, wanted, json_out)


@app.command("train-attributes")
def train_attributes_command(
    embedder: str = typer.Option(
        None, "--embedder", help="embedder whose embeddings the heads read (default: settings)"
    ),
    seed: int = typer.Option(None, "--seed", help="split and training seed"),
    epochs: int = typer.Option(
        1000,
        "--epochs",
        help="full-batch epochs per head (1000: chosen on a validation split of train)",
    ),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Train the age, gender and race heads on UTKFace and LFW gender (shared data).

    Embeddings are cached under the faceid cache; the heads are written to
    ``<data_dir>/cache/models``. Figures are on held-out splits only.
    """
    from ..attributes.data import SEED
    from ..attributes.train import evaluate_heads, load_data, save_heads, train_heads
    from ..config import get_settings
    from ..pipeline import FacePipeline

    settings = get_settings()
    seed = SEED if seed is None else seed
    start = time.perf_counter()
    with FacePipeline(None, embedder, settings=settings) as pipeline:
        done = [0]

        def progress(n: int) -> None:
            done[0] += n
            if done[0] % 640 == 0:
                err_console.print(f"embedded {done[0]} new images", highlight=False)

        data = load_data(pipeline, settings.shared_dir, settings.cache_dir, seed, progress)
    say = err_console if json_out else console
    say.print(f"data: {json.dumps(data.describe())}", highlight=False)
    say.print(f"seed: {seed}; epochs: {epochs}", highlight=False)
    heads = train_heads(data, seed=seed, epochs=epochs)
    metrics = evaluate_heads(heads, data)
    paths = save_heads(heads, data, metrics, settings)
    report = {
        "data": data.describe(),
        "seed": seed,
        "epochs": epochs,
        "heldout_metrics": metrics,
        "files": {k: str(v) for k, v in paths.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }
    if json_out:
        print_json(report)
        return
    console.print_json(json.dumps(report))
