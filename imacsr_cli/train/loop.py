"""The trainer: one run, in its own process, from RUN_DIR/spec.json to RUN_DIR/result.json.

Read it top to bottom: ``run`` sets the stage (lock, spec, data, model, optimizer, resume), then
each epoch is ``train_one_epoch`` → ``evaluate`` → checkpoint → ``epoch`` event, and the last
evaluation becomes result.json. The trainer knows nothing of the database: its files are its output
(docs/contracts.md), and its exit code says how it ended (imacsr_cli/rundir/codes.py).
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import platform
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from imacsr_cli import errors
from imacsr_cli import metric_names as mn
from imacsr_cli.units import metric_text
from imacsr_cli.data import registry as data_registry
from imacsr_cli.models import registry as model_registry
from imacsr_cli.rundir import End, Epoch, EventWriter, RunPaths, Start, code_version, codes, write_json
from imacsr_cli.spec import RunSpec, resolve
from imacsr_cli.train import faults
from imacsr_cli.train.checkpoint import load_checkpoint, save_checkpoint
from imacsr_cli.train.diagnostics import Diagnostics
from imacsr_cli.train.imacsr import IMacSR
from imacsr_cli.train.metrics import ConfusionMatrix

log = logging.getLogger("imacsr.train")


READ_EVERY = 50  # CUDA: read the loss terms every this many steps,
READ_SECONDS = 1.0  # or when this long has passed since the last read (progress stays live)


class Interrupted(Exception):
    """SIGTERM/SIGINT, or the parent process is gone. The last checkpoint is intact."""


class NonFinite(Exception):
    """The loss became NaN or inf."""


def _is_oom(exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    return isinstance(exc, oom) or "out of memory" in str(exc) or "can't allocate memory" in str(exc)


# ---- the run ------------------------------------------------------------------------------------


def run(run_dir: str | Path, listener: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Train the run in ``run_dir``; return the process exit code. ``listener`` sees every event."""
    paths = RunPaths(Path(run_dir))
    if not paths.spec.exists():
        raise errors.SpecError(f"{paths.spec}: file not found (a run directory holds spec.json)")
    lock = _lock(paths)
    if lock is None:
        return codes.EXIT_LOCKED
    _log_to(paths.log)
    if paths.result.exists():
        log.info("result.json exists: nothing to do")
        return codes.EXIT_OK
    events = EventWriter(paths.events, listener)
    try:
        with _signals_raise_interrupted():
            return _train(paths, events)
    except errors.ImacsrError as exc:
        return _end(events, codes.EXIT_BAD_SPEC, str(exc))
    except Interrupted as exc:
        return _end(events, codes.EXIT_INTERRUPTED, str(exc))
    except NonFinite as exc:
        return _end(events, codes.EXIT_NONFINITE, str(exc))
    except Exception as exc:
        if _is_oom(exc):
            return _end(events, codes.EXIT_OOM, str(exc).splitlines()[0])
        log.exception("crashed")
        return _end(events, codes.EXIT_CRASH, f"{type(exc).__name__}: {exc}".splitlines()[0])
    finally:
        events.close()
        lock.close()


