"""Gallery index at scale: flat vs IVF vs HNSW (vs IVF-PQ) vs a deepface-style brute force.

    .venv/bin/python bench/index_scale.py --real PATH.npz   # 100k at 128/512-d, 1M at 128-d
    .venv/bin/python bench/index_scale.py --big-dims 128,512  # ... and 1M at 512-d (+30-40 min)
    .venv/bin/python bench/index_scale.py --quick             # tiny smoke run

Prints one table per gallery and writes bench/results/index_scale.json. How the vectors are
made, and why, is in bench/README.md ("Gallery index at scale").
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from identity_service.index import GalleryIndex, IndexParams, load_snapshot, save_snapshot


def newest_lfw_cache() -> Path | None:
    """The newest LFW pairs cache of ``faceid eval lfw`` (not the all-images ``lfw-all-*``)."""
    found = sorted((Path.home() / ".faceid" / "cache").glob("lfw-*.npz"), key=os.path.getmtime)
    found = [p for p in found if not p.name.startswith("lfw-all-")]
    return found[-1] if found else None


DEFAULT_REAL = newest_lfw_cache()
CHUNK = 100_000


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# ------------------------------------------------------------------------------ vectors
class FaceModel:
    """Face embeddings: identity centre + within-identity noise, both Gaussian, L2-normalised.

    Fitted to real embeddings when given: their mean, the between-identity covariance (total
    minus pooled within-identity covariance, identities from the file's ``labels`` or the
    person folder in ``paths``) and the within-identity covariance. Without a file, a stand-in
    with the statistics measured on dlib-resnet LFW embeddings (5,367 faces, 2,948 people):
    |mean| 0.91 against total variance 0.165, so all faces sit in a narrow cone (impostor cosine
    0.83 +- 0.035); participation ratio ~33 (power-law spectrum, alpha 0.8); within/between
    variance 0.41 (genuine cosine ~0.95).
    """

    def __init__(self, real: np.ndarray | None, labels: np.ndarray | None, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.base_dim = 128 if real is None else real.shape[1]
        eye = np.eye(self.base_dim)
        if real is not None:
            real = unit(real.astype(np.float64)).astype(np.float64)
            self.mean = real.mean(axis=0)
            total = np.cov(real, rowvar=False)
            within = pooled_within(real, labels) if labels is not None else 0.3 * total
            values, vectors = np.linalg.eigh(total - within)
            between = (vectors * np.clip(values, 0, None)) @ vectors.T
            people = f", {len(np.unique(labels))} people" if labels is not None else ""
            self.source = f"Gaussian fitted to {len(real)} real embeddings{people}"
        else:
            rotation, _ = np.linalg.qr(rng.standard_normal((self.base_dim, self.base_dim)))
            spectrum = np.arange(1, self.base_dim + 1) ** -0.8
            shape = (rotation * (spectrum / spectrum.sum())) @ rotation.T
            between, within = 0.117 * shape, 0.048 * shape
            self.mean = 0.91 * rotation[:, -1]
            self.source = "synthetic stand-in for dlib-resnet LFW statistics"
        self.chol_between = np.linalg.cholesky(between + 1e-9 * eye)
        self.chol_within = np.linalg.cholesky(within + 1e-9 * eye)

    def centres(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.mean + rng.standard_normal((n, self.base_dim)) @ self.chol_between.T

    def noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal((n, self.base_dim)) @ self.chol_within.T

    def spread(self) -> tuple[float, float]:
        """Total between- and within-identity variance."""
        return float((self.chol_between**2).sum()), float((self.chol_within**2).sum())


def pooled_within(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Within-identity covariance pooled over identities with at least two faces."""
    scatter, dof = np.zeros((x.shape[1], x.shape[1])), 0
    for label in np.unique(labels):
        rows = x[labels == label]
        if len(rows) > 1:
            centred = rows - rows.mean(axis=0)
            scatter += centred.T @ centred
            dof += len(rows) - 1
    return scatter / max(dof, 1)


