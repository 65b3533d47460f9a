"""HTTP ``find`` on a large gallery: latency (p50/p99) and throughput at 1, 8 and 32 clients.

    .venv/bin/python bench/http_find.py                    # 100k faces on Postgres
    .venv/bin/python bench/http_find.py --faces 20000 --seconds 5   # quicker

Builds a gallery of synthetic faces plus a few real LFW people in a fresh Postgres database
(synthetic rows bulk-loaded with COPY, see ``bulk_load``; the real people through
``FaceService.enroll``).
The synthetic identities come from the Gaussian face model of bench/index_scale.py, fitted to
the real LFW embedding cache when one exists (``--real``): identity centre plus within-identity
noise, ``--per-identity`` faces each, so the index sees face-like (hard) data, not uniform
noise. It then starts ``faceid serve`` in its own process, and loads it
from another process on loopback with httpx for a bounded time per concurrency level. The
``Server-Timing`` header of each answer splits the time into decode, detect_embed (detection,
alignment, embedding), search (index + metadata) and app (all server time); the rest of the
client's latency is HTTP (loopback, parsing, event loop and client).
Writes bench/results/http_find.json.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import multiprocessing as mp
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from identity_service.api.settings import ApiSettings  # noqa: E402
from identity_service.service import FaceService  # noqa: E402
from identity_service.store import upgrade  # noqa: E402

PG = os.environ.get(
    "FACEID_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
EMBEDDER = "dlib-resnet-v1"
CHUNK_IDENTITIES = 10_000
PEOPLE = ["Abel_Pacheco", "Adam_Sandler", "Abdullah_Gul", "Akhmed_Zakayev"]


def face_model(real: Path | None) -> Any:
    """The gallery distribution of bench/index_scale.py (its docstring argues the choice)."""
    sys.path.insert(0, str(REPO / "bench"))
    from index_scale import FaceModel, load_real, newest_lfw_cache

    real = real or newest_lfw_cache()
    if real is not None and real.is_file():
        embeddings, labels = load_real(real)
        return FaceModel(embeddings, labels, seed=7)
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
    ~20 minutes on this machine, and how the gallery got there is not what is measured."""
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
    settings: ApiSettings, n_faces: int, per_identity: int, lfw: Path, model: Any
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


def _load_worker(url: str, probes: list[bytes], clients: int, seconds: float, out: Any) -> None:
    """Runs in its own process: ``clients`` threads, each one keep-alive connection."""
    import httpx

    samples: list[dict[str, float]] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def run(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            n = i
            while time.perf_counter() < stop:
                probe = probes[n % len(probes)]
                n += 1
                t = time.perf_counter()
                r = http.post(
                    "/v1/collections/bench/find", files={"image": ("p.jpg", probe)}, data={"k": "5"}
                )
                latency = (time.perf_counter() - t) * 1000
                if r.status_code != 200:
                    with lock:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                    continue
                timing = {"latency": latency}
                for part in r.headers.get("server-timing", "").split(","):
                    name, _, dur = part.strip().partition(";dur=")
                    if dur:
                        timing[name] = float(dur)
                with lock:
                    samples.append(timing)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(
        {
            "samples": samples,
            "errors": errors[:5],
            "n_errors": len(errors),
            "wall": time.perf_counter() - start,
        }
    )


def load(url: str, probes: list[bytes], clients: int, seconds: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_load_worker, args=(url, probes, clients, seconds, queue))
    proc.start()
    result = queue.get()
    proc.join()
    samples = result["samples"]
    lat = np.array([s["latency"] for s in samples])
    mean = {
        k: round(float(np.mean([s.get(k, 0.0) for s in samples])), 2)
        for k in ("decode", "detect_embed", "search", "app")
    }
    mean["http_and_queue"] = round(float(np.mean(lat)) - mean["app"], 2)
    return {
        "clients": clients,
        "requests": len(samples),
        "errors": result["n_errors"],
        "error_samples": result["errors"],
        "throughput_rps": round(len(samples) / result["wall"], 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "mean_split_ms": mean,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--per-identity", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--server-workers", type=int, default=1)
    parser.add_argument("--real", type=Path, default=None, help="default: newest LFW cache")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "http_find.json")
    args = parser.parse_args()
    model = face_model(args.real)

    url_db, drop = fresh_database()
    tmp = Path(tempfile.mkdtemp(prefix="faceid-bench-"))
    upgrade(url_db)
    settings = ApiSettings(database_url=url_db, data_dir=tmp, embedder=EMBEDDER, workers=1)
    lfw = settings.lfw_dir
    proc = None
    try:
        report: dict[str, Any] = {"faces_requested": args.faces, "embedder": EMBEDDER}
        report.update(build_gallery(settings, args.faces, args.per_identity, lfw, model))
        print(f"gallery: {report}", flush=True)
        port = _free_port()
        env = {
            **os.environ,
            "FACEID_DATABASE_URL": url_db,
            "FACEID_DATA_DIR": str(tmp),
            "FACEID_EMBEDDER": EMBEDDER,
            "FACEID_WORKERS": "1",
            "FACEID_API_AUTH": "false",
        }
        env.pop("FACEID_BROKER_URL", None)
        log = open(tmp / "server.log", "wb")  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "identity_service",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(args.server_workers),
            "--log-level",
            "warning",
            "--no-auth",
        ]

        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc, tmp / "server.log")
        report["server_start_seconds"] = round(time.perf_counter() - start, 1)
        probes = [(lfw / "images" / p / f"{p}_0003.jpg").read_bytes() for p in PEOPLE]
        load(url, probes, 1, 2.0)  # warm-up
        report["runs"] = []
        for clients in (int(c) for c in args.clients.split(",")):
            run = load(url, probes, clients, args.seconds)
            report["runs"].append(run)
            print(json.dumps(run), flush=True)
        report["machine"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_end": os.getloadavg(),
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        _print_table(report)
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        drop()


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
        f"{report['embedder']}; insert {report['insert_seconds']} s"
    )
    print(
        f"{'clients':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'decode':>7} "
        f"{'det+emb':>7} {'search':>7} {'app':>7} {'http':>7} {'errors':>6}"
    )
    for r in report["runs"]:
        m = r["mean_split_ms"]
        print(
            f"{r['clients']:>7} {r['throughput_rps']:>7} {r['p50_ms']:>7} {r['p99_ms']:>7} "
            f"{m['decode']:>7} {m['detect_embed']:>7} {m['search']:>7} {m['app']:>7} "
            f"{m['http_and_queue']:>7} {r['errors']:>6}"
        )


if __name__ == "__main__":
    main()
