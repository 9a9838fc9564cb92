"""Training-step speed and memory: conventional vs iMacSR with M = 1, 3, 5 points, and a plain torch loop.

    python benchmarks/train_step.py                      # CPU, DeepLabv3+-R18, 256×512, batch 4, 5 rounds
    python benchmarks/train_step.py --naive              # also today's loss terms before issue 13
    python benchmarks/train_step.py --device cuda --size 512 1024 --batch 8 --amp bf16

Configurations are interleaved: every round runs each of them once (ABC… then …CBA, alternating,
so a drift of the machine's load hits all alike), each in a fresh subprocess, after one warm-up
round that is not counted. Within a round every configuration is compared with the conventional
run of that round; the table shows the median of those ratios over the rounds with their min–max,
so a busy machine shows up as a wide spread, not as a wrong ratio.

One measurement = two subprocesses. The timed one builds the model, runs ``--warmup`` untimed steps,
then ``--steps`` timed steps (the step time is their median), with the allocator as a run has it.
The memory one runs one warm-up and one step with glibc's mmap threshold fixed at 64 KiB
(``MALLOC_MMAP_THRESHOLD_``), so that every tensor is its own mapping and is returned to the system
when freed: its peak resident set size (``ru_maxrss``, growth from just before the first step) then
follows the peak of live tensors instead of the heap's high-water mark. That setting makes every
allocation a page-faulting mmap, which slows a step by half and the more so the more tensors it
allocates, so it is never on while timing. On CUDA both come from one process
(``torch.cuda.max_memory_allocated``).

``--naive`` adds the loss terms as they were before issue 13 (tests/train/naive_losses.py: every
intermediate kept for backward), for the before/after comparison in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# name: (label, method, M, loss terms)
CONFIGS = {
    "plain": ("plain torch loop", "plain", 0, "fused"),
    "conventional": ("conventional", "conventional", 0, "fused"),
    "m1": ("iMacSR M=1", "imacsr", 1, "fused"),
    "m3": ("iMacSR M=3", "imacsr", 3, "fused"),
    "m5": ("iMacSR M=5", "imacsr", 5, "fused"),
    "naive-conventional": ("conventional (naive loss)", "conventional", 0, "naive"),
    "naive-m3": ("iMacSR M=3 (naive loss)", "imacsr", 3, "naive"),
    "naive-m5": ("iMacSR M=5 (naive loss)", "imacsr", 5, "naive"),
}
DEFAULT = ["plain", "conventional", "m1", "m3", "m5"]
NAIVE = ["naive-conventional", "naive-m3", "naive-m5"]
BASELINE = "conventional"


def _use_naive_losses() -> None:
    """Point IMacSR at the pre-issue-13 loss terms (it looks them up in its module at call time)."""
    spec = importlib.util.spec_from_file_location("naive_losses", ROOT / "tests" / "train" / "naive_losses.py")
    naive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(naive)  # type: ignore[union-attr]
    from imacsr_cli.train import imacsr

    imacsr.cross_entropy = naive.cross_entropy
    imacsr.negative_entropy = naive.negative_entropy


def measure(args: argparse.Namespace, method: str, m: int, loss: str) -> dict:
    import torch
    import torch.nn.functional as F

    from imacsr_cli.models import registry
    from imacsr_cli.spec.runspec import MethodSpec
    from imacsr_cli.train.imacsr import IMacSR

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu":  # the allocator a run has (a no-op in the memory child: MALLOC_MMAP_THRESHOLD_ is set)
        from imacsr_cli.train.allocator import keep_freed_memory

        keep_freed_memory()
    if loss == "naive":
        _use_naive_losses()
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

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return {"step_s": statistics.median(times), "peak_mb": peak_mb,
            "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
            "torch": torch.__version__}


def _child(argv: list[str], method: str, m: int, loss: str, memory: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    extra = ["--warmup", "1", "--steps", "1"] if memory else []
    if memory:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    out = subprocess.run([sys.executable, __file__, *argv, *extra, "--one", method, str(m), loss],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"measurement {method} M={m} ({loss}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_one(argv: list[str], method: str, m: int, loss: str, device: str) -> dict:
    timed = _child(argv, method, m, loss, memory=False)
    if device.startswith("cuda"):
        return timed
    return {**timed, "peak_mb": _child(argv, method, m, loss, memory=True)["peak_mb"]}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.3f} ({min(values):.3f}–{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="deeplabv3plus")
    parser.add_argument("--variant", default="")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="counted rounds (after one warm-up round)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per measurement; 0 = torch's default")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--naive", action="store_true", help="also measure the loss terms before issue 13")
    parser.add_argument("--configs", help=f"comma-separated subset of {', '.join(CONFIGS)} (conventional is "
                                          "always measured: it is the baseline)")
    parser.add_argument("--one", nargs=3, metavar=("METHOD", "M", "LOSS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # child process: one measurement, JSON on stdout
        print(json.dumps(measure(args, args.one[0], int(args.one[1]), args.one[2])))
        return
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    names = args.configs.split(",") if args.configs else DEFAULT + (NAIVE if args.naive else [])
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"--configs: unknown {', '.join(unknown)}; expected some of {', '.join(CONFIGS)}")
    configs = [CONFIGS[n] for n in dict.fromkeys([BASELINE, *names])]
    argv = [a for a in sys.argv[1:] if a != "--naive"]
    if args.configs:
        i = argv.index("--configs")
        argv = argv[:i] + argv[i + 2:]
    print(f"{args.model} {args.variant or '(default)'} on {args.device}, {args.size[0]}×{args.size[1]}, "
          f"batch {args.batch}, amp {args.amp}; {args.rounds} rounds after 1 warm-up round, each measurement a "
          f"fresh process: {args.warmup} warm-up + {args.steps} timed steps (memory: a process of its own)", flush=True)
    rounds: list[dict[str, dict]] = []
    for r in range(args.rounds + 1):
        order = configs if r % 2 == 0 else configs[::-1]
        got = {label: run_one(argv, method, m, loss, args.device) for label, method, m, loss in order}
        if r == 0:
            continue  # warm-up round: page cache, CPU frequency, the allocator's first mappings
        rounds.append(got)
        base = got[BASELINE]
        print(f"round {r}: " + ", ".join(f"{label} {got[label]['step_s']:.3f} s {got[label]['peak_mb']:.0f} MB "
                                         f"(×{got[label]['step_s'] / base['step_s']:.3f}, "
                                         f"×{got[label]['peak_mb'] / max(base['peak_mb'], 1e-9):.3f})"
                                         for label, *_ in configs), flush=True)
    first = rounds[0][BASELINE]
    print(f"device: {first['device']}, torch {first['torch']}")
    print(f"{'configuration':<26} {'step s':>7} {'images/s':>9}  {'step time × conv (min–max)':>27}  "
          f"{'peak MB':>8}  {'peak × conv (min–max)':>23}")
    for label, *_ in configs:
        steps = [rd[label]["step_s"] for rd in rounds]
        peaks = [rd[label]["peak_mb"] for rd in rounds]
        t_ratio = [rd[label]["step_s"] / rd[BASELINE]["step_s"] for rd in rounds]
        m_ratio = [rd[label]["peak_mb"] / max(rd[BASELINE]["peak_mb"], 1e-9) for rd in rounds]
        step = statistics.median(steps)
        print(f"{label:<26} {step:7.3f} {args.batch / step:9.2f}  {spread(t_ratio):>27}  "
              f"{statistics.median(peaks):8.0f}  {spread(m_ratio):>23}")


if __name__ == "__main__":
    main()
