"""A gallery on Milvus next to in-process FAISS, in one run: per-query p50 and p99, recall@1
against exact search, and freshness (enrolled -> findable, deleted -> gone), with the ratios.

    python bench/milvus_scale.py --sizes 1000000            # the 1M target (see docs/benchmarks.md)
    python bench/milvus_scale.py --sizes 200000             # what milvus-lite loads in ~10 min here
    python bench/milvus_scale.py --milvus-url milvus://host:19530   # a Milvus of your own
    python bench/milvus_scale.py --quick                    # smoke run

Without ``--milvus-url`` it starts a milvus-lite server (``milvus-lite server``) in a temporary
folder. The galleries are index_scale.py's (a Gaussian fitted to real LFW embeddings, one face
per identity, probes a second face of an enrolled identity). FAISS is the index ``auto`` picks
(ivfpq-refine at these sizes); Milvus is faceid's HNSW collection (M=32, efConstruction=200,
metric IP), filled as a rebuild fills it (insert, flush, wait for the index), then searched
through the same client calls faceid makes, at each ``ef`` swept. Freshness is measured twice:
at the gallery (an add / a delete until a search sees it) and through FaceService on Postgres
(a commit on one process until ``find`` on another returns the face; as index_freshness.py).
Writes bench/results/milvus_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_freshness import DEFAULT_SERVER
from index_scale import DEFAULT_REAL, FaceModel, hits, latency, load_real, make_gallery, recall
from milvus_freshness import service_freshness

from identity_service.index import GalleryIndex
from identity_service.index.milvus import MilvusCollection, MilvusConfig, client_for

OPS = ("add", "remove")


@contextmanager
def milvus_server(url: str | None, data_dir: str | None):
    """The Milvus to measure: ``url``, or a milvus-lite server started here."""
    if url:
        yield url, "given", None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(dir=data_dir) as folder:
        exe = Path(sys.executable).with_name("milvus-lite")
        log = open(Path(folder) / "server.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [str(exe), "server", "--host", "127.0.0.1", "--port", str(port), "--data-dir", folder],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"milvus://127.0.0.1:{port}?prefix=bench"
            yield url, "milvus-lite started by the bench", Path(folder)
        finally:
            proc.terminate()
            proc.wait(60)
            log.close()


def wait_until_answering(config: MilvusConfig, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return str(client_for(config).get_server_version())
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_for_index(
    remote: MilvusCollection, physical: str, limit_s: float, lite_dir: Path | None
) -> tuple[float, bool]:
    """(seconds until every row is indexed or ``limit_s`` passed, whether every row was). Milvus
    says so in describe_index; milvus-lite always says "Finished" and builds each segment's HNSW
    in the background, so there the wait is for an index file beside every data file, twice in
    a row. Milvus compacts small segments into larger ones and indexes those again, so its rows
    can go back to pending."""
    started, settled = time.perf_counter(), 0
    while time.perf_counter() - started < limit_s and settled < 2:
        time.sleep(2)
        if lite_dir is not None:
            part = lite_dir / "collections" / physical / "partitions" / "_default"
            data = {p.name.split(".")[0] for p in part.glob("data/*.parquet")}
            built = {p.name.split(".")[0] for p in part.glob("indexes/*.idx")}
            settled = settled + 1 if data and data <= built else 0
            continue
        info = {
            k: int(v)
            for k, v in remote.call("describe_index", physical, "embedding").items()
            if k.endswith("_rows")
        }
        total, indexed = info.get("total_rows", 0), info.get("indexed_rows", 0)
        settled = 2 if total and not info.get("pending_index_rows", 0) and indexed >= total else 0
    return time.perf_counter() - started, settled >= 2


def measure_faiss(gallery, probes, exact, enrolled, args) -> tuple[dict[str, Any], GalleryIndex]:
    """The index ``auto`` builds, at the cheapest nprobe swept that reaches the recall target
    (as index_scale.py chooses), so both stores are compared at the same recall."""
    faiss.omp_set_num_threads(2)
    index = GalleryIndex(gallery.shape[1], "auto")
    t0 = time.perf_counter()
    index.rebuild(np.arange(len(gallery), dtype=np.int64), gallery)
    build = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    sweep, knob = [], {}
    for nprobe in args.nprobe_sweep if index.backend_kind != "flat" else []:
        found = index.search(probes, 10, nprobe=nprobe).ids
        lat = latency(lambda q, v=nprobe: index.search(q, 10, nprobe=v), probes, 1, 100, 2)
        sweep.append({"nprobe": nprobe, "recall1": recall(found, exact, 1), "p50_ms": lat.p50_ms})
    if sweep:
        good = [r for r in sweep if r["recall1"] >= args.target_recall]
        knob = {"nprobe": (good or sweep[-1:])[0]["nprobe"]}
    found = index.search(probes, 10, **knob).ids
    single = latency(lambda q: index.search(q, 10, **knob), probes, 1, args.latency_queries, 10)
    batch = latency(lambda q: index.search(q, 10, **knob), probes, 100, 20, 10)
    return {
        "kind": index.backend_kind,
        "params": knob,
        "build_s": round(build, 1),
        "single": vars(single),
        "batch100": vars(batch),
        "recall1": recall(found, exact, 1),
        "recall10": recall(found, exact, 10),
        "hit1": hits(found, enrolled),
        "sweep": sweep,
    }, index


def measure_milvus(remote, gallery, probes, exact, enrolled, args, lite_dir) -> dict[str, Any]:
    ids = np.arange(len(gallery), dtype=np.int64)
    physical = remote.create_physical()
    t0 = time.perf_counter()
    remote.insert(physical, ids, gallery)
    insert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    remote.flush(physical)
    flush_s = time.perf_counter() - t0
    index_s, indexed = wait_for_index(remote, physical, args.index_wait, lite_dir)
    remote.point_alias(physical)
    done = "" if indexed else " (NOT every row indexed: searches scan the rest)"
    print(f"  milvus: insert {insert_s:.1f} s, flush {flush_s:.1f} s, index {index_s:.1f} s{done}")
    sweep = []
    for ef in args.ef_sweep:
        found = remote.search(probes, 10, ef)[1]
        lat = latency(lambda q, e=ef: remote.search(q, 10, e), probes, 1, 40, 5)
        row = {"ef": ef, "recall1": recall(found, exact, 1), "recall10": recall(found, exact, 10)}
        sweep.append({**row, "hit1": hits(found, enrolled), "p50_ms": lat.p50_ms})
        print(
            f"    ef={ef}: R@1 {row['recall1']:.4f} R@10 {row['recall10']:.4f} p50 {lat.p50_ms:.1f}"
        )
    good = [r for r in sweep if r["recall1"] >= args.target_recall]
    chosen = (good or sweep[-1:])[0]
    ef = chosen["ef"]
    single = latency(lambda q: remote.search(q, 10, ef), probes, 1, args.latency_queries, 30)
    batch = latency(lambda q: remote.search(q, 10, ef), probes, 100, 10, 30)
    return {
        "index": f"HNSW M={remote.config.m} efConstruction={remote.config.ef_construction}",
        "insert_s": round(insert_s, 1),
        "insert_rows_per_s": round(len(gallery) / insert_s),
        "flush_s": round(flush_s, 1),
        "index_build_s": round(index_s, 1),
        "every_row_indexed": indexed,
        "ef": ef,
        "single": vars(single),
        "batch100": vars(batch),
        "recall1": chosen["recall1"],
        "recall10": chosen["recall10"],
        "hit1": chosen["hit1"],
        "sweep": sweep,
    }


def gallery_freshness(remote, index: GalleryIndex, probes, trials: int, ef: int) -> dict:
    """An add (a delete) until a search for that face finds it among the 20 nearest (no
    longer finds it), per store; a face still not found after 10 s counts as missed."""
    out: dict[str, list[float]] = {f"{s}_{op}": [] for s in ("faiss", "milvus") for op in OPS}
    missed = dict.fromkeys(out, 0)
    physical = remote.physical()
    for t in range(trials):
        face = 10_000_000_000 + t
        ids, vector = np.array([face], dtype=np.int64), probes[t % len(probes)][None]
        for store in ("faiss", "milvus"):
            for op in OPS:
                t0 = time.perf_counter()
                if store == "faiss" and op == "add":
                    index.add(ids, vector)
                elif store == "faiss":
                    index.remove(ids)
                elif op == "add":
                    remote.upsert(physical, ids, vector)
                else:
                    remote.delete(physical, [face])
                deadline = t0 + 10
                while (face in found(store, index, remote, vector, ef)) != (op == "add"):
                    if time.perf_counter() > deadline:
                        missed[f"{store}_{op}"] += 1  # an ANN miss, not a delay
                        break
                    time.sleep(0.001)
                else:
                    out[f"{store}_{op}"].append((time.perf_counter() - t0) * 1000)
    return {k: {**percentiles(v), "missed": missed[k]} for k, v in out.items()}


def found(store: str, index: GalleryIndex, remote, vector: np.ndarray, ef: int) -> set[int]:
    """The 20 faces find would rank for this probe (it asks for at least 20)."""
    if store == "faiss":
        return set(index.search(vector, 20).ids[0].tolist())
    return set(remote.search(vector, 20, ef)[1][0].tolist())


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values or [np.nan])
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
    }


def ratios(f: dict[str, Any], m: dict[str, Any]) -> dict[str, float]:
    return {
        "p50": round(m["single"]["p50_ms"] / f["single"]["p50_ms"], 1),
        "p99": round(m["single"]["p99_ms"] / f["single"]["p99_ms"], 1),
        "batch100_p50": round(m["batch100"]["p50_ms"] / f["batch100"]["p50_ms"], 1),
    }


def run_case(n: int, dim: int, model: FaceModel, url: str, args, lite_dir) -> dict[str, Any]:
    print(f"\n=== {n:,} faces x {dim}-d ===", flush=True)
    gallery, probes, enrolled, source = make_gallery(n, dim, args.queries, model, args.seed)
    flat = GalleryIndex(dim, "flat")
    flat.rebuild(np.arange(n, dtype=np.int64), gallery)
    exact = flat.search(probes, 10).ids
    del flat
    fa, index = measure_faiss(gallery, probes, exact, enrolled, args)
    print(
        f"  faiss {fa['kind']} {fa['params']}: p50 {fa['single']['p50_ms']:.2f} ms, "
        f"R@1 {fa['recall1']:.4f}",
        flush=True,
    )
    config = MilvusConfig.from_url(url)
    remote = MilvusCollection(config, f"{config.prefix}_n{n}_d{dim}", dim, "bench")
    remote.drop_all()
    try:
        mi = measure_milvus(remote, gallery, probes, exact, enrolled, args, lite_dir)
        fresh = gallery_freshness(remote, index, probes, args.freshness_trials, mi["ef"])
    finally:
        remote.drop_all()
    case = {"n": n, "dim": dim, "data": source, "faiss": fa, "milvus": mi}
    case |= {"ratio_milvus_over_faiss": ratios(fa, mi), "gallery_freshness": fresh}
    print(json.dumps({k: case[k] for k in ("ratio_milvus_over_faiss", "gallery_freshness")}))
    return case


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--milvus-url", default=None, help="milvus://host:port (default: milvus-lite)")
    ap.add_argument(
        "--real",
        type=Path,
        default=None,
        help=f"npz with 'embeddings' of at most --dim dimensions (e.g. {DEFAULT_REAL}); "
        "default: index_scale.py's stand-in for dlib-resnet LFW statistics (128-d)",
    )
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--latency-queries", type=int, default=300)
    ap.add_argument("--ef-sweep", default="64,128,256,512")
    ap.add_argument("--nprobe-sweep", default="64,128,256,384,512,768")
    ap.add_argument("--target-recall", type=float, default=0.99)
    ap.add_argument("--index-wait", type=float, default=1800, help="seconds to wait for HNSW")
    ap.add_argument("--freshness-trials", type=int, default=50)
    ap.add_argument("--service-trials", type=int, default=50, help="0: skip the Postgres part")
    ap.add_argument("--server", default=os.environ.get("FACEID_TEST_POSTGRES_URL", DEFAULT_SERVER))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tmp", default=None, help="folder for milvus-lite's data")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "milvus_scale.json"
    )
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.queries, args.latency_queries = "3000", 100, 30
        args.freshness_trials = args.service_trials = 5
    args.ef_sweep = [int(v) for v in args.ef_sweep.split(",")]
    args.nprobe_sweep = [int(v) for v in args.nprobe_sweep.split(",")]
    real = labels = None
    if args.real and args.real.exists():
        real, labels = load_real(args.real)
    model = FaceModel(real, labels, args.seed)
    started = time.perf_counter()
    with milvus_server(args.milvus_url, args.tmp) as (url, how, lite_dir):
        version = wait_until_answering(MilvusConfig.from_url(url))
        print(f"Milvus {version} ({how}); faiss {faiss.__version__}; {os.cpu_count()} CPUs")
        sizes = [int(n) for n in args.sizes.split(",")]
        cases = [run_case(n, args.dim, model, url, args, lite_dir) for n in sizes]
        service = (
            service_freshness(args.server, url, args.service_trials) if args.service_trials else {}
        )
    total = time.perf_counter() - started
    write_report(args, {"version": version, "server": how}, cases, service, total)
    return 0


def write_report(args, milvus: dict, cases: list, service: dict, total: float) -> None:
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        },
        "milvus": milvus,
        "faiss": faiss.__version__,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "total_s": round(total, 1),
        "cases": cases,
        "service_freshness": service,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"total {total / 60:.1f} min; wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
