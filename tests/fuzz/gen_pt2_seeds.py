"""Writes seeds for fuzz_pt2 into tests/fuzz/corpus/pt2/: small torch.export archives that cover
weights, buffers, tensor constants, multi-output nodes, symbolic dims and an op outside the table.
Run from the repository root with torch installed: python3 tests/fuzz/gen_pt2_seeds.py"""
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "pt2")


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.bn = torch.nn.BatchNorm1d(3)
        self.register_buffer("scale", torch.full((3,), 2.0))
        self.t = torch.arange(3.0)  # a lifted tensor constant

    def forward(self, x):
        return torch.relu(self.bn(self.fc(x))) * self.scale + self.t


class Dyn(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.max_pool2d(x, 2).flatten(1).sum(1, keepdim=True) + x.shape[0]


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    ep = torch.export.export(Tiny().eval(), (torch.randn(2, 4),)).run_decompositions()
    torch.export.save(ep, os.path.join(OUT, "tiny_mlp.pt2"))
    b = torch.export.Dim("b", min=1, max=8)
    ep = torch.export.export(Dyn(), (torch.randn(2, 3, 4, 4),), dynamic_shapes=({0: b},)).run_decompositions()
    torch.export.save(ep, os.path.join(OUT, "dynamic_pool.pt2"))
    ep = torch.export.export(torch.nn.Sequential(torch.nn.Softplus()), (torch.randn(3),)).run_decompositions()
    torch.export.save(ep, os.path.join(OUT, "softplus.pt2"))
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
