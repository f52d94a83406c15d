"""Exports the model-test zoo with torch.export: random weights, run_decompositions() keeping the
composites tensorc implements whole, saved with torch.export.save next to the inputs and eager outputs.

    python tests/python/export_models.py [--out DIR] [--force] [NAME ...]

Each model goes to DIR/<name>/: model.pt2, in_<k>.npy (k = user input name), out_<i>.npy and
manifest.json. DIR defaults to $TENSORC_MODEL_DIR or build/models. A model is re-exported only when
the manifest is missing or was written by another torch version or another version of this file.
The full-size models of the GPU tests and the benchmark (FULL_SIZE_MODELS: resnet50, mobilenet_v3_large,
vit_b_16, bert_base, each _f32 or _f16, fixed batch or _dyn) are exported only when named.
"""
import argparse
import fcntl
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
SEED = 0
# ops whose composite implementation tensorc keeps (the decomposition table must not split them)
KEEP_COMPOSITES = ("linear", "silu", "hardswish", "hardsigmoid", "scaled_dot_product_attention")


def default_out_dir():
    return Path(os.environ.get("TENSORC_MODEL_DIR") or ROOT / "build" / "models")


def decomp_table():
    table = torch.export.default_decompositions()
    for name in KEEP_COMPOSITES:
        packet = getattr(torch.ops.aten, name)
        for overload in packet.overloads():
            table.pop(getattr(packet, overload), None)
    return table


def to_numpy(t):
    """bf16 has no numpy dtype: it is stored as raw 2-byte '<V2' items, as tensorc's .npy reader expects."""
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.dtype("V2"))
    return t.numpy()


def from_numpy(a):
    if a.dtype.kind == "V" and a.dtype.itemsize == 2:
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(a))


# ---- the zoo -----------------------------------------------------------------------------------
# Each builder returns (module, example args, dynamic_shapes or None, extra eval batches or None).

def _image(n=1, c=3, hw=64, dtype=torch.float32):
    return torch.randn(n, c, hw, hw, dtype=dtype)


def build_resnet18():
    import torchvision
    return torchvision.models.resnet18(num_classes=10), (_image(),), None, None


def build_mobilenet_v3_small():
    import torchvision
    return torchvision.models.mobilenet_v3_small(num_classes=10), (_image(),), None, None


def build_efficientnet_b0():
    import torchvision
    return torchvision.models.efficientnet_b0(num_classes=10), (_image(),), None, None


def build_vit_small():
    from torchvision.models.vision_transformer import VisionTransformer
    m = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                          mlp_dim=64, num_classes=10)
    # torchvision zero-initializes the head and the class token: the output would be all zeros
    with torch.no_grad():
        for p in (m.heads.head.weight, m.heads.head.bias, m.class_token):
            p.normal_(0, 0.5)
    return m, (_image(hw=32),), None, None


class _BertWrap(torch.nn.Module):
    """Plain tensors in and out, so the archive's outputs are just the two tensors."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state, out.pooler_output


def build_bert_small():
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    try:
        bert = BertModel(cfg, attn_implementation="sdpa")
    except TypeError:
        bert = BertModel(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 16), dtype=torch.int64)
    mask = torch.ones(2, 16, dtype=torch.int64)
    mask[1, 12:] = 0
    return _BertWrap(bert), (ids, mask), None, None


class _SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.nn.functional.max_pool2d(x, 2)
        x = torch.relu(self.conv2(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def _randomize_bn(m):
    # fresh BatchNorm has mean 0 / var 1, which would hide a wrong normalization
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.5, 0.5)
    return m


def build_cnn_dynamic_batch():
    batch = torch.export.Dim("batch", min=1, max=64)
    extra = [(_image(n, hw=32),) for n in (1, 3, 5)]
    return _SmallCNN(), (_image(2, hw=32),), ({0: batch},), extra


def build_cnn_f16():
    return _SmallCNN().to(torch.float16), (_image(hw=32, dtype=torch.float16),), None, None


def build_cnn_bf16():
    return _SmallCNN().to(torch.bfloat16), (_image(hw=32, dtype=torch.bfloat16),), None, None


# ---- full-size models (GPU tests and the benchmark) ---------------------------------------------

FULL_SIZE = ("resnet50", "mobilenet_v3_large", "vit_b_16", "bert_base")
BERT_SEQ = 128
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


class _BertIds(torch.nn.Module):
    """BERT on token ids alone (no mask), as the benchmark's peers call it."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids):
        out = self.bert(input_ids=input_ids)
        return out.last_hidden_state, out.pooler_output