def _train(paths: RunPaths, events: EventWriter) -> int:
    spec = resolve(RunSpec.from_json(paths.spec))
    code = code_version()  # read before training: the checkout may change while the run trains
    fault = faults.from_env()
    device = _device()
    _threads()
    torch.manual_seed(spec.train.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True

    info = data_registry.info(spec.data)
    train_set = data_registry.build(spec.data, "train")
    val_set = data_registry.build(spec.data, "val")
    if len(train_set) < spec.train.batch_size:
        raise errors.SpecError(
            f"key 'train.batch_size': {spec.train.batch_size} is more than the {len(train_set)} training images"
        )
    if len(val_set) == 0:
        raise errors.DataError(f"dataset {spec.data.name!r}: the evaluation split is empty")
    for ds in (train_set, val_set):
        if hasattr(ds, "set_seed"):
            ds.set_seed(spec.train.seed)

    outputs = info.num_classes + 1 if spec.data.void_logit else info.num_classes  # author's code: a void logit
    model = model_registry.build(spec.model.name, spec.model.variant, outputs, spec.model.weights or None)
    points = [p for p in model_registry.points(spec.model.name, spec.model.variant) if p.name in spec.points.names]
    trainee = IMacSR(model, points, outputs, spec.method, info.ignore_index).to(device)
    if spec.train.channels_last and device.type == "cuda":
        trainee = trainee.to(memory_format=torch.channels_last)
    diag = Diagnostics(model, points, device)
    if spec.train.compile:
        compile_model(trainee)
    optimizer = torch.optim.Adam(  # fused on CUDA: one kernel for all parameters (the CPU keeps today's)
        trainee.parameters(), lr=spec.optim.lr, betas=spec.optim.betas, weight_decay=spec.optim.weight_decay,
        **({"fused": True} if device.type == "cuda" else {}),
    )
    steps_per_epoch = len(train_set) // spec.train.batch_size
    total_steps = steps_per_epoch * spec.train.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(spec.optim.schedule, total_steps))
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(spec.train.amp) if device.type == "cuda" else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)

    start_epoch = 0
    if paths.checkpoint.exists():
        state = load_checkpoint(paths.checkpoint)
        if state.get("run_id") != spec.run_id:
            raise errors.SpecError(f"{paths.checkpoint}: belongs to run {state.get('run_id')}, not {spec.run_id}")
        trainee.load_state_dict(state["trainee"])
        if not state.get("final"):  # a finished run's checkpoint keeps only the weights: evaluate again
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng_cpu"])
            if device.type == "cuda" and "rng_cuda" in state:
                torch.cuda.set_rng_state(state["rng_cuda"])
        start_epoch = int(state["epoch"])
        log.info("resumed from %s after epoch %d", paths.checkpoint, start_epoch)

    events.emit(Start(
        run_id=spec.run_id, pid=os.getpid(), host=socket.gethostname(), device=_device_name(device),
        epochs=spec.train.epochs, steps_per_epoch=steps_per_epoch, resumed_from=start_epoch,
        points=[p.name for p in points],
    ))
    log.info("run %s on %s: %s, %d points %s", spec.run_id, _device_name(device), spec.model.name,
             len(points), [p.name for p in points])

    started = time.time()
    train_seconds = 0.0
    val: dict[str, Any] = {}
    cm: ConfusionMatrix | None = None
    for epoch in range(start_epoch + 1, spec.train.epochs + 1):
        armed = faults.arm(fault, epoch, paths.fault_marker)
        t0 = time.time()
        losses = train_one_epoch(trainee, optimizer, schedule, scaler, train_set, spec, epoch, device, amp_dtype,
                                 events, armed, diag)
        losses.update(diag.epoch_values())  # diag/* rows beside the loss terms
        seconds = time.time() - t0
        train_seconds += seconds
        evaluated = epoch % spec.train.eval_every == 0 or epoch == spec.train.epochs
        if evaluated:
            cm = evaluate(trainee, val_set, spec, info.num_classes, info.ignore_index, device, amp_dtype, events, epoch)
            val = cm.compute()[mn.DATASET]
        state = {
            "run_id": spec.run_id, "epoch": epoch, "trainee": trainee.state_dict(),
            "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "scaler": scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(), "spec": spec.to_dict(),
        }
        if device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state()
        save_checkpoint(paths.checkpoint, state)
        images_per_s = steps_per_epoch * spec.train.batch_size / max(seconds, 1e-9)
        events.emit(Epoch(
            epoch=epoch, epochs=spec.train.epochs, train=losses,
            val={k: val[k] for k in mn.MAIN} if evaluated else {},
            lr=optimizer.param_groups[0]["lr"], seconds=seconds, images_per_s=images_per_s,
        ))
        log.info("epoch %d/%d loss %.4f%s (%.1fs)", epoch, spec.train.epochs, losses[mn.LOSS],
                 " " + metric_text(mn.MIOU, val[mn.MIOU]) if evaluated else "", seconds)

    if cm is None:  # resumed after the last epoch's checkpoint but before result.json: evaluate again
        cm = evaluate(trainee, val_set, spec, info.num_classes, info.ignore_index, device, amp_dtype, events,
                      spec.train.epochs)
    epochs_here = spec.train.epochs - start_epoch
    write_json(paths.result, {
        "run_id": spec.run_id,
        "spec": spec.to_dict(),
        "metrics": cm.compute(),
        "confusion_matrix": cm.mat.tolist(),
        "classes": list(info.classes),
        "epochs": spec.train.epochs,
        mn.WALL_SECONDS: time.time() - started,
        mn.IMAGES_PER_S: epochs_here * steps_per_epoch * spec.train.batch_size / max(train_seconds, 1e-9)
        if epochs_here else None,
        "device": _device_name(device),
        "torch": torch.__version__,
        "code": code.to_dict(),
    })
    # result.json is the truth now; keep the weights but drop the optimizer state (2/3 of the file).
    save_checkpoint(paths.checkpoint, {"run_id": spec.run_id, "epoch": spec.train.epochs,
                                       "trainee": trainee.state_dict(), "spec": spec.to_dict(), "final": True})
    events.emit(End(status="succeeded", reason=None, message="", exit_code=codes.EXIT_OK))
    log.info("succeeded: result.json written")
    return codes.EXIT_OK


