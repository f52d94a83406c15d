"""Writes examples/model.pt2: a small CNN image classifier (3x32x32 -> 10 classes) with a dynamic
batch (1..64), exported with torch.export and saved with torch.export.save, plus an input batch
(examples/input.npy, batch 2) and PyTorch's eager output for it (examples/expected_output.npy).

    python examples/make_model.py [--out DIR]
"""
import argparse
from pathlib import Path

import numpy as np
import torch

# ops whose composite implementation tensorc keeps whole (the decomposition table must not split them)
KEEP_COMPOSITES = ("linear",)


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = torch.nn.Linear(64, 10)

    def forward(self, x):  # logits
        return self.classifier(torch.flatten(self.features(x), 1))


def decomp_table():
    table = torch.export.default_decompositions()
    for name in KEEP_COMPOSITES:
        packet = getattr(torch.ops.aten, name)
        for overload in packet.overloads():
            table.pop(getattr(packet, overload), None)
    return table


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    args = ap.parse_args()
    out = Path(args.out)
    torch.manual_seed(0)
    model = SmallCNN().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so the folded constants matter
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    batch = torch.export.Dim("batch", min=1, max=64)
    example = torch.randn(2, 3, 32, 32)
    ep = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    ep = ep.run_decompositions(decomp_table())
    torch.export.save(ep, str(out / "model.pt2"))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x)
    np.save(out / "input.npy", x.numpy())
    np.save(out / "expected_output.npy", y.numpy())
    print(f"wrote {out / 'model.pt2'} ({(out / 'model.pt2').stat().st_size} bytes), input.npy, expected_output.npy")


if __name__ == "__main__":
    main()
