"""What the per-point diagnostics cost: an iMacSR training step with and without them, interleaved.

    python benchmarks/diagnostics.py                       # CPU, DeepLabv3+-R18, 128×256, batch 4, M = 3
    python benchmarks/diagnostics.py --device cuda --size 512 1024 --batch 8

Both configurations share one process, one model and one batch; they alternate in rounds (off, on,
off, on, ...) so that load from other processes hits both alike. "on" is what the trainer does each
step: the Diagnostics hooks on the M points (entropy and norm of each z_m, on the device) and the
gradient norm after backward. The per-epoch read (one host sync) is outside the timed steps, as in
the trainer. Prints seconds per step (median over rounds) and the ratio on/off.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    import torch

    from imacsr_cli.models import registry
    from imacsr_cli.spec.runspec import MethodSpec
    from imacsr_cli.train.diagnostics import Diagnostics
    from imacsr_cli.train.imacsr import IMacSR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="deeplabv3plus")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 256), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--points", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration per round")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    k = 19
    model = registry.build(args.model, "", k)
    cands = registry.points(args.model, "")
    chosen = [cands[i] for i in range(0, 2 * args.points, 2)]
    net = IMacSR(model, chosen, k, MethodSpec(name="imacsr", alpha=0.4, lam=0.01)).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    h, w = args.size
    x = torch.randn(args.batch, 3, h, w, device=device)
    y = torch.randint(0, k, (args.batch, h, w), device=device)

    def steps(diag: Diagnostics | None) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss, _ = net.loss(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if diag is not None:
                diag.after_backward(net.parameters())
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / args.steps

    steps(None)  # warm-up
    times: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        times["off"].append(steps(None))
        diag = Diagnostics(model, chosen, device)
        times["on"].append(steps(diag))
        diag.epoch_values()  # the once-per-epoch read, untimed as in the trainer
        diag.close()
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    print(f"{args.model}, {len(chosen)} points {[p.name for p in chosen]}, {args.device} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads), {h}×{w}, batch {args.batch}, "
          f"{args.rounds} rounds × {args.steps} steps")
    print(f"{'diagnostics':<12} {'s/step (median)':>16} {'min':>8} {'max':>8}")
    for name in ("off", "on"):
        print(f"{name:<12} {statistics.median(times[name]):16.4f} {min(times[name]):8.4f} {max(times[name]):8.4f}")
    print(f"ratio on/off: {on / off:.3f}")


if __name__ == "__main__":
    main()
