"""``faceid analyze | train-attributes``: age, gender, emotion and race of faces."""

from __future__ import annotations

import dataclasses
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
    """Train the attribute heads: age, gender and race on UTKFace and LFW gender, emotion on
    FER2013 (shared data).

    Embeddings and FER-model features are cached under the faceid cache (the first run on all
    of FER2013 takes about 20 minutes on 2 cores, and the emotion CNN about an hour more); the
    heads are written to ``<data_dir>/cache/models``. Figures are on held-out splits only.
    """
    import os

    from ..attributes.analyze import ATTRIBUTE_EMBEDDER
    from ..config import get_settings
    from ..errors import FaceIDError
    from ..pipeline import FacePipeline
    from ..training.attributes import train as tr
    from ..training.attributes import train_emotion as te
    from ..training.attributes import train_tuned as tt

    wanted = {a.strip() for a in actions.split(",") if a.strip()}
    unknown = wanted - {"age", "gender", "race", "emotion"}
    if unknown or not wanted:
        raise typer.BadParameter(f"unknown head(s) {sorted(unknown)}", param_hint="--actions")
    settings = get_settings()
    seed = tr.SEED if seed is None else seed
    start = time.perf_counter()
    say = err_console if json_out else console
    report: dict[str, object] = {"seed": seed, "heldout_metrics": {}, "files": {}}
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        err_console.print(f"processed {done[0]} new images", highlight=False)

    try:
        with FacePipeline(
            None,
            embedder or ATTRIBUTE_EMBEDDER,
            settings=settings,
            workers=workers or os.cpu_count() or 1,
        ) as pipeline:
            face_heads = wanted - {"emotion"}
            if face_heads:
                data = tr.load_data(
                    pipeline, settings.shared_dir, settings.cache_dir, seed, progress
                )
                say.print(f"data: {json.dumps(data.describe())}", highlight=False)
                say.print(f"seed: {seed}; epochs: {epochs}", highlight=False)
                heads = tr.train_heads(data, seed=seed, epochs=epochs, actions=face_heads)
                metrics = tr.evaluate_heads(heads, data)
                paths = tr.save_heads(heads, data, metrics, settings)
                report["data"], report["epochs"] = data.describe(), epochs
                recipe = tt.TunedRecipe()
                if tuned_epochs is not None:
                    recipe = dataclasses.replace(recipe, epochs=tuned_epochs)
                tuned_actions = [a for a in tt.TUNED_ACTIONS if a in face_heads]
                if recipe.epochs and tt.tuned_available(pipeline):

                    def tuned_progress(epoch: int, loss: float) -> None:
                        err_console.print(
                            f"tuned network epoch {epoch}/{recipe.epochs}: training loss "
                            f"{loss:.3f} ({time.perf_counter() - start:.0f} s)",
                            highlight=False,
                        )

                    net = tt.load_dlib_resnet(settings)
                    utk_acts, lfw_acts = tt.frozen_for(
                        pipeline,
                        tt.TunedNetwork(net),
                        data,
                        settings.shared_dir,
                        settings.cache_dir,
                        progress,
                    )
                    network = tt.train_tuned_network(
                        net,
                        data,
                        utk_acts,
                        lfw_acts,
                        seed=seed,
                        recipe=recipe,
                        progress=tuned_progress,
                    )
                    metrics = tt.evaluate_tuned(network, heads, data, utk_acts, lfw_acts)
                    paths |= tt.save_tuned(
                        network, tuned_actions, data, metrics, recipe, seed, settings
                    )
                    report["tuned_recipe"] = recipe.describe()
                    # the other actions' tuned heads read the network this run replaced
                    others = [a for a in tt.TUNED_ACTIONS if a not in tuned_actions]
                    if replaced := tt.remove_tuned(others, settings):
                        report["removed"] = replaced
                        say.print(
                            f"removed {', '.join(replaced)}: they read the tuned network this "
                            "run replaced, so the embedding heads answer those attributes "
                            "until they are trained again (--actions age,gender,race)",
                            highlight=False,
                        )
                else:
                    tt.remove_tuned(tuned_actions, settings)
                report["heldout_metrics"].update(metrics)  # type: ignore[union-attr]
                report["files"].update({k: str(v) for k, v in paths.items()})  # type: ignore[union-attr]
            if "emotion" in wanted:
                emo = te.load_emotion_data(
                    pipeline, settings.shared_dir, settings.cache_dir, fer_limit, progress
                )
                say.print(f"emotion data: {json.dumps(emo.describe())}", highlight=False)
                cnn_recipe = te.EMOTION_CNN_RECIPE
                if cnn_epochs is not None:
                    cnn_recipe = dataclasses.replace(cnn_recipe, epochs=cnn_epochs)

                def cnn_progress(epoch: int, loss: float) -> None:
                    err_console.print(
                        f"emotion CNN epoch {epoch}/{cnn_recipe.epochs}: training loss "
                        f"{loss:.3f} ({time.perf_counter() - start:.0f} s)",
                        highlight=False,
                    )

                head = te.train_emotion_head(emo, seed=seed)
                cnn = None
                if cnn_recipe.epochs:
                    cnn = te.train_emotion_cnn(emo, seed, cnn_recipe, cnn_progress)
                metrics = te.evaluate_emotion(head, emo, cnn)
                paths = te.save_emotion_models(emo, metrics, settings, head, cnn)
                report["emotion_data"] = emo.describe()
                report["emotion_recipe"] = dataclasses.asdict(te.EMOTION_RECIPE)
                report["emotion_cnn_recipe"] = dataclasses.asdict(cnn_recipe) if cnn else None
                report["heldout_metrics"]["emotion"] = metrics  # type: ignore[index]
                report["files"].update({k: str(v) for k, v in paths.items()})  # type: ignore[union-attr]
    except FaceIDError as exc:
        err_console.print(f"[red]{exc.code}[/red]: {exc}")
        raise typer.Exit(1) from None
    report["seconds"] = round(time.perf_counter() - start, 1)
    if settings.attribute_models != "trained":
        err_console.print(
            "analyze uses the published attribute models; set FACEID_ATTRIBUTE_MODELS=trained "
            f"to use these ({settings.model_cache_dir})"
        )
    if json_out:
        print_json(report)
        return
    console.print_json(json.dumps(report))
