"""Quick look on a GPU: tensorc (CLI, CUDA engine) against eager PyTorch and torch.compile on one model.
python3 bench/quick.py MODEL BATCH [--compile]   (writes nothing; prints one line per system)"""
import json, os, subprocess, sys, time
import torch, torchvision

name, bs = sys.argv[1], int(sys.argv[2])
cli = os.environ.get("TENSORC_CLI", "build/tensorc")
torch.manual_seed(0)
m = getattr(torchvision.models, name)().eval().half().cuda()
x = torch.randn(bs, 3, 224, 224, dtype=torch.float16, device="cuda")

def timeit(fn, iters=100):
    for _ in range(10): fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(5):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(iters): fn()
        e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e) / iters)
    return sorted(ts)[2]

with torch.inference_mode():
    print(f"{name} b{bs} eager: {timeit(lambda: m(x)):.3f} ms", flush=True)
    if "--compile" in sys.argv:
        c = torch.compile(m, mode="reduce-overhead")
        print(f"{name} b{bs} torch.compile reduce-overhead: {timeit(lambda: c(x)):.3f} ms", flush=True)
ep = torch.export.export(m, (x,))
ep = ep.run_decompositions()
path = f"/tmp/{name}_{bs}.pt2"
torch.export.save(ep, path)
t = time.time()
r = subprocess.run([cli, "build", path, "-o", path + ".tce", "--device", "cuda"], capture_output=True, text=True)
print("build", r.returncode, f"{time.time()-t:.1f}s", r.stderr[-2000:], flush=True)
r = subprocess.run([cli, "bench", path + ".tce", "--json", "--iterations", "200"], capture_output=True, text=True)
print("bench", r.returncode, r.stdout[-3000:], r.stderr[-2000:], flush=True)
