"""Which standard-library hash is fastest here, for custom_ids and input content hashes.

    python -m bench.hashes

Prints GB/s over 64 MiB and µs per ~2 KB message (a request's canonical params), medians of
five, for the safe hashes (sha256, sha512, blake2b, blake2s, sha3_256) and, for scale, the
broken ones (sha1, md5) and crc32. On CPUs with SHA extensions sha256 leads the safe ones,
which is why custom_ids (and so existing states) keep it.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import time
import zlib

SAFE = ("sha256", "sha512", "blake2b", "blake2s", "sha3_256")
BROKEN = ("sha1", "md5")


def _big(name: str, data: bytes) -> float:
    start = time.perf_counter()
    hashlib.new(name, data).digest()
    return len(data) / (time.perf_counter() - start) / 1e9


def _small(name: str, msg: bytes, n: int = 20_000) -> float:
    seed = hashlib.new(name, b"batchrun custom_id v1\0")
    start = time.perf_counter()
    for _ in range(n):
        h = seed.copy()
        h.update(msg)
        h.hexdigest()
    return (time.perf_counter() - start) / n * 1e6


def main() -> int:
    data = os.urandom(64 << 20)
    msg = data[:2048]
    print(f"\nhashes (load average {os.getloadavg()[0]:.2f}): GB/s over 64 MiB, µs per 2 KB id")
    for name in (*SAFE, *BROKEN):
        big = statistics.median(_big(name, data) for _ in range(5))
        small = statistics.median(_small(name, msg) for _ in range(5))
        note = "" if name in SAFE else "  (not collision-safe)"
        print(f"  {name:10}{big:8.2f} GB/s{small:8.2f} µs{note}")
    start = time.perf_counter()
    zlib.crc32(data)
    print(
        f"  {'crc32':10}{len(data) / (time.perf_counter() - start) / 1e9:8.2f} GB/s  (a checksum)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