# ---- one epoch ----------------------------------------------------------------------------------


def train_one_epoch(trainee: IMacSR, optimizer: torch.optim.Optimizer, schedule: Any, scaler: Any,
                    dataset: Dataset, spec: RunSpec, epoch: int, device: torch.device,
                    amp_dtype: torch.dtype | None, events: EventWriter, fault: faults.Fault | None,
                    diag: Diagnostics | None = None) -> dict[str, float]:
    """One pass over the training set; returns the epoch's mean of every loss term. ``diag`` (if given)
    adds each step's gradient norm; its feature statistics come from its own hooks."""
    trainee.train()
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    # The order of an epoch depends on (seed, epoch) only, so a resumed run sees the same batches.
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(spec.train.seed * 100_003 + epoch))
    loader = _loader(dataset, spec, sampler=order.tolist(), drop_last=True, device=device)
    reads = _Reads(epoch, len(loader), device, events)
    for step, (images, labels) in enumerate(loader, start=1):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if spec.train.channels_last and device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = trainee(images)
            loss, terms = trainee.loss(logits, labels)
        if fault is not None and fault.kind == "nan":
            loss = loss * float("nan")
        if fault is not None and fault.kind == "slow":
            time.sleep(2.0)
        reads.add(step, loss, terms)  # on the CPU: read (and checked) at once, before the update
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if diag is not None:
            scaler.unscale_(optimizer)  # a no-op without fp16; step() then skips its own unscale
            diag.after_backward(trainee.parameters())
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
    return reads.means()


class _Reads:
    """The loss terms of an epoch, read from the device once per ``every`` steps or once a second.

    Each step's values stay on the device; a read moves the pending ones in one transfer, checks
    them step by step for NaN/inf (naming the step) and adds them to float sums in step order, as a
    read per step would. On the CPU a read costs nothing, so it happens every step, before the
    optimizer's update, exactly as before issue 13; on CUDA the default is every READ_EVERY steps
    or READ_SECONDS, so the GPU never waits on the host in between. Env IMACSR_READ_EVERY=N pins the
    schedule to exactly every N steps (tests, benchmarks).
    """

    def __init__(self, epoch: int, steps: int, device: torch.device, events: EventWriter):
        self.epoch, self.steps, self.events = epoch, steps, events
        every = os.environ.get("IMACSR_READ_EVERY", "")
        pinned = every.isdigit() and int(every) > 0  # an exact schedule: no reads by the clock
        self.every = int(every) if pinned else (1 if device.type == "cpu" else READ_EVERY)
        self.seconds = float("inf") if pinned else READ_SECONDS
        self.pending: list[tuple[int, torch.Tensor, list[str]]] = []
        self.sums: dict[str, float] = {}
        self.last_read = time.monotonic()

    def add(self, step: int, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        values = torch.stack([loss.detach().float(), *(v.detach().float() for v in terms.values())])
        self.pending.append((step, values, [mn.LOSS, *terms]))
        if len(self.pending) >= self.every or step == self.steps or time.monotonic() - self.last_read >= self.seconds:
            self.read()

    def read(self) -> None:
        if not self.pending:
            return
        first, last = self.pending[0][0], self.pending[-1][0]
        rows = torch.stack([v for _, v, _ in self.pending]).cpu().tolist()  # the one transfer
        for (step, _, names), row in zip(self.pending, rows):
            if not math.isfinite(row[0]):
                detail = ", ".join(f"{k}={v:.4g}" for k, v in zip(names[1:], row[1:]))
                where = f"step {step}" if first == last else f"step {step} (read steps {first}-{last})"
                raise NonFinite(f"loss is {row[0]} at epoch {self.epoch}, {where} ({detail})")
            for name, value in zip(names, row):
                self.sums[name] = self.sums.get(name, 0.0) + value
        self.events.progress(phase="train", epoch=self.epoch, step=last, steps=self.steps, loss=rows[-1][0])
        self.pending.clear()
        self.last_read = time.monotonic()

    def means(self) -> dict[str, float]:
        self.read()
        return {name: total / self.steps for name, total in self.sums.items()}


@torch.inference_mode()
def evaluate(trainee: IMacSR, dataset: Dataset, spec: RunSpec, num_classes: int, ignore_index: int,
             device: torch.device, amp_dtype: torch.dtype | None, events: EventWriter, epoch: int) -> ConfusionMatrix:
    """Predict the evaluation set and accumulate one confusion matrix (adapters unused)."""
    trainee.eval()
    cm = ConfusionMatrix(num_classes, ignore_index, void_column=spec.data.void_logit)
    loader = _loader(dataset, spec, sampler=None, drop_last=False, device=device)
    for step, (images, labels) in enumerate(loader, start=1):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = trainee(images)
        if logits.shape[-2:] != labels.shape[-2:]:
            logits = torch.nn.functional.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear",
                                                     align_corners=False)
        cm.update(labels, logits.argmax(1))  # counted on the device; one transfer at compute()
        events.progress(phase="eval", epoch=epoch, step=step, steps=len(loader))
    return cm


