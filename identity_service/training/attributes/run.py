"""``faceid train-attributes`` as one call: the age, gender and race heads on the pipeline's
embeddings (and dlib's ResNet fine-tuned for them) on UTKFace and LFW gender, the emotion head
and CNN on FER2013; what one run trained, measured and wrote comes back as an
:class:`AttributeTraining`."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ...attributes.analyze import ATTRIBUTE_EMBEDDER
from ...attributes.heads import Head
from ...config import Settings
from ...pipeline import FacePipeline
from . import train as tr
from . import train_emotion as te
from . import train_tuned as tt

ACTIONS = ("age", "gender", "race", "emotion")

Say = Callable[[str], None]


@dataclass(frozen=True)
class AttributeOptions:
    """What to train and how: the command's options."""

    actions: frozenset[str]  # a subset of ACTIONS
    embedder: str | None = None  # None: the one analyze reads (ATTRIBUTE_EMBEDDER)
    seed: int | None = None  # None: the training data's seed (train.SEED)
    epochs: int = 1000  # full-batch epochs per age/gender/race head
    workers: int | None = None  # None: all cores
    fer_limit: int | None = None  # FER2013 images per split
    cnn_epochs: int | None = None  # None: the emotion CNN recipe's; 0: no CNN
    tuned_epochs: int | None = None  # None: the tuned recipe's; 0: no tuned network


@dataclass
class AttributeTraining:
    """One run: what it trained on, its held-out figures and the files it wrote."""

    seed: int
    heldout_metrics: dict[str, object] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    data: dict[str, object] | None = None  # the age/gender/race data, when those were trained
    epochs: int | None = None
    tuned_recipe: dict[str, object] | None = None  # when the tuned network was trained
    removed: list[str] = field(default_factory=list)  # tuned heads this run made stale
    emotion_data: dict[str, object] | None = None  # when emotion was trained
    emotion_recipe: dict[str, object] | None = None
    emotion_cnn_recipe: dict[str, object] | None = None  # None: no CNN
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """The report ``--json`` prints: only the keys of the parts this run trained."""
        out: dict[str, object] = {
            "seed": self.seed,
            "heldout_metrics": self.heldout_metrics,
            "files": self.files,
        }
        if self.data is not None:
            out |= {"data": self.data, "epochs": self.epochs}
        if self.tuned_recipe is not None:
            out["tuned_recipe"] = self.tuned_recipe
        if self.removed:
            out["removed"] = self.removed
        if self.emotion_data is not None:
            out |= {
                "emotion_data": self.emotion_data,
                "emotion_recipe": self.emotion_recipe,
                "emotion_cnn_recipe": self.emotion_cnn_recipe,
            }
        out["seconds"] = self.seconds
        return out


@dataclass
class _Log:
    """Where a run reports: ``say`` for what it trains on, ``note`` for progress."""

    say: Say
    note: Say
    start: float = field(default_factory=time.perf_counter)
    images: int = 0

    def processed(self, n: int) -> None:
        self.images += n
        self.note(f"processed {self.images} new images")

    def epoch(self, what: str, epochs: int) -> Callable[[int, float], None]:
        def report(epoch: int, loss: float) -> None:
            self.note(
                f"{what} epoch {epoch}/{epochs}: training loss {loss:.3f} "
                f"({time.perf_counter() - self.start:.0f} s)"
            )

        return report


def train_attributes(
    settings: Settings, options: AttributeOptions, say: Say, note: Say
) -> AttributeTraining:
    """Train the heads ``options.actions`` names and write them to ``<data_dir>/cache/models``;
    ``say`` gets a line on the data of each part, ``note`` the progress."""
    if options.seed is None:
        options = dataclasses.replace(options, seed=tr.SEED)
    log = _Log(say, note)
    run = AttributeTraining(seed=options.seed)
    with FacePipeline(
        None,
        options.embedder or ATTRIBUTE_EMBEDDER,
        settings=settings,
        workers=options.workers or os.cpu_count() or 1,
    ) as pipeline:
        face_heads = options.actions - {"emotion"}
        if face_heads:
            _train_face_heads(pipeline, settings, options, face_heads, run, log)
        if "emotion" in options.actions:
            _train_emotion(pipeline, settings, options, run, log)
    run.seconds = round(time.perf_counter() - log.start, 1)
    return run