def load_real(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with np.load(path) as data:
        embeddings = np.asarray(data["embeddings"], dtype=np.float32)
        labels = None
        if "labels" in data.files:
            labels = np.asarray(data["labels"])
        elif "paths" in data.files:
            labels = np.array([str(p).replace("\\", "/").split("/")[-2] for p in data["paths"]])
    keep = np.linalg.norm(embeddings, axis=1) > 0
    return embeddings[keep], (labels[keep] if labels is not None else None)


class Lift:
    """base -> ``dim``: a random orthonormal embedding of the base-d structure, plus isotropic
    components carrying half as much variance again, for identities (``centres``) and for
    within-identity noise (``noise``) alike. Distances cost dim/base times more, the intrinsic
    dimension rises (as with 512-d ArcFace-style embedders), and the genuine/impostor margin
    relative to the spread stays that of the base model. Identity when dim == base."""

    def __init__(self, model: FaceModel, dim: int, seed: int) -> None:
        if dim < model.base_dim:
            raise SystemExit(f"--dims must be >= the embedding dimension {model.base_dim}")
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.basis = None
        if dim != model.base_dim:
            q, _ = np.linalg.qr(rng.standard_normal((dim, model.base_dim)))
            self.basis = q.T
        between, within = model.spread()
        self.extra = (np.sqrt(0.5 * between / dim), np.sqrt(0.5 * within / dim))

    def _lift(self, x: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
        if self.basis is None:
            return x
        return x @ self.basis + scale * rng.standard_normal((len(x), self.dim))

    def centres(self, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self._lift(c, self.extra[0], rng)

    def noise(self, w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self._lift(w, self.extra[1], rng)


def make_gallery(
    n: int, dim: int, n_queries: int, model: FaceModel, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(gallery (n, dim): one face per identity, probes (n_queries, dim): another face of an
    enrolled identity each, the gallery row of each probe's identity, description)."""
    lift = Lift(model, dim, seed + 1)
    rng = np.random.default_rng(seed + 2)
    gallery = np.empty((n, dim), dtype=np.float32)
    enrolled = np.sort(rng.choice(n, n_queries, replace=False))
    probe_centres = np.empty((n_queries, dim))
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        centres = lift.centres(model.centres(hi - lo, rng), rng)
        gallery[lo:hi] = unit(centres + lift.noise(model.noise(hi - lo, rng), rng))
        mine = (enrolled >= lo) & (enrolled < hi)
        probe_centres[mine] = centres[enrolled[mine] - lo]
    probes = unit(probe_centres + lift.noise(model.noise(n_queries, rng), rng))
    return gallery, probes, enrolled, f"{model.source}; {dim}-d" + (" (lifted)" * (dim != 128))


# ------------------------------------------------------------------------------ measuring
@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    n: int


@dataclass
class KindResult:
    kind: str
    params: dict
    build_s: float
    index_bytes: int
    single: Latency
    batch100: Latency
    recall1: float
    recall10: float
    hit1: float  # probes whose own enrolled face ranks first (exact search: CaseResult)
    sweep: list[dict] = field(default_factory=list)


@dataclass
class CaseResult:
    n: int
    dim: int
    data: str
    kinds: list[KindResult]
    exact_hit1: float
    peers: dict[str, Latency]
    chosen: str
    speedup_vs_peer: dict[str, float]
    restart: dict | None = None
    load_avg: list[float] = field(default_factory=list)  # 1-min load before / after: noise


def timed(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def latency(fn, queries: np.ndarray, batch: int, max_n: int, budget_s: float) -> Latency:
    """Per-call latency of fn(queries[i:i+batch]); stops at max_n calls or the time budget."""
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    for i in range(max_n):
        lo = (i * batch) % max(1, len(queries) - batch + 1)
        dt, _ = timed(fn, queries[lo : lo + batch])
        times.append(dt)
        if time.perf_counter() > deadline and len(times) >= 5:
            break
    ms = np.array(times) * 1e3
    return Latency(float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(ms))


def recall(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    hits = [
        len(set(f[:k].tolist()) & set(e[:k].tolist())) for f, e in zip(found, exact, strict=True)
    ]
    return sum(hits) / (k * len(exact))


def hits(found: np.ndarray, enrolled: np.ndarray) -> float:
    return float((found[:, 0] == enrolled).mean())


def deepface_loop(gallery: list[np.ndarray], q: np.ndarray, k: int) -> np.ndarray:
    """What deepface's find does per probe: a Python loop over stored representations, cosine
    distance from a dot product and two norms for each, then a sort."""
    distances = []
    for emb in gallery:
        a = np.matmul(emb, q)
        b = np.sum(np.multiply(emb, emb))
        c = np.sum(np.multiply(q, q))
        distances.append(1 - a / (np.sqrt(b) * np.sqrt(c)))
    return np.argsort(distances)[:k]


def numpy_stack(gallery: list[np.ndarray], q: np.ndarray, k: int) -> np.ndarray:
    """The vectorised variant: stack the list into a matrix per probe, one matrix-vector."""
    scores = np.stack(gallery) @ q
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def measure_peers(gallery: np.ndarray, probes: np.ndarray, n_queries: int) -> dict[str, Latency]:
    as_list = list(gallery)  # deepface keeps one array per stored face
    return {
        name: latency(lambda q, f=fn: f(as_list, q[0], 10), probes, 1, n_queries, 30)
        for name, fn in (("deepface-loop", deepface_loop), ("numpy-stack", numpy_stack))
    }


def measure_kind(
    kind, ids, gallery, probes, exact, enrolled, args, **params
) -> tuple[KindResult, object]:
    faiss.omp_set_num_threads(args.build_threads)
    index = GalleryIndex(gallery.shape[1], kind, **params)
    build_s, _ = timed(index.rebuild, ids, gallery)
    state = index.export_state()
    size = int(state.faiss_bytes.size)
    del state
    faiss.omp_set_num_threads(args.search_threads)
    sweep, chosen = [], {}
    knob = {"hnsw": "ef_search", "ivf": "nprobe", "ivfpq": "nprobe", "ivfpq-refine": "nprobe"}.get(
        kind
    )
    for value in (args.ef_sweep if kind == "hnsw" else args.nprobe_sweep) if knob else []:
        found = index.search(probes, 10, **{knob: value}).ids
        lat = latency(lambda q, v=value: index.search(q, 10, **{knob: v}), probes, 1, 200, 2)
        r1, r10 = recall(found, exact, 1), recall(found, exact, 10)
        row = {knob: value, "recall1": r1, "recall10": r10, "hit1": hits(found, enrolled)}
        sweep.append({**row, "p50_ms": lat.p50_ms})
        print(
            f"    {knob}={value}: R@1 {r1:.4f} R@10 {r10:.4f} p50 {lat.p50_ms:.3f} ms", flush=True
        )
    if sweep:  # the cheapest setting that reaches both recall targets
        good = [r for r in sweep if r["recall1"] >= args.target_recall]
        good = [r for r in good if r["recall10"] >= args.target_recall10]
        chosen = {knob: (good or sweep[-1:])[0][knob]}
    search = lambda q: index.search(q, 10, **chosen)  # noqa: E731
    found = search(probes).ids
    single = latency(search, probes, 1, args.latency_queries, args.latency_budget)
    batch = latency(search, probes, 100, 30, args.latency_budget)
    if index.backend_kind != kind:  # e.g. IVF-PQ below its training minimum stays flat
        kind = f"{kind} (as {index.backend_kind})"
    r1, r10, hit1 = recall(found, exact, 1), recall(found, exact, 10), hits(found, enrolled)
    result = KindResult(
        kind, {**params, **chosen}, build_s, size, single, batch, r1, r10, hit1, sweep
    )
    return result, index


def run_case(n: int, dim: int, model: FaceModel, args) -> CaseResult:
    print(f"\n=== {n:,} faces x {dim}-d ===", flush=True)
    load_before = os.getloadavg()[0]
    gallery, probes, enrolled, source = make_gallery(n, dim, args.queries, model, args.seed)
    ids = np.arange(n, dtype=np.int64)
    results: list[KindResult] = []
    faiss.omp_set_num_threads(args.build_threads)
    flat = GalleryIndex(dim, "flat")
    flat.rebuild(ids, gallery)
    exact = flat.search(probes, 10).ids
    del flat
    gc.collect()
    chosen_index = None
    for kind in args.kinds:
        if kind == "ivfpq" and n < args.ivfpq_min_n:
            continue
        print(f"  building {kind} ...", flush=True)
        params = {"ivfpq_min_train": 1000} if args.quick and kind == "ivfpq" else {}
        if kind == "hnsw":
            params = {"hnsw_m": args.hnsw_m, "hnsw_ef_construction": args.hnsw_efc}
        res, index = measure_kind(kind, ids, gallery, probes, exact, enrolled, args, **params)
        results.append(res)
        print(
            f"  {kind}: build {res.build_s:.1f} s, {res.index_bytes / 2**20:.0f} MiB, "
            f"p50 {res.single.p50_ms:.3f} ms, recall@1 {res.recall1:.4f}",
            flush=True,
        )
        if kind == args.chosen:
            chosen_index = index
        else:
            del index
        gc.collect()

    faiss.omp_set_num_threads(args.search_threads)
    peers = measure_peers(gallery, probes, max(2, args.peer_queries * 100_000 // n))
    chosen = next((r for r in results if r.kind == args.chosen), results[0])
    speedup = {name: p.p50_ms / chosen.single.p50_ms for name, p in peers.items()}
    restart = None
    if chosen_index is not None and n >= args.restart_min_n:
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            path = Path(tmp) / "g.fidx"
            save_s, _ = timed(save_snapshot, chosen_index, path, 1, {})
            load_s, _ = timed(load_snapshot, path)
            restart = {
                "kind": args.chosen,
                "file_bytes": path.stat().st_size,
                "save_s": save_s,
                "load_s": load_s,
            }
    loads = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    exact_hit1 = hits(exact, enrolled)
    case = CaseResult(
        n, dim, source, results, exact_hit1, peers, args.chosen, speedup, restart, loads
    )
    print_case(case)
    return case


def print_case(case: CaseResult) -> None:
    print(f"\n{case.n:,} faces x {case.dim}-d ({case.data}; load avg {case.load_avg})")
    head = "kind|params|build s|MiB|1q p50 ms|1q p99 ms|100q p50 ms|100q p99 ms|R@1|R@10|hit@1"
    print(f"|{head}|\n|" + "---|" * (head.count("|") + 1))
    for r in case.kinds:
        params = ",".join(f"{k}={v}" for k, v in r.params.items()) or "-"
        cells = [r.kind, params, f"{r.build_s:.1f}", f"{r.index_bytes / 2**20:.0f}"]
        cells += [f"{v:.3f}" for v in (r.single.p50_ms, r.single.p99_ms)]
        cells += [f"{v:.1f}" for v in (r.batch100.p50_ms, r.batch100.p99_ms)]
        cells += [f"{r.recall1:.4f}", f"{r.recall10:.4f}", f"{r.hit1:.3f}"]
        print("|" + "|".join(cells) + "|")
    for name, p in case.peers.items():
        print(f"|peer: {name}|{p.n} queries|-|-|{p.p50_ms:.1f}|{p.p99_ms:.1f}|-|-|1|1|-|")
    print(f"exact search ranks the probe's own face first for {case.exact_hit1:.3f} of probes")
    for name, ratio in case.speedup_vs_peer.items():
        print(f"{case.chosen} is {ratio:,.0f}x faster per query than {name}")
    if case.restart:
        r = case.restart
        print(
            f"restart: {r['kind']} snapshot {r['file_bytes'] / 2**20:.0f} MiB, "
            f"save {r['save_s']:.1f} s, load {r['load_s']:.1f} s"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--dims", default="128,512")
    ap.add_argument("--kinds", default="flat,ivf,hnsw,ivfpq,ivfpq-refine")
    ap.add_argument(
        "--big-dims",
        default="128",
        help="dims also run at sizes >= 1M; 1M x 512 adds ~30-40 min of HNSW build on 2 cores",
    )
    ap.add_argument("--chosen", default="ivfpq-refine", help="the kind compared with the peers")
    ap.add_argument("--real", type=Path, default=DEFAULT_REAL, help="npz with 'embeddings'")
    ap.add_argument("--queries", type=int, default=1000, help="probes for recall")
    ap.add_argument("--latency-queries", type=int, default=500)
    ap.add_argument("--latency-budget", type=float, default=8.0, help="seconds per latency figure")
    ap.add_argument("--peer-queries", type=int, default=20, help="peer probes at 100k (scaled)")
    ap.add_argument("--ef-sweep", default="32,64,128,256,512")
    ap.add_argument("--hnsw-m", type=int, default=IndexParams.hnsw_m)
    ap.add_argument("--hnsw-efc", type=int, default=IndexParams.hnsw_ef_construction)
    ap.add_argument("--nprobe-sweep", default="32,64,128,256,320,384,512")
    ap.add_argument("--target-recall", type=float, default=0.99, help="recall@1 to reach")
    ap.add_argument("--target-recall10", type=float, default=0.95, help="recall@10 to reach")
    ap.add_argument("--ivfpq-min-n", type=int, default=1_000_000)
    ap.add_argument("--restart-min-n", type=int, default=1_000_000)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--search-threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tmp", default=None, help="folder for the restart snapshot")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "index_scale.json"
    )
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.dims, args.queries = "3000", "128,256", 100
        args.latency_queries, args.latency_budget, args.peer_queries = 30, 0.5, 1
        args.ivfpq_min_n = args.restart_min_n = 3000
        args.ef_sweep, args.nprobe_sweep = "16,64", "8,32"
    sizes = [int(s) for s in args.sizes.split(",")]
    dims = [int(d) for d in args.dims.split(",")]
    args.kinds = args.kinds.split(",")
    args.ef_sweep = [int(v) for v in args.ef_sweep.split(",")]
    args.nprobe_sweep = [int(v) for v in args.nprobe_sweep.split(",")]

    real = labels = None
    if args.real and args.real.exists():
        real, labels = load_real(args.real)
        print(f"real embeddings: {args.real} {real.shape}")
    else:
        print(f"no real embeddings at {args.real}: synthetic face model (see bench/README.md)")
    print(
        f"faiss {faiss.__version__}, {os.cpu_count()} CPUs, build threads {args.build_threads}, "
        f"search threads {args.search_threads}"
    )

    started = time.perf_counter()
    model = FaceModel(real, labels, args.seed)
    big_dims = {int(d) for d in args.big_dims.split(",")}
    todo = [(n, d) for d in dims for n in sizes if n < 1_000_000 or d in big_dims]
    cases = [run_case(n, d, model, args) for n, d in todo]
    total = time.perf_counter() - started
    print(f"\ntotal {total / 60:.1f} min")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "faiss": faiss.__version__,
        },
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "real_embeddings": str(args.real) if real is not None else None,
        "total_s": total,
        "cases": [asdict(c) for c in cases],
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
