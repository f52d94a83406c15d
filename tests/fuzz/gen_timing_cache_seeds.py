"""Writes tests/fuzz/corpus/timing_cache/: small timing caches in the format of
src/engine/timing_cache.h, encoded here independently of the C writer (the checksum is the Python
hash64 of tests/python/test_engine_files.py). Run from the repository root:
python3 tests/fuzz/gen_timing_cache_seeds.py"""
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
from test_engine_files import hash64  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fuzz", "corpus", "timing_cache")


def s(text):
    b = text.encode()
    return struct.pack("<I", len(b)) + b


def pad8(b):
    return b + b"\0" * (-len(b) % 8)


def plan_record(key_words, desc, data):
    key = struct.pack(f"<{len(key_words)}q", *key_words)
    return struct.pack("<II", len(key), len(desc)) + key + desc.encode() + data


def cache(records, device="NVIDIA H100 80GB HBM3", cc=(9, 0), cudnn="9.19.0", cublaslt="13.1.0", version=1):
    b = b"TCTCACHE" + struct.pack("<II", version, 0) + s(device) + struct.pack("<II", *cc) + s(cudnn) + s(cublaslt)
    b = pad8(b) + struct.pack("<II", len(records), 0)
    for kind, body in records:
        b += pad8(struct.pack("<IIQ", kind, 0, len(body)) + body)
    return b + struct.pack("<Q", hash64(b))


def main():
    os.makedirs(OUT, exist_ok=True)
    conv = plan_record([0x636F6E76, 1, 2, 3, 32, 32, 64], "cudnn engine 41 (mode A #0), NCHW, 2 stages fused",
                       bytes([0, 2, 0, 0]) + b'{"cudnnVersion": 91900, "engine": 41}')
    gemm = plan_record(list(range(23)), "cublaslt algo 21 tile 20 splitk 1", bytes(range(64)))
    seeds = {
        "empty.tcc": cache([]),
        "two_plans.tcc": cache([(1, conv), (2, gemm)]),
        "other_gpu.tcc": cache([(2, gemm)], device="NVIDIA H200", cudnn="9.20.0"),
        "newer_version.tcc": cache([], version=2),
        "unknown_kind.tcc": cache([(77, b"x" * 5)]),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {OUT}")


if __name__ == "__main__":
    main()