def _loader(dataset: Dataset, spec: RunSpec, sampler: list[int] | None, drop_last: bool,
            device: torch.device) -> DataLoader:
    workers = loader_workers(spec.data.workers, device)
    return DataLoader(
        dataset, batch_size=spec.train.batch_size, sampler=sampler, drop_last=drop_last,
        num_workers=workers, pin_memory=spec.data.pin_memory and device.type == "cuda",
        persistent_workers=False, collate_fn=data_registry.pad_collate,
    )


def loader_workers(workers: int, device: torch.device) -> int:
    """``data.workers``, where -1 (the default) is the slot's share of the cores on CUDA, where the
    data pipeline is the CPU's only work, and 0 on the CPU, whose cores the training step uses."""
    if workers >= 0:
        return workers
    if device.type != "cuda":
        return 0
    n = os.environ.get("IMACSR_THREADS", "")
    return int(n) if n.isdigit() and int(n) > 0 else len(os.sched_getaffinity(0))


def compile_model(trainee: IMacSR, **options: Any) -> None:
    """``train.compile``: compile the network in place. The taps are forward hooks on its submodules,
    registered before, so the compiled graph keeps them (the loss terms run eagerly)."""
    trainee.model.compile(**options)


def _lr_factor(schedule: str, total_steps: int) -> Callable[[int], float]:
    if schedule == "poly":  # the TopFormer/SeaFormer/mmseg schedule, power 0.9
        return lambda step: max(1.0 - step / max(total_steps, 1), 0.0) ** 0.9
    return lambda step: 1.0  # Table III: a constant learning rate


# ---- process plumbing ---------------------------------------------------------------------------


def _lock(paths: RunPaths):
    """An exclusive flock on RUN_DIR/.lock for the trainer's life; None if another trainer holds it."""
    fh = open(paths.lock, "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def _log_to(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def _end(events: EventWriter, code: int, message: str) -> int:
    reason = codes.REASON_OF_EXIT[code]
    log.error("%s: %s", reason, message)
    status = "interrupted" if code == codes.EXIT_INTERRUPTED else "failed"
    events.emit(End(status=status, reason=reason, message=message, exit_code=code))
    return code


class _signals_raise_interrupted:
    """SIGTERM/SIGINT raise Interrupted in the main thread; a parent watch does the same if the
    scheduler that started us (IMACSR_PARENT_PID) dies, so no trainer runs on unseen."""

    def __enter__(self) -> None:
        self._old = {}
        if threading.current_thread() is not threading.main_thread():
            return
        # SIGUSR2: Slurm's warning before a job's time limit or a preemption (--signal=USR2@N, submitit's).
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
            self._old[sig] = signal.signal(sig, self._raise)
        parent = os.environ.get("IMACSR_PARENT_PID")
        if parent and parent.isdigit():
            threading.Thread(target=self._watch, args=(int(parent),), daemon=True).start()

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    reason = ""

    def _raise(self, signum: int, frame: object) -> None:
        raise Interrupted(self.reason or f"received {signal.Signals(signum).name}")

    def _watch(self, parent: int) -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        self.reason = f"parent process {parent} gone"
        os.kill(os.getpid(), signal.SIGTERM)


def _device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _threads() -> None:
    n = os.environ.get("IMACSR_THREADS", "")
    if n.isdigit() and int(n) > 0:
        torch.set_num_threads(int(n))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m imacsr_cli.train RUN_DIR", flush=True)
        return codes.EXIT_BAD_SPEC
    try:
        return run(argv[0])
    except errors.ImacsrError as exc:  # before events exist (no spec.json)
        print(f"error: {exc}", flush=True)
        return codes.EXIT_BAD_SPEC

