"""Model benchmark: parameters and training-step speed, conventional vs iMacSR, per model variant.

For every TopFormer / SeaFormer variant (and DeepLabv3+ when registered) it times forward + loss +
backward (no optimizer step) on random images and labels, once as conventional training (CE at the
output) and once with iMacSR taps and 1×1 adapters at M points (imacsr_cli.train.imacsr.IMacSR,
the trainer's own module, so adapter and upsampling costs are the real ones).

    .venv/bin/python benchmarks/models_bench.py                       # CPU, batch 2, 256×512
    .venv/bin/python benchmarks/models_bench.py --models topformer:tiny --iters 1 --warmup 0
    python benchmarks/models_bench.py --device cuda --size 512 1024 --batch 8 --amp bf16
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch

from imacsr_cli.models import registry
from imacsr_cli.spec.points import select_indices
from imacsr_cli.spec.runspec import MethodSpec
from imacsr_cli.train.imacsr import IMacSR

FAMILIES = ("topformer", "seaformer", "deeplabv3plus")


@dataclass
class Result:
    model: str
    params: int
    conventional: float  # images/s
    imacsr: float  # images/s
    points: list[str]
    peak_mib: tuple[float, float] | None  # CUDA peak memory, conventional / iMacSR


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--iters", type=int, default=3, help="timed iterations")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    p.add_argument("--classes", type=int, default=19)
    p.add_argument("--points", type=int, default=3, help="M for the iMacSR column")
    p.add_argument("--position", default="input", choices=("input", "central", "output"))
    p.add_argument("--spacing", type=int, default=2)
    p.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"), help="autocast dtype (CUDA only)")
    p.add_argument("--models", nargs="*", default=None, help="name or name:variant (default: all)")
    return p.parse_args()


def model_list(selected: list[str] | None) -> list[tuple[str, str]]:
    available = registry.names()
    pairs = [(n, v) for n in FAMILIES if n in available for v in registry.get(n).variants]
    if not selected:
        return pairs
    return [(n, v) for n, v in pairs if n in selected or f"{n}:{v}" in selected]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_s(trainee: IMacSR, args: argparse.Namespace, device: torch.device) -> tuple[float, float | None]:
    """Training-mode forward + loss + backward throughput, and peak CUDA memory (MiB) if on CUDA."""
    trainee.train()
    x = torch.randn(args.batch, 3, *args.size, device=device)
    y = torch.randint(0, args.classes, (args.batch, *args.size), device=device)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp) if device.type == "cuda" else None

    def step() -> None:
        trainee.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss, _ = trainee.loss(trainee(x), y)
        loss.backward()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return args.iters * args.batch / seconds, peak


def bench(name: str, variant: str, args: argparse.Namespace, device: torch.device) -> Result:
    torch.manual_seed(0)
    model = registry.build(name, variant, args.classes)
    params = registry.count_parameters(model)
    candidates = registry.points(name, variant)
    chosen = [candidates[i] for i in select_indices(len(candidates), args.points, args.position, args.spacing)]
    method = MethodSpec()

    conventional, peak_c = images_per_s(IMacSR(model, [], args.classes, method).to(device), args, device)
    # A fresh trainee on the same model: its hooks and adapters are the only difference.
    imacsr, peak_i = images_per_s(IMacSR(model, chosen, args.classes, method).to(device), args, device)
    peak = (peak_c, peak_i) if peak_c is not None and peak_i is not None else None
    return Result(f"{name}:{variant}", params, conventional, imacsr, [p.name for p in chosen], peak)


def print_table(results: list[Result], args: argparse.Namespace, device: torch.device) -> None:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(
        f"\n{where}; batch {args.batch} at {args.size[0]}×{args.size[1]}, {args.classes} classes, amp {args.amp}; "
        f"forward+loss+backward, {args.iters} timed iterations after {args.warmup} warm-up; "
        f"iMacSR: M={args.points} at '{args.position}', spacing {args.spacing}, 1×1 adapters"
    )
    base = next((r for r in results if r.model == "topformer:tiny"), results[0])
    header = (
        f"{'model':<22}{'params':>12}{'conv img/s':>12}{'iMacSR img/s':>14}{'iMacSR/conv':>13}"
        f"{'conv speed vs ' + base.model:>30}"
    )
    if results and results[0].peak_mib:
        header += f"{'peak MiB conv/iMacSR':>24}"
    print(header)
    print("-" * len(header))
    for r in results:
        line = (
            f"{r.model:<22}{r.params:>12,}{r.conventional:>12.2f}{r.imacsr:>14.2f}"
            f"{r.imacsr / r.conventional:>13.2f}{r.conventional / base.conventional:>30.2f}"
        )
        if r.peak_mib:
            line += f"{r.peak_mib[0]:>14.0f} / {r.peak_mib[1]:<7.0f}"
        print(line)
    print("\npoints used (iMacSR column):")
    for r in results:
        print(f"  {r.model:<22}{', '.join(r.points)}")


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    results = []
    for name, variant in model_list(args.models):
        results.append(bench(name, variant, args, device))
        r = results[-1]
        print(f"{r.model}: {r.params:,} params, {r.conventional:.2f} / {r.imacsr:.2f} img/s", flush=True)
    if not results:
        raise SystemExit(f"no model matches {args.models}; registered: {', '.join(registry.names())}")
    print_table(results, args, device)


if __name__ == "__main__":
    main()
