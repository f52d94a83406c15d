"""Fills tests/fuzz/corpus/<target>/ with small real inputs: the fixtures of tests/data (run
tests/data/make_reader_fixtures.py first) and the JSON files inside tiny.pt2.
Run from the repository root: python3 tests/fuzz/gen_seeds.py"""
import os
import shutil
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")

JSON_EDGES = {
    "edges.json": '{"s": "a\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\ud800", '
                  '"n": [0, -0, 1.5e-3, 9007199254740993, -9223372036854775808, 1e400, "Infinity", "NaN"], '
                  '"b": [true, false, null], "e": {}, "a": [], "dup": 1, "dup": 2}',
    "nested.json": "[" * 40 + "{}" + "]" * 40,
    "big_object.json": "{" + ", ".join(f'"k{i}": {{"as_int": {i}}}' for i in range(40)) + "}",
}


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    pt2 = os.path.join(DATA, "tiny.pt2")
    for name in ("tiny.pt2", "zip64_small.zip", "deflated.zip"):
        with open(os.path.join(DATA, name), "rb") as f:
            put("zip", name, f.read())
    with zipfile.ZipFile(pt2) as z:
        prefix = z.namelist()[0].split("/")[0] + "/"
        put("zip", "sample_inputs_model.pt", z.read(prefix + "data/sample_inputs/model.pt"))
        for entry in ("models/model.json", "data/weights/model_weights_config.json",
                      "data/constants/model_constants_config.json"):
            put("json", os.path.basename(entry), z.read(prefix + entry))
    for name, text in JSON_EDGES.items():
        put("json", name, text.encode())
    npy_dir = os.path.join(DATA, "npy")
    for name in sorted(os.listdir(npy_dir)):
        with open(os.path.join(npy_dir, name), "rb") as f:
            put("npy", name, f.read())


if __name__ == "__main__":
    main()
