"""``faceid analyze | train-attributes``: age, gender, emotion and race of faces."""

from __future__ import annotations

import json
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
        from ..attributes.analyze import ATTRIBUTE_EMBEDDER
        from ..pipeline import FacePipeline

        with FacePipeline(detector, embedder or ATTRIBUTE_EMBEDDER) as pipeline:
            found = pipeline.analyze(image, actions=wanted)
        faces = [Analysis.from_dict(f.to_dict()) for f in found]
    show_analyses(str(image), faces, wanted, json_out)


@app.command("train-attributes")
def train_attributes_command(
    actions: str = typer.Option(
        "age,gender,race,emotion", "--actions", help="comma-separated heads to train"
    ),
    embedder: str = typer.Option(
        None,
        "--embedder",
        help="embedder whose embeddings the heads read (default: the one analyze reads, "
        "dlib-resnet-v1-tta8)",
    ),
    seed: int = typer.Option(None, "--seed", help="split and training seed"),
    epochs: int = typer.Option(
        1000,
        "--epochs",
        help="full-batch epochs per age/gender/race head (1000: chosen on a validation split)",
    ),
    workers: int = typer.Option(
        None, "--workers", help="processes that detect and embed (default: all cores)"
    ),
    fer_limit: int = typer.Option(
        None, "--fer-limit", help="FER2013 images per split (a seeded sample; default all)"
    ),
    cnn_epochs: int = typer.Option(
        None,
        "--cnn-epochs",
        min=0,
        help="epochs of the emotion CNN (default: its recipe's; 0: no CNN, emotion from the "
        "head alone)",
    ),
    tuned_epochs: int = typer.Option(
        None,
        "--tuned-epochs",
        min=0,
        help="epochs of dlib's ResNet fine-tuned for age, gender and race (default: its "
        "recipe's; 0: none, the embedding heads answer)",
    ),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    # Over 60 lines only for the typer options in its signature; the body is under ~40.
    """Train the attribute heads: age, gender and race on UTKFace and LFW gender, emotion on
    FER2013 (shared data).

    Embeddings and FER-model features are cached under the faceid cache (the first run on all
    of FER2013 takes about 20 minutes on 2 cores, and the emotion CNN about an hour more); the
    heads are written to ``<data_dir>/cache/models``. Figures are on held-out splits only.
    """
    from ..config import get_settings
    from ..errors import FaceIDError
    from ..training.attributes.run import ACTIONS, AttributeOptions, train_attributes

    wanted = {a.strip() for a in actions.split(",") if a.strip()}
    unknown = wanted - set(ACTIONS)
    if unknown or not wanted:
        raise typer.BadParameter(f"unknown head(s) {sorted(unknown)}", param_hint="--actions")
    settings = get_settings()
    options = AttributeOptions(
        frozenset(wanted),
        embedder=embedder,
        seed=seed,
        epochs=epochs,
        workers=workers,
        fer_limit=fer_limit,
        cnn_epochs=cnn_epochs,
        tuned_epochs=tuned_epochs,
    )
    say = err_console if json_out else console
    try:
        run = train_attributes(
            settings,
            options,
            say=lambda text: say.print(text, highlight=False),
            note=lambda text: err_console.print(text, highlight=False),
        )
    except FaceIDError as exc:
        err_console.print(f"[red]{exc.code}[/red]: {exc}")
        raise typer.Exit(1) from None
    if settings.models.attribute_models != "trained":
        err_console.print(
            "analyze uses the published attribute models; set FACEID_ATTRIBUTE_MODELS=trained "
            f"to use these ({settings.model_cache_dir})"
        )
    if json_out:
        print_json(run.to_dict())
        return
    console.print_json(json.dumps(run.to_dict()))
