"""Training-step speed and memory: conventional vs iMacSR with M = 1, 3, 5 points, and a plain torch loop.

    python benchmarks/train_step.py                      # CPU, DeepLabv3+-R18, 128×256, batch 4
    python benchmarks/train_step.py --device cuda --size 512 1024 --batch 8 --amp bf16

Each configuration runs in its own subprocess, so peak memory is that configuration's alone: on the
CPU the process's peak resident set size (ru_maxrss) minus its size before the first step, on CUDA
torch.cuda.max_memory_allocated. Prints images/s and the ratio to conventional training.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CONFIGS = [("plain torch loop", "plain", 0), ("conventional", "conventional", 0),
           ("iMacSR M=1", "imacsr", 1), ("iMacSR M=3", "imacsr", 3), ("iMacSR M=5", "imacsr", 5)]


def measure(args: argparse.Namespace, method: str, m: int) -> dict:
    import torch
    import torch.nn.functional as F

    from imacsr_cli.models import registry
    from imacsr_cli.spec.runspec import MethodSpec
    from imacsr_cli.train.imacsr import IMacSR

    device = torch.device(args.device)
    torch.manual_seed(0)
    k = 19
    model = registry.build(args.model, args.variant, k)
    points = registry.points(args.model, args.variant)
    if method == "imacsr":  # M points at spacing 2 from the input, as the default spec places them
        chosen = [points[i] for i in range(0, 2 * m, 2)]
        net = IMacSR(model, chosen, k, MethodSpec(name="imacsr", alpha=0.4, lam=0.01))
    else:
        net = IMacSR(model, [], k, MethodSpec(name="conventional", alpha=[], lam=[])) if method != "plain" else model
    net = net.to(device).train()
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=3e-4, betas=(0.9, 0.999), weight_decay=1e-4)
    h, w = args.size
    x = torch.randn(args.batch, 3, h, w, device=device)
    y = torch.randint(0, k, (args.batch, h, w), device=device)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp) if device.type == "cuda" else None

    def step() -> None:
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = net(x)
            if method == "plain":  # the same step written without imacsr: CE on upsampled logits
                up = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
                loss = F.cross_entropy(up.float(), y, ignore_index=255)
            else:
                loss, _ = net.loss(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return {"images_per_s": args.batch * args.steps / seconds, "peak_mb": peak_mb,
            "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
            "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="deeplabv3plus")
    parser.add_argument("--variant", default="")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 256), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "M"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # child process: one configuration, JSON on stdout
        print(json.dumps(measure(args, args.one[0], int(args.one[1]))))
        return

    passthrough = [a for a in sys.argv[1:]]
    print(f"{args.model} {args.variant or '(default)'} on {args.device}, {args.size[0]}×{args.size[1]}, "
          f"batch {args.batch}, amp {args.amp}, {args.steps} timed steps after {args.warmup} warm-up")
    rows = []
    for label, method, m in CONFIGS:
        out = subprocess.run([sys.executable, __file__, *passthrough, "--one", method, str(m)],
                             capture_output=True, text=True, check=True)
        rows.append((label, json.loads(out.stdout.strip().splitlines()[-1])))
    base = dict(rows)["conventional"]
    print(f"device: {base['device']}, torch {base['torch']}")
    print(f"{'configuration':<18} {'images/s':>9} {'× conv':>7} {'peak MB':>9} {'× conv':>7}")
    for label, r in rows:
        print(f"{label:<18} {r['images_per_s']:9.2f} {r['images_per_s'] / base['images_per_s']:7.3f} "
              f"{r['peak_mb']:9.0f} {r['peak_mb'] / max(base['peak_mb'], 1e-9):7.3f}")


if __name__ == "__main__":
    main()