def full_size_model(family, batch=1, dtype=torch.float32, mask=False, seed=SEED):
    """(module in eval mode, example args) of a full-size model with random weights drawn from `seed`:
    torchvision's resnet50 / mobilenet_v3_large / vit_b_16 on 224x224 images, or BERT-base
    (BertConfig() defaults, SDPA attention, sequence BERT_SEQ) on token ids, plus an attention mask
    with padding in its last row when mask=True. The weights are drawn in f32 and then converted,
    so every dtype of one seed holds the same model."""
    if family not in FULL_SIZE:
        raise ValueError(f"unknown model family {family!r} (one of {', '.join(FULL_SIZE)})")
    torch.manual_seed(seed)
    if family == "bert_base":
        from transformers import BertConfig, BertModel
        bert = BertModel(BertConfig(attn_implementation="sdpa"))
        ids = torch.randint(0, bert.config.vocab_size, (batch, BERT_SEQ), dtype=torch.int64)
        if mask:
            m = torch.ones(batch, BERT_SEQ, dtype=torch.int64)
            m[-1, BERT_SEQ * 3 // 4:] = 0
            module, args = _BertWrap(bert), (ids, m)
        else:
            module, args = _BertIds(bert), (ids,)
    else:
        import torchvision
        module = getattr(torchvision.models, family)()
        if family == "vit_b_16":
            # torchvision zero-initializes the head and the class token: the logits would be all zeros
            with torch.no_grad():
                for p in (module.heads.head.weight, module.heads.head.bias, module.class_token):
                    p.normal_(0, 0.05)
        args = (torch.randn(batch, 3, 224, 224),)
    module = _randomize_bn(module.eval()).to(dtype)
    args = tuple(a.to(dtype) if a.is_floating_point() else a for a in args)
    return module, args


def _full_size_builder(family, dtype_name, dynamic):
    def build():
        # batch 2 (the padding row of BERT's mask is the second); a dynamic batch is exported at 2
        # and also evaluated at 1 and 3
        model, args = full_size_model(family, 2, DTYPES[dtype_name], mask=family == "bert_base")
        if not dynamic:
            return model, args, None, None
        batch = torch.export.Dim("batch", min=1, max=256)
        extra = [tuple(a[:1] for a in args),
                 tuple(torch.cat([a, a[:1]]) for a in args)]
        return model, args, tuple({0: batch} for _ in args), extra
    build.__doc__ = f"{family} in {dtype_name}, {'dynamic' if dynamic else 'fixed'} batch"
    return build


FULL_SIZE_MODELS = {f"{fam}_{dt}{'_dyn' if dyn else ''}": _full_size_builder(fam, dt, dyn)
                    for fam in FULL_SIZE for dt in ("f32", "f16") for dyn in (False, True)}


MODELS = {
    "resnet18": build_resnet18,
    "mobilenet_v3_small": build_mobilenet_v3_small,
    "efficientnet_b0": build_efficientnet_b0,
    "vit_small": build_vit_small,
    "bert_small": build_bert_small,
    "cnn_dynamic_batch": build_cnn_dynamic_batch,
    "cnn_f16": build_cnn_f16,
    "cnn_bf16": build_cnn_bf16,
}


def _stamp():
    src = Path(__file__).read_bytes()
    return f"torch {torch.__version__} / {hashlib.sha256(src).hexdigest()[:16]}"


def _flatten(out):
    if isinstance(out, torch.Tensor):
        return [out]
    flat = []
    for o in out:
        flat.extend(_flatten(o))
    return flat


def export_one(name, out_dir, force=False, reference=True):
    """Exports model `name` (of MODELS or FULL_SIZE_MODELS) into out_dir/name (unless cached) and
    returns its manifest dict. reference=False skips the eager CPU outputs (the GPU tests compute
    their own reference on the GPU); such a manifest's cases have "outputs": None."""
    if name not in MODELS and name not in FULL_SIZE_MODELS:
        raise KeyError(f"unknown model '{name}'")
    # one writer per model folder: test files and xdist workers run at once and share the cache
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(out_dir) / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _export_locked(name, out_dir, force, reference)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _export_locked(name, out_dir, force, reference):
    d = Path(out_dir) / name
    man_path = d / "manifest.json"
    if not force and man_path.exists():
        man = json.loads(man_path.read_text())
        if man.get("stamp") == _stamp() and (man.get("reference", True) or not reference):
            man["dir"] = str(d)
            return man
    d.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    model, args, dyn, extra = (MODELS.get(name) or FULL_SIZE_MODELS[name])()
    # full_size_model randomizes its batch norms itself, before converting the dtype
    model = _randomize_bn(model.eval()) if name in MODELS else model.eval()
    with torch.no_grad():
        ep = torch.export.export(model, args, dynamic_shapes=dyn)
        ep = ep.run_decompositions(decomp_table())
    torch.export.save(ep, str(d / "model.pt2"))
    names = [s.arg.name for s in ep.graph_signature.input_specs
             if s.kind == torch.export.graph_signature.InputKind.USER_INPUT]
    cases = []
    for ci, case_args in enumerate([args] + list(extra or [])):
        outs = None
        if reference:
            with torch.no_grad():
                outs = _flatten(model(*case_args))
        case = {"inputs": {}, "outputs": [] if reference else None}
        for n, a in zip(names, case_args):
            f = f"case{ci}_in_{n}.npy"
            np.save(d / f, to_numpy(a))
            case["inputs"][n] = f
        for i, o in enumerate(outs or []):
            f = f"case{ci}_out_{i}.npy"
            np.save(d / f, to_numpy(o))
            case["outputs"].append({"file": f, "dtype": str(o.dtype).replace("torch.", ""),
                                    "shape": list(o.shape)})
        cases.append(case)
    ops = sorted({str(n.target) for n in ep.graph.nodes if n.op == "call_function"})
    man = {"name": name, "stamp": _stamp(), "model": "model.pt2", "inputs": names, "cases": cases,
           "ops": ops, "reference": bool(reference)}
    man_path.write_text(json.dumps(man, indent=1))
    man["dir"] = str(d)
    return man


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=default_out_dir())
    p.add_argument("--force", action="store_true", help="re-export even when cached")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the eager CPU outputs (slow for the full-size f16 models)")
    p.add_argument("names", nargs="*", help=f"models to export (default: all of {', '.join(MODELS)}; "
                                            f"also {', '.join(FULL_SIZE_MODELS)})")
    a = p.parse_args(argv)
    for n in a.names or MODELS:
        if n not in MODELS and n not in FULL_SIZE_MODELS:
            p.error(f"unknown model '{n}'")
        man = export_one(n, a.out, a.force, reference=not a.no_reference)
        print(f"{n}: {man['dir']}/model.pt2 ({len(man['ops'])} distinct ops)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
