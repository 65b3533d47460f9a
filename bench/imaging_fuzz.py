"""Decoder fuzzing at scale: seeded mutations of one real LFW face encoded as JPEG, PNG, GIF,
TIFF, PPM, BMP and WEBP, each through ``load_image``. Prints how many decoded, how many raised
each typed error, and how many raised anything else (which must be 0), per format.

    .venv/bin/python bench/imaging_fuzz.py [--n 56000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from image_mutations import corpus

from identity_service import get_settings
from identity_service.errors import ImageError
from identity_service.imaging import load_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=56_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "imaging_fuzz.json"
    )
    args = ap.parse_args()
    face = get_settings().lfw_dir / "images" / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
    photo = np.asarray(load_image(face)[60:188:2, 60:188:2])
    per_format: dict[str, Counter[str]] = defaultdict(Counter)
    untyped: list[str] = []
    start = time.perf_counter()
    for fmt, data in corpus(photo, args.n, seed=args.seed):
        try:
            load_image(data)
            per_format[fmt]["decoded"] += 1
        except ImageError as exc:
            per_format[fmt][exc.code] += 1
        except Exception as exc:
            per_format[fmt]["untyped"] += 1
            untyped.append(f"{fmt}: {type(exc).__name__}: {str(exc)[:120]}")
    seconds = time.perf_counter() - start
    total = Counter()
    for counts in per_format.values():
        total.update(counts)
    result = {
        "mutations": args.n,
        "seed": args.seed,
        "seconds": round(seconds, 1),
        "total": dict(total),
        "per_format": {f: dict(c) for f, c in sorted(per_format.items())},
        "untyped_examples": untyped[:20],
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