def _train_face_heads(
    pipeline: FacePipeline,
    settings: Settings,
    options: AttributeOptions,
    actions: frozenset[str],
    run: AttributeTraining,
    log: _Log,
) -> None:
    """The embedding heads of ``actions``, then the tuned network where the recipe and the
    pipeline allow it (else the tuned heads of ``actions`` are removed: they would be stale)."""
    seed = run.seed
    data = tr.load_data(pipeline, settings.shared_dir, settings.cache_dir, seed, log.processed)
    log.say(f"data: {json.dumps(data.describe())}")
    log.say(f"seed: {seed}; epochs: {options.epochs}")
    heads = tr.train_heads(data, seed=seed, epochs=options.epochs, actions=actions)
    metrics = tr.evaluate_heads(heads, data)
    paths = tr.save_heads(heads, data, metrics, settings)
    run.data, run.epochs = data.describe(), options.epochs
    recipe = tt.TunedRecipe()
    if options.tuned_epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=options.tuned_epochs)
    tuned_actions = [a for a in tt.TUNED_ACTIONS if a in actions]
    if recipe.epochs and tt.tuned_available(pipeline):
        metrics, tuned_paths = _train_tuned(
            pipeline, settings, recipe, data, heads, tuned_actions, run, log
        )
        paths |= tuned_paths
    else:
        tt.remove_tuned(tuned_actions, settings)
    run.heldout_metrics.update(metrics)
    run.files.update({k: str(v) for k, v in paths.items()})


def _train_tuned(
    pipeline: FacePipeline,
    settings: Settings,
    recipe: tt.TunedRecipe,
    data: tr.AttributeData,
    heads: dict[str, Head],
    actions: list[str],
    run: AttributeTraining,
    log: _Log,
) -> tuple[dict[str, object], dict[str, Path]]:
    """dlib's ResNet fine-tuned for ``actions``: its held-out figures (beside the embedding
    heads') and the files it wrote."""
    net = tt.load_dlib_resnet(settings)
    utk_acts, lfw_acts = tt.frozen_for(
        pipeline, tt.TunedNetwork(net), data, settings.shared_dir, settings.cache_dir, log.processed
    )
    network = tt.train_tuned_network(
        net,
        data,
        utk_acts,
        lfw_acts,
        seed=run.seed,
        recipe=recipe,
        progress=log.epoch("tuned network", recipe.epochs),
    )
    metrics = tt.evaluate_tuned(network, heads, data, utk_acts, lfw_acts)
    paths = tt.save_tuned(network, actions, data, metrics, recipe, run.seed, settings)
    run.tuned_recipe = recipe.describe()
    # the other actions' tuned heads read the network this run replaced
    others = [a for a in tt.TUNED_ACTIONS if a not in actions]
    if replaced := tt.remove_tuned(others, settings):
        run.removed = replaced
        log.say(
            f"removed {', '.join(replaced)}: they read the tuned network this "
            "run replaced, so the embedding heads answer those attributes "
            "until they are trained again (--actions age,gender,race)"
        )
    return metrics, paths


def _train_emotion(
    pipeline: FacePipeline,
    settings: Settings,
    options: AttributeOptions,
    run: AttributeTraining,
    log: _Log,
) -> None:
    """The emotion head on the FER model's features and, unless its recipe has no epochs, the
    small CNN on grey faces, measured together."""
    emo = te.load_emotion_data(
        pipeline, settings.shared_dir, settings.cache_dir, options.fer_limit, log.processed
    )
    log.say(f"emotion data: {json.dumps(emo.describe())}")
    cnn_recipe = te.EMOTION_CNN_RECIPE
    if options.cnn_epochs is not None:
        cnn_recipe = dataclasses.replace(cnn_recipe, epochs=options.cnn_epochs)
    head = te.train_emotion_head(emo, seed=run.seed)
    cnn = None
    if cnn_recipe.epochs:
        progress = log.epoch("emotion CNN", cnn_recipe.epochs)
        cnn = te.train_emotion_cnn(emo, run.seed, cnn_recipe, progress)
    metrics = te.evaluate_emotion(head, emo, cnn)
    paths = te.save_emotion_models(emo, metrics, settings, head, cnn)
    run.emotion_data = emo.describe()
    run.emotion_recipe = dataclasses.asdict(te.EMOTION_RECIPE)
    run.emotion_cnn_recipe = dataclasses.asdict(cnn_recipe) if cnn else None
    run.heldout_metrics["emotion"] = metrics
    run.files.update({k: str(v) for k, v in paths.items()})
