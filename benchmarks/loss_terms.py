"""The loss terms alone: L_T's forward and backward at M points, fused (train/losses.py) vs naive.

    python benchmarks/loss_terms.py                      # DeepLabv3+-R18, 256×512, batch 4, M = 3 and 5

The whole training step (benchmarks/train_step.py) is 2-3 s on the CPU, of which the terms are a
few hundred ms: on a shared machine, its round-to-round spread is larger than what a change to the
terms moves. This times only ``IMacSR.loss`` and its backward, from the network's real logits and
features at the chosen points (captured once, then detached), in one process, with the
configurations interleaved (ABAB…, then …BABA) after one warm-up round. It prints each one's median
time with its min–max over rounds, and the minor page faults per call. It runs with the allocator a
CPU run has (train/allocator.py: freed memory kept for reuse); without that, a fresh label-size
tensor is a fresh mapping, and its first touch of every page costs more than the arithmetic done on
it (run with MALLOC_ARENA_MAX=8, say, to see glibc's default).
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import statistics
import time
from pathlib import Path

import torch

from imacsr_cli.models import registry
from imacsr_cli.spec.runspec import MethodSpec
from imacsr_cli.train import imacsr, losses
from imacsr_cli.train.allocator import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]


def _naive_losses():
    spec = importlib.util.spec_from_file_location("naive_losses", ROOT / "tests" / "train" / "naive_losses.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="deeplabv3plus")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--m", type=int, nargs="+", default=[3, 5], help="numbers of points")
    parser.add_argument("--rounds", type=int, default=9, help="counted rounds (after one warm-up round)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # the allocator a CPU run has (train/allocator.py)
    torch.manual_seed(0)
    k, (h, w) = 19, args.size
    points = registry.points(args.model, "")
    x = torch.randn(args.batch, 3, h, w)
    target = torch.randint(0, k, (args.batch, h, w))
    cases = {}  # m -> (net, logits, features): the inputs of the loss, leaves of their own graph
    for m in args.m:
        net = imacsr.IMacSR(registry.build(args.model, "", k), [points[i] for i in range(0, 2 * m, 2)], k,
                            MethodSpec(name="imacsr", alpha=0.4, lam=0.01)).train()
        with torch.no_grad():
            logits = net(x)
        cases[m] = (net, logits.requires_grad_(), [z.requires_grad_() for z in net.features])
    variants = {"naive": _naive_losses(), "fused": losses}
    configs = [(m, name) for m in args.m for name in variants]

    def call(m: int, name: str) -> tuple[float, int]:
        imacsr.cross_entropy, imacsr.negative_entropy = variants[name].cross_entropy, variants[name].negative_entropy
        net, logits, features = cases[m]
        net.features = list(features)
        before, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        total, _ = net.loss(logits, target)
        total.backward()
        seconds = time.perf_counter() - t0
        return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    results: dict[tuple[int, str], list[tuple[float, int]]] = {c: [] for c in configs}
    for r in range(args.rounds + 1):
        for c in configs if r % 2 == 0 else configs[::-1]:
            measured = call(*c)
            if r:
                results[c].append(measured)
    imacsr.cross_entropy, imacsr.negative_entropy = losses.cross_entropy, losses.negative_entropy
    print(f"{args.model} on cpu x{torch.get_num_threads()}, {h}×{w}, batch {args.batch}: IMacSR.loss forward + "
          f"backward (output CE and M points' MI and NE); {args.rounds} rounds after 1 warm-up, interleaved")
    print(f"{'terms':<16}{'ms: median (min–max)':>28}{'fused / naive (min–max)':>28}{'page faults':>14}")
    for m in args.m:
        naive = [s for s, _ in results[(m, "naive")]]
        for name in variants:
            seconds = [s for s, _ in results[(m, name)]]
            ratios = [a / b for a, b in zip(seconds, naive)]
            faults = statistics.median(f for _, f in results[(m, name)])
            print(f"{f'M={m} {name}':<16}{1e3 * statistics.median(seconds):>13.1f} "
                  f"({1e3 * min(seconds):.1f}–{1e3 * max(seconds):.1f})"
                  f"{statistics.median(ratios):>14.3f} ({min(ratios):.3f}–{max(ratios):.3f}){faults:>14.0f}")


if __name__ == "__main__":
    main()
