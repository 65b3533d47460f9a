"""HTTP ``find`` on a large gallery: latency (p50/p99), throughput and load shed at 1, 8 and 32
clients, before and after, in one run.

    .venv/bin/python bench/http_find.py                    # 100k faces on Postgres
    .venv/bin/python bench/http_find.py --faces 20000 --seconds 5   # quicker
    .venv/bin/python bench/http_find.py --faces 1000000 --seconds 20

Builds a gallery of synthetic faces plus a few real LFW people in a fresh Postgres database
(synthetic rows bulk-loaded with COPY, see ``bulk_load``; the real people through
``FaceService.enroll``).
The synthetic identities come from the Gaussian face model of bench/index_scale.py, fitted to
the real LFW embedding cache when one exists (``--real``): identity centre plus within-identity
noise, ``--per-identity`` faces each, so the index sees face-like (hard) data, not uniform
noise. Then, for each of ``--modes``, it starts ``faceid serve`` in its own process and loads
it from another process on loopback with httpx for a bounded time per concurrency level
(bench/http_load.py):

- ``baseline``: the code at ``--baseline-rev`` (before the query path was reworked), on a copy
  of the database at that code's schema;
- ``inline``: this code with ``FACEID_API_MODEL_WORKERS=0`` (detection and embedding in the
  request's thread, no queue);
- ``pool``: this code as configured (the model pool, micro-batching, load shedding).

Image probes are real LFW photos; this code's modes are also probed with their embeddings (the
JSON ``embedding`` probe). A client answered 503 waits for Retry-After (at most
``--retry-cap`` s, spread by up to ``--retry-spread`` more, as FaceIDClient) and tries again;
those are counted as shed, beside the server's ``faceid_requests_shed_total``. The
``Server-Timing`` header of each answer splits the server's time into decode, queue, model,
point, index, owners and app (the baseline's: decode, detect_embed, search, app); overhead is
app less decode and model, http the client's latency less app.
Writes bench/results/http_find.json.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from identity_service.api.auth import create_api_key  # noqa: E402
from identity_service.config import ModelSettings, Settings  # noqa: E402
from identity_service.service import FaceService  # noqa: E402
from identity_service.store import Repository, make_engine, upgrade  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from http_load import load  # noqa: E402

PG = os.environ.get(
    "FACEID_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
EMBEDDER = "dlib-resnet-v1"
DIM = 128
CHUNK_IDENTITIES = 10_000
PEOPLE = ["Abel_Pacheco", "Adam_Sandler", "Abdullah_Gul", "Akhmed_Zakayev"]


def face_model(real: Path | None) -> Any:
    """The gallery distribution of bench/index_scale.py (its docstring argues the choice)."""
    sys.path.insert(0, str(REPO / "bench"))
    from index_scale import FaceModel, load_real, newest_lfw_cache

    real = real or newest_lfw_cache()
    if real is not None and real.is_file():
        embeddings, labels = load_real(real)
        if embeddings.shape[1] == DIM:  # a cache of another model does not fit its vectors
            return FaceModel(embeddings, labels, seed=7)
        print(f"{real} holds {embeddings.shape[1]}-d embeddings, not {DIM}: stand-in model")
    return FaceModel(None, None, seed=7)


def fresh_database() -> tuple[str, Any]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(PG)
    name = f"faceid_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return server.set(database=name).render_as_string(hide_password=False), drop


def _copy_rows(cursor: Any, table: str, columns: str, rows: Any) -> None:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    buf.seek(0)
    cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", buf)


def bulk_load(engine: Any, coll: Any, model: Any, n_faces: int, per_identity: int) -> None:
    """The rows ``Repository.upsert_identity`` + ``add_faces`` would write (identities, faces,
    one ``index_log`` add per face), loaded with COPY: row by row, 1M synthetic faces take
    ~20 minutes on a 2-core VM, and how the gallery got there is not what is measured."""
    rng = np.random.default_rng(0)
    n_ids = -(-n_faces // per_identity)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        names = (f"synthetic-{i}" for i in range(n_ids))
        _copy_rows(
            cur,
            "identities",
            "collection_id, external_id, metadata, deleted",
            ((coll.id, name, "{}", "f") for name in names),
        )
        cur.execute("SELECT id FROM identities WHERE collection_id = %s ORDER BY id", (coll.id,))
        identity_ids = [row[0] for row in cur.fetchall()]
        box, marks = json.dumps([0, 0, 1, 1]), json.dumps([[0, 0]] * 5)
        for lo in range(0, n_ids, CHUNK_IDENTITIES):
            rows = []
            for i in range(lo, min(n_ids, lo + CHUNK_IDENTITIES)):
                n = min(per_identity, n_faces - i * per_identity)
                vecs = model.centres(1, rng) + model.noise(n, rng)
                vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype("<f4")
                rows += [
                    (identity_ids[i], coll.id, f"{i * per_identity + j:064x}", 0, box, marks,
                     1.0, None, "\\x" + v.tobytes().hex(), coll.model_tag)
                    for j, v in enumerate(vecs)
                ]  # fmt: skip
            _copy_rows(
                cur,
                "faces",
                "identity_id, collection_id, image_sha256, face_index, bbox, landmarks, "
                "det_score, quality, embedding, model",
                rows,
            )
        cur.execute(
            "INSERT INTO index_log (collection_id, face_id, op) "
            "SELECT collection_id, id, 'add' FROM faces WHERE collection_id = %s ORDER BY id",
            (coll.id,),
        )
        raw.commit()
    finally:
        raw.close()


def build_gallery(
    settings: Settings, n_faces: int, per_identity: int, lfw: Path, model: Any
) -> dict:
    """Synthetic faces in bulk, then real LFW people (photos 1-2) to find with photo 3."""
    report: dict[str, Any] = {"gallery_data": model.source}
    with FaceService.embedded(settings) as service:
        coll = service.create_collection("bench")
        start = time.perf_counter()
        bulk_load(service.engine, coll, model, n_faces, per_identity)
        report["insert_seconds"] = round(time.perf_counter() - start, 1)
        for person in PEOPLE:
            photos = [lfw / "images" / person / f"{person}_{n:04d}.jpg" for n in (1, 2)]
            service.enroll(coll, person, photos)
        start = time.perf_counter()
        follower = service.galleries.fresh(coll, force=True)
        report["index_build_seconds"] = round(time.perf_counter() - start, 1)
        report["index_kind"] = follower.index.backend_kind
        report["gallery_faces"] = len(follower)
        follower.snapshot()  # the server loads this at startup instead of rebuilding
    return report


def probe_embeddings(settings: Settings, probes: list[bytes]) -> list[list[float]]:
    """The probes' embeddings, as a caller that embeds at the edge would send them."""
    from identity_service.pipeline import FacePipeline

    with FacePipeline(embedder=EMBEDDER, settings=settings) as pipeline:
        return [pipeline.represent(p, max_faces=1)[0].embedding.tolist() for p in probes]


