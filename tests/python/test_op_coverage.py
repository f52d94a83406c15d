"""Every op of the table has conformance cases: its overload name (or its aten reference) appears in
one of the test_ops_*.py files, and the table has at least 80 overloads that run on the CPU."""
import glob
import json
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _ops():
    cli = os.environ.get("TENSORC_CLI", str(ROOT / "build" / "tensorc"))
    out = subprocess.run([cli, "ops", "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_every_op_has_conformance_cases():
    text = "".join(pathlib.Path(f).read_text() for f in glob.glob(str(ROOT / "tests/python/test_ops_*.py")))
    missing = []
    for op in _ops()["ops"]:
        name = op["name"]
        base = name.split(".")[0]
        if not any(p in text for p in (f'"{name}"', f"'{name}'", f"aten.{name}", f"aten.{base}")):
            missing.append(name)
    assert not missing, f"ops without conformance cases: {missing}"


def test_op_table_size_and_cpu_support():
    ops = _ops()
    assert ops["cpu"] >= 80
    assert all(op["cpu"] for op in ops["ops"]), [op["name"] for op in ops["ops"] if not op["cpu"]]
