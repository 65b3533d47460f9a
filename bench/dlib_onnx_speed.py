"""dlib's face ResNet: dlib's own CPU forward pass vs the same network through onnxruntime.

    .venv/bin/python bench/dlib_onnx_speed.py               # 64 real LFW chips, best of 3
    .venv/bin/python bench/dlib_onnx_speed.py --faces 32 --repeats 1    # quicker

Every backend embeds the same real 150x150 dlib face chips (dlib HOG + 5-point chip from the
first image of LFW people). dlib runs ``compute_face_descriptor`` on the whole list; the ONNX
embedder runs batches of ``--batch`` with 1 and 2 intra-op threads, without and with the
mirror-image test-time augmentation (``flip``). Times are the best of ``--repeats`` runs after
a warm-up, so other load on a shared machine inflates them less; CPU time per face is printed
too, as it is less sensitive to that load. Also checks that the two agree.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from identity_service import FacePipeline
from identity_service.config import get_settings
from identity_service.embed.dlib_convert import DAT_FILENAME
from identity_service.embed.dlib_onnx import DlibResNetOnnxEmbedder
from identity_service.models import get_model, resolve_file


def real_chips(count: int) -> list[np.ndarray]:
    images = get_settings().lfw_dir / "images"
    pipeline = FacePipeline(detector="dlib-hog", embedder="dlib-resnet-v1")
    chips: list[np.ndarray] = []
    for person in sorted(os.listdir(images)):
        faces = pipeline.extract_faces(images / person / f"{person}_0001.jpg", max_faces=1)
        if faces:
            chips.append(faces[0].crop)
        if len(chips) == count:
            return chips
    raise SystemExit(f"only {len(chips)} faces found under {images}")


def best_time(fn, repeats: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of ``repeats`` runs, after a warm-up run."""
    fn()  # warm-up: allocations, onnxruntime's first-run planning
    runs = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import dlib
    import onnxruntime as ort

    chips = real_chips(args.faces)
    n = len(chips)
    spec = get_model("dlib-resnet-v1")
    dat = resolve_file(next(f for f in spec.files if f.filename == DAT_FILENAME), get_settings())
    net = dlib.face_recognition_model_v1(str(dat))

    rows: list[dict[str, object]] = []
    reference: np.ndarray | None = None

    def add(backend: str, threads: object, batch: int, flip: bool, times: tuple[float, float]):
        wall, cpu = times
        rows.append(
            {
                "backend": backend,
                "threads": threads,
                "batch": batch,
                "flip": flip,
                "faces_per_s": n / wall,
                "ms_per_face": 1000 * wall / n,
                "cpu_ms_per_face": 1000 * cpu / n,
            }
        )

    def dlib_run() -> None:
        nonlocal reference
        out = net.compute_face_descriptor(chips)
        reference = np.array([np.asarray(v) for v in out], dtype=np.float32)

    add(f"dlib {dlib.__version__}", "-", n, False, best_time(dlib_run, args.repeats))

    ort_name = f"onnxruntime {ort.__version__}"
    max_diff = 0.0
    configs = [(1, False, False), (1, True, False), (2, False, False), (2, True, False)]
    configs.append((2, False, True))  # onnxruntime's default busy-waiting pool
    for threads, flip, spin in configs:
        emb = DlibResNetOnnxEmbedder(
            views=2 if flip else 1, threads=threads, spin=spin, device="cpu"
        )

        def onnx_run(emb=emb) -> np.ndarray:
            return np.concatenate(
                [emb._forward(chips[i : i + args.batch]) for i in range(0, n, args.batch)]
            )

        times = best_time(onnx_run, args.repeats)
        if not flip:
            max_diff = max(max_diff, float(np.abs(onnx_run() - reference).max()))
        add(ort_name + (" spin" if spin else ""), threads, args.batch, flip, times)
    for threads in (1, 2):
        emb = DlibResNetOnnxEmbedder(threads=threads, device="cpu")
        add(
            ort_name,
            threads,
            1,
            False,
            best_time(lambda e=emb: [e._forward([c]) for c in chips], args.repeats),
        )

    dlib_rate = float(rows[0]["faces_per_s"])  # type: ignore[arg-type]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{n} real 150x150 chips; {os.cpu_count()} CPUs, load average {load:.2f} at the end; "
        f"best of {args.repeats}; dlib BLAS: {dlib.DLIB_USE_BLAS}"
    )
    print(
        f"{'backend':28} {'threads':>7} {'batch':>5} {'flip':>5} {'faces/s':>9} "
        f"{'ms/face':>8} {'cpu ms/face':>11} {'vs dlib':>8}"
    )
    for row in rows:
        rate = float(row["faces_per_s"])  # type: ignore[arg-type]
        row["vs_dlib"] = rate / dlib_rate
        print(
            f"{row['backend']:28} {row['threads']!s:>7} {row['batch']!s:>5} "
            f"{row['flip']!s:>5} {rate:9.1f} {row['ms_per_face']:8.2f} "
            f"{row['cpu_ms_per_face']:11.2f} {rate / dlib_rate:7.1f}x"
        )
    print(f"max |onnx - dlib| over {n} faces x 128 (raw descriptors): {max_diff:.2e}")
    if args.json:
        args.json.write_text(
            json.dumps({"faces": n, "rows": rows, "max_abs_diff": max_diff}, indent=2)
        )


if __name__ == "__main__":
    main()