def baseline_tree(rev: str, tmp: Path) -> Path:
    """The code at ``rev`` (the commit before this work: the figures it is measured against)."""
    tree = tmp / f"code-{rev}"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def baseline_database(url_db: str, revision: str) -> tuple[str, Any]:
    """A copy of the gallery's database at schema ``revision`` for the baseline's code."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from identity_service.store import downgrade

    source = make_url(url_db)
    name = f"{source.database}_base"
    admin = create_engine(source.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source.database}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = source.set(database=name).render_as_string(hide_password=False)
    downgrade(url, revision)
    return url, drop


class Server:
    """One ``faceid serve`` process, of this tree or of ``code`` (the baseline)."""

    def __init__(
        self, env: dict[str, str], log: Path, workers: int, code: Path = REPO, auth: bool = False
    ) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "identity_service", "serve", "--port", str(self.port)]
        cmd += ["--workers", str(workers), "--log-level", "warning"]
        cmd += [] if auth else ["--no-auth"]
        env = {**env, "PYTHONPATH": str(code)}
        out = open(log, "wb")  # noqa: SIM115 - the process owns it
        start = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        _wait_ready(self.url, self.proc, log)
        self.start_seconds = round(time.perf_counter() - start, 1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(60)


def run_mode(mode: dict[str, Any], args: Any, probes: list[bytes], vectors: list[Any]) -> dict:
    """Image probes at each client count, then embedding probes where the code takes them."""
    key = mode.get("key", "")
    server = Server(
        mode["env"], mode["log"], args.server_workers, mode.get("code", REPO), bool(key)
    )
    out: dict[str, Any] = {"mode": mode["name"], "server_start_seconds": server.start_seconds}
    out["load_avg_at_start"] = os.getloadavg()
    retry = (args.retry_cap, mode.get("spread", args.retry_spread))
    try:
        load(server.url, probes, 1, 2.0, key=key)  # warm-up
        out["image"] = []
        for clients in _counts(args.clients):
            run = load(server.url, probes, clients, args.seconds, *retry, key=key)
            out["image"].append(run)
            print(mode["name"], "image", json.dumps(run), flush=True)
        if mode.get("embedding"):
            out["embedding"] = []
            for clients in _counts(args.embedding_clients):
                run = load(server.url, vectors, clients, args.seconds, *retry, key=key)
                out["embedding"].append(run)
                print(mode["name"], "embedding", json.dumps(run), flush=True)
    finally:
        server.stop()
    return out


def _counts(text: str) -> list[int]:
    return [int(c) for c in text.split(",") if c.strip()]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--per-identity", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--embedding-clients", default="1,8,32")
    parser.add_argument("--server-workers", type=int, default=1)
    parser.add_argument(
        "--modes",
        default="baseline,inline,pool",
        help="baseline: the code at --baseline-rev; inline: this code without the model pool "
        "(FACEID_API_MODEL_WORKERS=0); pool: this code as configured; pool-w1-q0: with 1 model "
        "worker and a queue of 0 (any of -wN, -qN, -nN: model workers' niceness, -jX: "
        "the clients' spread of Retry-After; -auth last: with an API key)",
    )
    parser.add_argument("--baseline-rev", default="ff84fc8")
    parser.add_argument("--retry-cap", type=float, default=1.0, help="longest wait after a 503")
    parser.add_argument(
        "--retry-spread",
        type=float,
        default=0.5,
        help="a 503's wait is spread by up to this much more (FaceIDClient's: 0.5; 0: none)",
    )
    parser.add_argument("--real", type=Path, default=None, help="default: newest LFW cache")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "http_find.json")
    return parser.parse_args()


def _mode(name: str, args: Any, env: dict[str, str], tmp: Path, drops: list[Any]) -> dict:
    """How a mode's server runs: its code, environment and log."""
    mode: dict[str, Any] = {"name": name, "env": dict(env), "log": tmp / f"{name}.log"}
    if name == "baseline":
        mode["code"] = baseline_tree(args.baseline_rev, tmp)
        base_url, base_drop = baseline_database(env["FACEID_DATABASE_URL"], "0002")
        drops.append(base_drop)
        base_dir = tmp / "baseline-data"
        for folder in ("index", "cache"):
            if (tmp / folder).is_dir():
                shutil.copytree(tmp / folder, base_dir / folder)
        mode["env"].update(FACEID_DATABASE_URL=base_url, FACEID_DATA_DIR=str(base_dir))
    else:
        # variants of the pool: images only, but with an API key (-auth) embeddings as well
        mode["embedding"] = name in ("inline", "pool") or name.endswith("-auth")
        if name == "inline":
            mode["env"]["FACEID_API_MODEL_WORKERS"] = "0"
        if name.endswith("-auth"):  # every request authenticated with an API key
            mode["env"]["FACEID_API_AUTH"] = "true"
            engine = make_engine(env["FACEID_DATABASE_URL"])
            mode["key"] = create_api_key(Repository(engine), "default", ["query"])[0]
            engine.dispose()
            name = name.removesuffix("-auth")
        for part in name.split("-")[1:]:  # pool-w1-q0-n0: 1 model worker, queue 0, nice 0
            if part[0] == "j":  # the clients' spread of Retry-After (j0: none)
                mode["spread"] = float(part[1:])
                continue
            setting = {
                "w": "FACEID_API_MODEL_WORKERS",
                "q": "FACEID_API_QUEUE_MAX",
                "n": "FACEID_API_MODEL_NICE",
            }[part[0]]
            mode["env"][setting] = part[1:]
    return mode


