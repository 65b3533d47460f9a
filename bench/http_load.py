"""The load side of bench/http_find.py: ``clients`` keep-alive connections in a process of
their own, each sending find requests back to back for a fixed time, and the figures of a run.

A client answered 503 waits as ``FaceIDClient`` does (the Retry-After header, here capped at
``retry_cap`` seconds, then spread by up to ``spread`` of it more: 0.5 in the client) and sends
again; 503s are counted as shed, not as latency. Each answer's ``Server-Timing`` header is
kept, so the server's time splits into its parts per request, and a 503's time in the server
is told from its time outside.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import re
import threading
import time
from typing import Any

import numpy as np

# The server's parts of a find: model work (decode, the wait for a model worker, detection and
# embedding), the rest of find (operating point, index, owners), and all of it (app).
PARTS = ("decode", "queue", "model", "point", "index", "owners", "detect_embed", "search", "app")


def _timing(header: str) -> dict[str, float]:
    out = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur)
    return out


def _client(
    url: str, probes: list[Any], stop: float, i: int, cap: tuple[float, float], out: dict, key: str
) -> None:
    import httpx

    headers = {"X-API-Key": key} if key else {}
    with httpx.Client(base_url=url, timeout=60, headers=headers) as http:
        n = i
        while time.perf_counter() < stop:
            probe = probes[n % len(probes)]
            n += 1
            t = time.perf_counter()
            if isinstance(probe, bytes):
                r = http.post(
                    "/v1/collections/bench/find", files={"image": ("p.jpg", probe)}, data={"k": "5"}
                )
            else:
                r = http.post("/v1/collections/bench/find", json={"embedding": probe, "k": 5})
            latency = (time.perf_counter() - t) * 1000
            if r.status_code == 200:
                out["ok"].append({"latency": latency, **_timing(r.headers["server-timing"])})
            elif r.status_code == 503:
                app = _timing(r.headers.get("server-timing", "")).get("app", float("nan"))
                out["shed"].append((latency, app))
                retry = r.headers.get("retry-after", "1")
                wait = min(float(retry) if retry.isdigit() else 1.0, cap[0])
                time.sleep(wait * (1 + random.random() * cap[1]))
            else:
                out["errors"].append(f"{r.status_code} {r.text[:200]}")


def _worker(
    url: str,
    probes: list[Any],
    clients: int,
    seconds: float,
    cap: tuple[float, float],
    key: str,
    q: Any,
) -> None:
    out: dict[str, list[Any]] = {"ok": [], "shed": [], "errors": []}
    stop = time.perf_counter() + seconds
    threads = [
        threading.Thread(target=_client, args=(url, probes, stop, i, cap, out, key))
        for i in range(clients)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    q.put({**out, "wall": time.perf_counter() - start})


def shed_total(url: str) -> float:
    """``faceid_requests_shed_total`` from /metrics (0 on a server without it)."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=30).text
    found = re.search(r"^faceid_requests_shed_total\s+([0-9.e+]+)", text, re.M)
    return float(found.group(1)) if found else 0.0


def load(
    url: str,
    probes: list[Any],
    clients: int,
    seconds: float,
    retry_cap: float = 1.0,
    spread: float = 0.5,
    key: str = "",
) -> dict[str, Any]:
    """One run: figures of the accepted requests, the shed ones, and the server's split."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    before = shed_total(url)
    proc = ctx.Process(
        target=_worker, args=(url, probes, clients, seconds, (retry_cap, spread), key, q)
    )
    proc.start()
    result = q.get()
    proc.join()
    ok = result["ok"]
    lat = np.array([s["latency"] for s in ok]) if ok else np.zeros(1)
    run: dict[str, Any] = {
        "clients": clients,
        "requests": len(ok),
        "shed": len(result["shed"]),
        "shed_metric": shed_total(url) - before,
        "errors": len(result["errors"]),
        "error_samples": result["errors"][:5],
        "throughput_rps": round(len(ok) / result["wall"], 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
    }
    if result["shed"]:  # how fast a 503 came back, to the client and in the server (app)
        shed = np.array(result["shed"], dtype=float)
        for name, column in (("shed_answer", shed[:, 0]), ("shed_app", shed[:, 1])):
            run[f"{name}_p50_ms"] = round(float(np.nanpercentile(column, 50)), 1)
            run[f"{name}_p99_ms"] = round(float(np.nanpercentile(column, 99)), 1)
    run["split_p50_ms"], run["split_mean_ms"], run["split_p99_ms"] = split(ok)
    return run


def split(samples: list[dict[str, float]]) -> tuple[dict[str, float], ...]:
    """p50, mean and p99 of each Server-Timing part, of ``overhead`` (the server's time less
    decoding, detection and embedding) and of ``http`` (the client's latency less the server's)."""
    if not samples:
        return {}, {}, {}
    for s in samples:
        model = s.get("model", s.get("detect_embed", 0.0)) + s.get("decode", 0.0)
        s["overhead"] = s.get("app", 0.0) - model
        s["http"] = s["latency"] - s.get("app", 0.0)
    names = [p for p in (*PARTS, "overhead", "http") if any(p in s for s in samples)]
    p50 = {n: round(float(np.percentile([s.get(n, 0.0) for s in samples], 50)), 2) for n in names}
    mean = {n: round(float(np.mean([s.get(n, 0.0) for s in samples])), 2) for n in names}
    p99 = {n: round(float(np.percentile([s.get(n, 0.0) for s in samples], 99)), 2) for n in names}
    return p50, mean, p99
