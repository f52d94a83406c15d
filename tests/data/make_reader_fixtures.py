"""Writes the fixtures of tests/c/test_readers.c: a tiny torch.export archive, .npy files written by
numpy, and a hand-built zip64 archive. Run from the repository root: python3 tests/data/make_reader_fixtures.py
The values here are repeated by hand in test_readers.c; change both together."""
import os
import struct
import zipfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)
        self.register_buffer("k", torch.tensor([0.5, -1.5]))

    def forward(self, x):
        return torch.relu(self.fc(x)) + self.k


def make_pt2():
    m = Tiny()
    with torch.no_grad():
        m.fc.weight.copy_(torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.25 - 0.5)
        m.fc.bias.copy_(torch.tensor([1.0, -2.0]))
    ep = torch.export.export(m, (torch.randn(4, 3),)).run_decompositions()
    path = os.path.join(HERE, "tiny.pt2")
    torch.export.save(ep, path)
    np.save(os.path.join(HERE, "tiny_fc_weight.npy"), m.fc.weight.detach().numpy())
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            assert info.compress_type == zipfile.ZIP_STORED, info.filename


def save(name, arr, version=None):
    path = os.path.join(HERE, "npy", name)
    if version is None:
        np.save(path, arr, allow_pickle=arr.dtype == object)
    else:
        with open(path, "wb") as f:
            np.lib.format.write_array(f, arr, version=version)


def make_npy():
    save("f4.npy", np.array([[1.5, -2.25, 3.0], [0.0, 1e-3, -7.5e10]], np.float32))
    save("f2.npy", np.array([1.0, -0.5, 65504.0, 2.0**-14], np.float16))
    save("f8.npy", np.array([0.1, -2.5, 1e10], np.float64))
    save("i8.npy", np.array([-(2**63), 9007199254740993, 1], np.int64))
    save("i4.npy", np.array([[-(2**31), 7], [0, 2**31 - 1]], np.int32))
    save("i1.npy", np.array([-128, 127, 0, -1], np.int8))
    save("u1.npy", np.array([0, 255, 7], np.uint8))
    save("b1.npy", np.array([True, False, True], np.bool_))
    save("bf16.npy", np.array([0x3F80, 0xC000, 0x3F00], np.uint16).view("V2"))
    save("scalar.npy", np.array(3.5, np.float32))
    save("empty.npy", np.zeros((0, 3), np.float32))
    save("rank8.npy", np.arange(16, dtype=np.int32).reshape(1, 2, 1, 2, 1, 2, 1, 2))
    save("v2.npy", np.array([1.0, 2.0], np.float32), version=(2, 0))
    save("v3.npy", np.array([1.0, 2.0], np.float32), version=(3, 0))
    save("fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    save("object.npy", np.array([1, "a"], dtype=object))
    save("bigendian.npy", np.array([1.0, 2.0], ">f4"))
    save("rank9.npy", np.zeros((1,) * 9, np.float32))
    save("u2.npy", np.array([1], np.uint16))


def make_zip64():
    """Two stored entries whose central-directory sizes and offsets live in zip64 extra fields,
    behind a zip64 end record, the way writers handle entries and archives above 4 GiB."""
    entries = [("z/a.txt", b"hello"), ("z/data/b.bin", bytes(range(10)))]
    out, central = b"", b""
    for name, data in entries:
        off = len(out)
        n = name.encode()
        crc = zipfile.crc32(data)
        local_extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(n), len(local_extra)) + n + local_extra + data
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc,
                               0xFFFFFFFF, 0xFFFFFFFF, len(n), len(extra), 0, 0, 0, 0,
                               0xFFFFFFFF) + n + extra
    cd_off = len(out)
    out += central
    z64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(entries), len(entries),
                       len(central), cd_off)
    out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                       0xFFFFFFFF, 0)
    path = os.path.join(HERE, "zip64_small.zip")
    with open(path, "wb") as f:
        f.write(out)
    with zipfile.ZipFile(path) as z:  # an independent reader must agree
        assert z.read("z/a.txt") == b"hello" and z.read("z/data/b.bin") == bytes(range(10))


def make_deflated():
    path = os.path.join(HERE, "deflated.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("d/packed.txt", b"squeeze me " * 20)
        z.writestr(zipfile.ZipInfo("d/plain.txt"), b"plain", compress_type=zipfile.ZIP_STORED)


if __name__ == "__main__":
    make_pt2()
    make_npy()
    make_zip64()
    make_deflated()
