"""The worst cost of one accepted image: each case runs in a fresh process on one core
(onnxruntime, OpenCV and BLAS limited to one thread), through ``FacePipeline.represent`` as a
find or enroll request does, after the models are loaded. Prints seconds and the process's peak
memory (max RSS) before and after the image.

    .venv/bin/python bench/image_cost.py
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "blank PNG 6300x6300 (39.7 Mpx, 38 KB)": "blank_png",
    "noise JPEG 6300x6300": "noise_jpeg",
    "LFW face upscaled to 6300x6300 (JPEG)": "face_jpeg",
    "LFW face 250x250 (JPEG): the usual photo": "face_small",
}


def make(kind: str) -> bytes:
    import numpy as np
    from PIL import Image

    from identity_service import get_settings

    side = 6300
    if kind == "blank_png":
        image = Image.new("RGB", (side, side), (200, 200, 200))
        fmt = "PNG"
    elif kind == "noise_jpeg":
        rng = np.random.default_rng(0)
        image = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
        fmt = "JPEG"
    else:
        face = get_settings().lfw_dir / "images" / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
        image = Image.open(face).convert("RGB")
        if kind == "face_jpeg":
            image = image.resize((side, side), Image.BICUBIC)
        fmt = "JPEG"
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=90)
    return buffer.getvalue()


def child(kind: str) -> None:
    from identity_service import FacePipeline
    from identity_service.errors import FaceIDError

    data = make(kind)
    pipeline = FacePipeline(workers=1)
    pipeline.represent(make("face_small"))  # models loaded and warm
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    try:
        outcome = f"{len(pipeline.represent(data))} face(s)"
    except FaceIDError as exc:
        outcome = exc.code
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"bytes": len(data), "seconds": seconds, "peak_mib": peak,
                      "before_mib": before, "outcome": outcome}))  # fmt: skip


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    results = {}
    for label, kind in CASES.items():
        out = subprocess.run(
            ["taskset", "-c", "0", sys.executable, __file__, "--child", kind],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[label] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[label]
        print(
            f"{label}: {r['seconds']:.2f} s, peak {r['peak_mib']:.0f} MiB "
            f"(models loaded: {r['before_mib']:.0f} MiB), {r['outcome']}"
        )
    out_path = Path(__file__).parent / "results" / "image_cost.json"
    out_path.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