def main() -> None:
    args = _arguments()
    model = face_model(args.real)
    url_db, drop = fresh_database()
    tmp = Path(tempfile.mkdtemp(prefix="faceid-bench-"))
    upgrade(url_db)
    settings = Settings(
        database_url=url_db, data_dir=tmp, workers=1, models=ModelSettings(embedder=EMBEDDER)
    )
    lfw = settings.lfw_dir
    drops = [drop]
    try:
        report: dict[str, Any] = {"faces_requested": args.faces, "embedder": EMBEDDER}
        report.update(build_gallery(settings, args.faces, args.per_identity, lfw, model))
        print(f"gallery: {report}", flush=True)
        probes = [(lfw / "images" / p / f"{p}_0003.jpg").read_bytes() for p in PEOPLE]
        vectors = probe_embeddings(settings, probes)
        env = {
            **os.environ,
            "FACEID_DATABASE_URL": url_db,
            "FACEID_DATA_DIR": str(tmp),
            "FACEID_SHARED_DIR": str(settings.shared_dir),
            "FACEID_EMBEDDER": EMBEDDER,
            "FACEID_WORKERS": "1",
            "FACEID_API_AUTH": "false",
        }
        env.pop("FACEID_BROKER_URL", None)
        modes = [_mode(name, args, env, tmp, drops) for name in args.modes.split(",")]
        report["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
        report["machine"]["load_avg_at_start"] = os.getloadavg()
        report["modes"] = [run_mode(mode, args, probes, vectors) for mode in modes]
        report["machine"]["load_avg_at_end"] = os.getloadavg()
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        _print_table(report)
    finally:
        for undo in reversed(drops):
            undo()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=30).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise SystemExit(f"server did not become ready:\n{log.read_text()[-3000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _print_table(report: dict[str, Any]) -> None:
    print(
        f"\nHTTP find, gallery {report['gallery_faces']} faces ({report['index_kind']}), "
        f"{report['embedder']}; split: p50 ms of Server-Timing; overhead = app - decode - model"
    )
    cols = ("decode", "queue", "model", "point", "index", "owners", "overhead", "app", "http")
    head = f"{'mode':>8} {'probe':>9} {'clients':>7} {'req/s':>6} {'p50':>7} {'p99':>7} "
    print(head + f"{'shed':>5} " + " ".join(f"{c:>8}" for c in cols))
    for mode in report["modes"]:
        for probe in ("image", "embedding"):
            for r in mode.get(probe, []):
                m = r["split_p50_ms"]
                split = " ".join(f"{m.get(c, 0.0) if c != 'model' else _model(m):>8}" for c in cols)
                print(
                    f"{mode['mode']:>8} {probe:>9} {r['clients']:>7} {r['throughput_rps']:>6} "
                    f"{r['p50_ms']:>7} {r['p99_ms']:>7} {r['shed']:>5} {split}"
                )


def _model(split: dict[str, float]) -> float:
    return split.get("model", split.get("detect_embed", 0.0))


if __name__ == "__main__":
    main()
