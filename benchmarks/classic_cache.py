"""What the per-image JPEG/WebP cache saves a report: the classic curves of a set of test
images measured cold (an empty cache) and again (every point read from disk), in one run.

    python -m benchmarks.classic_cache                    # the bundled clients' test images
    python -m benchmarks.classic_cache --set "fedimages (all)" --images 8

The set is one of ``benchmarks/base_vs_classic.py``'s (images up to 512 px a side). The
cache lives in a temporary ``FEDNTC_HOME`` that is removed afterwards. Prints both wall
times, their ratio and whether the two passes gave the very same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from benchmarks.base_vs_classic import image_sets
from study.classic import POINTS, cache_dir, classic_set_curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="bundled", help="an image set of base_vs_classic")
    parser.add_argument("--images", type=int, default=0, help="the first N images (0: all)")
    args = parser.parse_args()
    sets = image_sets(512)
    if args.set not in sets:
        parser.error(f"--set {args.set!r}: this machine has {sorted(sets)}")
    images = sets[args.set][: args.images or None]
    with tempfile.TemporaryDirectory() as home:
        os.environ["FEDNTC_HOME"] = home
        passes = []
        for _ in range(2):
            start = time.perf_counter()
            rows = classic_set_curves({"0": images})
            passes.append((time.perf_counter() - start, json.dumps(rows)))
        files = len(list(cache_dir().glob("*.json")))
    (cold, first), (warm, again) = passes
    print(f"{len(images)} images of {args.set!r}, {len(POINTS)} JPEG/WebP points each")
    print(f"cold (empty cache)  {cold:8.2f} s   ({files} cache files written)")
    print(f"warm (read back)    {warm:8.2f} s")
    print(f"cold / warm         {cold / warm:8.1f} x   same rows: {first == again}")


if __name__ == "__main__":
    main()
