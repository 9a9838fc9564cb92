"""The trainer: one run, in its own process, from RUN_DIR/spec.json to RUN_DIR/result.json.

Read it top to bottom: ``run`` sets the stage (lock, spec, data, model, optimizer, resume), then
each epoch is ``train_one_epoch`` → ``evaluate`` → ``epoch`` event (fsynced) → checkpoint, and the last
evaluation becomes result.json. The epoch's record is durable before the checkpoint that skips it, and
kept in the checkpoint's and result.json's ``history`` too, so no epoch's metrics depend on
events.jsonl alone. The trainer knows nothing of the database: its files are its output
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
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from imacsr_cli import errors
from imacsr_cli import metric_names as mn
from imacsr_cli.units import metric_text
from imacsr_cli.data import registry as data_registry
from imacsr_cli.data.transforms import batch_to_device
from imacsr_cli.models import registry as model_registry
from imacsr_cli.rundir import (
    CheckpointSetAside,
    End,
    Epoch,
    EventWriter,
    Heartbeat,
    ResultError,
    RunPaths,
    Start,
    code_version,
    codes,
    lock_holder,
    read_events,
    read_result,
    write_json,
)
from imacsr_cli.rundir.events import HEARTBEAT_SECONDS
from imacsr_cli.spec import RunSpec, resolve
from imacsr_cli.train import allocator, faults
from imacsr_cli.train.checkpoint import (
    checkpoint_problem,
    is_disk_full,
    load_checkpoint,
    low_on_space,
    save_checkpoint,
    set_aside,
)
from imacsr_cli.train.diagnostics import Diagnostics
from imacsr_cli.train.imacsr import IMacSR
from imacsr_cli.train.metrics import ConfusionMatrix

log = logging.getLogger("imacsr.train")


READ_EVERY = 50  # CUDA: read the loss terms every this many steps,
READ_SECONDS = 1.0  # or when this long has passed since the last read (progress stays live)


class Interrupted(Exception):
    """SIGTERM/SIGINT/SIGUSR2, or the parent process is gone. The last checkpoint is intact.
    ``signal`` names the signal that came from outside (None when the trainer stopped itself)."""

    def __init__(self, message: str, signal: str | None = None):
        super().__init__(message)
        self.signal = signal


class NonFinite(Exception):
    """The loss became NaN or inf."""


class BadResult(Exception):
    """RUN_DIR/result.json exists but is not this run's result (another run's, empty, corrupt)."""


# Fields of an ``epoch`` event that make up the epoch's record (the checkpoint's and result's history).
RECORD_KEYS = ("epoch", "epochs", "train", "val", "lr", "seconds", "images_per_s")


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
    try:
        _log_to(paths.log)
        events = EventWriter(paths.events, listener)
    except OSError as exc:
        lock.close()
        if is_disk_full(exc):
            return codes.EXIT_DISK_FULL
        raise
    try:
        with _signals_raise_interrupted():
            return _train(paths, events)
    except errors.ImacsrError as exc:
        return _end(events, codes.EXIT_BAD_SPEC, str(exc))
    except BadResult as exc:
        return _end(events, codes.EXIT_BAD_RESULT, str(exc))
    except Interrupted as exc:
        return _end(events, codes.EXIT_INTERRUPTED, str(exc), signal=exc.signal)
    except NonFinite as exc:
        return _end(events, codes.EXIT_NONFINITE, str(exc))
    except Exception as exc:
        if is_disk_full(exc) or ("unexpected pos" in str(exc) and low_on_space(paths.root)):
            return _end(events, codes.EXIT_DISK_FULL,
                        f"disk full: no space left for {paths.root} ({str(exc).splitlines()[0]}); the last "
                        "checkpoint is intact")
        if _is_oom(exc):
            return _end(events, codes.EXIT_OOM, str(exc).splitlines()[0])
        log.exception("crashed")
        return _end(events, codes.EXIT_CRASH, f"{type(exc).__name__}: {exc}".splitlines()[0])
    finally:
        events.close()
        lock.close()


def _train(paths: RunPaths, events: EventWriter) -> int:
    spec = resolve(RunSpec.from_json(paths.spec))
    if paths.result.exists():
        try:
            read_result(paths, spec.run_id)
        except ResultError as exc:
            raise BadResult(f"{exc}: move it out of the run directory, then retry the run "
                            f"(imacsr runs retry {spec.run_id})") from None
        log.info("result.json exists: nothing to do")
        return codes.EXIT_OK
    fault = faults.from_env()
    # The first event, then a heartbeat every HEARTBEAT_SECONDS while the data and the model are built:
    # a scheduler's --timeout counts from here, and a slow start-up is not a hang.
    with _StartupHeartbeats(events):
        return _train_started(paths, events, spec, fault)


def _train_started(paths: RunPaths, events: EventWriter, spec: RunSpec, fault: faults.Fault | None) -> int:
    code = code_version()  # read before training: the checkout may change while the run trains
    device = _device()
    _threads()
    torch.manual_seed(spec.train.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
        if allocator.keep_freed_memory():  # each step reuses the last one's pages (allocator.py)
            log.info("CPU memory: freed blocks kept for reuse (glibc mmap'd blocks and trimming off)")
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
        if hasattr(ds, "compact"):  # uint8 batches, normalised on the device (transforms.batch_to_device)
            ds.compact = True
    faults.at_startup(fault, paths.fault_marker, paths.root / ".fault_release")

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
    history: list[dict[str, Any]] = []
    state = _resume_state(paths, spec.run_id, events)
    if state is not None:
        trainee.load_state_dict(state["trainee"])
        if not state.get("final"):  # a finished run's checkpoint keeps only the weights: evaluate again
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng_cpu"])
            if device.type == "cuda" and "rng_cuda" in state:
                torch.cuda.set_rng_state(state["rng_cuda"])
        start_epoch = int(state["epoch"])
        history = [dict(r) for r in state.get("history", [])]
        log.info("resumed from %s after epoch %d", paths.checkpoint, start_epoch)
    # Epochs whose record is in events.jsonl already (written before a checkpoint that was then lost to a
    # kill): trained again from the checkpoint, or from scratch when the kill came before the first
    # checkpoint, but not recorded a second time. (A rerun sets events.jsonl aside, and a checkpoint set
    # aside clears the records before it, so what is left is this training's.)
    recorded = _recorded_epochs(paths, spec.run_id)
    if len(history) < start_epoch:  # a checkpoint from before histories were kept
        history = [recorded[e] for e in range(1, start_epoch + 1) if e in recorded]

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
        record = {
            "epoch": epoch, "epochs": spec.train.epochs, "train": losses,
            "val": {k: val[k] for k in mn.MAIN} if evaluated else {},
            "lr": optimizer.param_groups[0]["lr"], "seconds": seconds,
            "images_per_s": steps_per_epoch * spec.train.batch_size / max(seconds, 1e-9),
        }
        # SIGTERM waits until the record and the checkpoint are both written; a SIGKILL between the
        # two leaves the record, and the epoch is trained again but not recorded twice.
        with _no_interruption():
            if epoch in recorded:
                record = recorded[epoch]  # the record a reader may already hold stays the one record
                log.info("epoch %d: recorded before its checkpoint was lost; not recorded again", epoch)
            else:
                events.emit(Epoch(**record))  # durable (fsynced) before the checkpoint that skips it
            history.append(record)
            faults.before_checkpoint(fault, epoch, paths.fault_marker)
            state = {
                "run_id": spec.run_id, "epoch": epoch, "trainee": trainee.state_dict(),
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "scaler": scaler.state_dict(), "rng_cpu": torch.get_rng_state(), "spec": spec.to_dict(),
                "history": history,
            }
            if device.type == "cuda":
                state["rng_cuda"] = torch.cuda.get_rng_state()
            save_checkpoint(paths.checkpoint, state)
        log.info("epoch %d/%d loss %.4f%s (%.1fs)", epoch, spec.train.epochs, losses.get(mn.LOSS, float("nan")),
                 " " + metric_text(mn.MIOU, val[mn.MIOU]) if evaluated else "", seconds)

    if cm is None:  # resumed after the last epoch's checkpoint but before result.json: evaluate again
        cm = evaluate(trainee, val_set, spec, info.num_classes, info.ignore_index, device, amp_dtype, events,
                      spec.train.epochs)
    epochs_here = spec.train.epochs - start_epoch
    with _no_interruption():  # result.json and the final checkpoint are written whole
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
            "history": history,
        })
        # result.json is the truth now; keep the weights but drop the optimizer state (2/3 of the file).
        save_checkpoint(paths.checkpoint, {"run_id": spec.run_id, "epoch": spec.train.epochs,
                                           "trainee": trainee.state_dict(), "spec": spec.to_dict(), "final": True,
                                           "history": history})
    events.emit(End(status="succeeded", reason=None, message="", exit_code=codes.EXIT_OK))
    log.info("succeeded: result.json written")
    return codes.EXIT_OK


# ---- resume, records, start-up ------------------------------------------------------------------


def _resume_state(paths: RunPaths, run_id: str, events: EventWriter) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None to start from scratch. A checkpoint that does not load
    (truncated, corrupt) or is not this run's is set aside (renamed, kept) with an event saying so."""
    if not paths.checkpoint.exists():
        return None
    try:
        state = load_checkpoint(paths.checkpoint)
    except Exception as exc:  # torch raises RuntimeError, EOFError, pickle errors... for a broken file
        if is_disk_full(exc):
            raise
        problem = f"does not load ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    else:
        problem = checkpoint_problem(state, run_id)
    if problem is None:
        return state
    aside = set_aside(paths.checkpoint)
    message = f"{paths.checkpoint} {problem}: set aside as {aside.name}; the run starts from scratch"
    log.warning("%s", message)
    events.emit(CheckpointSetAside(path=str(aside), problem=problem, message=message))
    return None


def _recorded_epochs(paths: RunPaths, run_id: str) -> dict[int, dict[str, Any]]:
    """The epoch records of this run already in events.jsonl, by epoch (the last one of each). Records
    made before a checkpoint was set aside belong to the abandoned training and are dropped."""
    events, _ = read_events(paths.events)
    recorded: dict[int, dict[str, Any]] = {}
    ours = False
    for ev in events:
        if isinstance(ev, Start):
            ours = ev.run_id == run_id
        elif isinstance(ev, CheckpointSetAside):
            recorded.clear()
        elif isinstance(ev, Epoch) and ours:
            recorded[ev.epoch] = {k: getattr(ev, k) for k in RECORD_KEYS}
    return recorded


class _StartupHeartbeats:
    """The first event at once, then a ``heartbeat`` (phase ``startup``) every HEARTBEAT_SECONDS from a
    thread until the ``start`` event: a slow start-up (data, model, weights) must not look like a hang."""

    def __init__(self, events: EventWriter):
        self.events = events
        self._stop = threading.Event()

    def __enter__(self) -> None:
        self.events.emit(Heartbeat(phase="startup"))
        threading.Thread(target=self._beat, name="startup-heartbeats", daemon=True).start()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if self.events.started:
                return
            try:
                self.events.emit(Heartbeat(phase="startup"))
            except (OSError, ValueError):  # disk full or the writer closed: the main thread reports it
                return


# ---- one epoch ----------------------------------------------------------------------------------


def train_one_epoch(trainee: IMacSR, optimizer: torch.optim.Optimizer, schedule: Any, scaler: Any,
                    dataset: Dataset, spec: RunSpec, epoch: int, device: torch.device,
                    amp_dtype: torch.dtype | None, events: EventWriter, fault: faults.Fault | None,
                    diag: Diagnostics | None = None) -> dict[str, float]:
    """One pass over the training set; returns the epoch's mean of every loss term over the batches
    that have a labelled pixel. ``diag`` (if given) adds each step's gradient norm; its feature
    statistics come from its own hooks. A batch whose pixels are all void (ignore_index) has no
    cross-entropy (0/0 = NaN): it weighs nothing, so it is skipped (no update; the schedule still steps,
    so the learning rate depends on the batch's place in training only), not taken for a divergence."""
    trainee.train()
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    # The order of an epoch depends on (seed, epoch) only, so a resumed run sees the same batches.
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(spec.train.seed * 100_003 + epoch))
    loader = _loader(dataset, spec, sampler=order.tolist(), drop_last=True, device=device)
    reads = _Reads(epoch, len(loader), device, events)
    steps = len(loader)
    for step, batch in enumerate(loader, start=1):
        if not bool((batch[1] != trainee.ignore_index).any()):  # on the CPU tensor: no device sync
            log.warning("epoch %d, step %d: every pixel of the batch is void; skipped (zero weight)", epoch, step)
            with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()": on purpose here
                warnings.simplefilter("ignore", UserWarning)
                schedule.step()
            events.progress(phase="train", epoch=epoch, step=step, steps=steps)
            reads.skipped += 1
            continue
        images, labels = batch_to_device(batch, device)
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
        self.skipped = 0  # all-void batches: no loss, no weight in the means
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
        return {name: total / (self.steps - self.skipped) for name, total in self.sums.items()}


@torch.inference_mode()
def evaluate(trainee: IMacSR, dataset: Dataset, spec: RunSpec, num_classes: int, ignore_index: int,
             device: torch.device, amp_dtype: torch.dtype | None, events: EventWriter, epoch: int) -> ConfusionMatrix:
    """Predict the evaluation set and accumulate one confusion matrix (adapters unused)."""
    trainee.eval()
    cm = ConfusionMatrix(num_classes, ignore_index, void_column=spec.data.void_logit)
    loader = _loader(dataset, spec, sampler=None, drop_last=False, device=device)
    for step, batch in enumerate(loader, start=1):
        images, labels = batch_to_device(batch, device)
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


class _Lock:
    """An open file descriptor that holds the flock on RUN_DIR/.lock."""

    def __init__(self, fd: int):
        self.fd = fd

    def close(self) -> None:
        os.close(self.fd)  # releases the flock


def _lock(paths: RunPaths) -> _Lock | None:
    """An exclusive flock on RUN_DIR/.lock for the trainer's life; None if another trainer holds it.

    Opened without truncating, and the pid written only once the lock is ours: a trainer that fails to
    get the lock must leave the holder's pid in the file, so a scheduler can signal a stray holder."""
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:  # a full disk: the lock is held all the same, and the holder's pid is unknown
        pass
    return _Lock(fd)


def _log_to(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def _end(events: EventWriter, code: int, message: str, signal: str | None = None) -> int:
    reason = codes.REASON_OF_EXIT[code]
    log.error("%s: %s", reason, message)
    status = "interrupted" if code == codes.EXIT_INTERRUPTED else "failed"
    try:
        events.emit(End(status=status, reason=reason, message=message, exit_code=code, signal=signal))
    except OSError:  # a full disk: the exit code still says how it ended
        pass
    return code


class _signals_raise_interrupted:
    """SIGTERM/SIGINT raise Interrupted in the main thread; a parent watch does the same if the
    scheduler that started us (IMACSR_PARENT_PID) dies, so no trainer runs on unseen. Inside
    ``_no_interruption()`` the signal waits for the block's end."""

    active: _signals_raise_interrupted | None = None
    deferring = 0
    pending: Interrupted | None = None

    def __enter__(self) -> None:
        _signals_raise_interrupted.active = self
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
        _signals_raise_interrupted.active = None

    reason = ""

    def _raise(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        # The parent watch signals the trainer itself: that stop is imacsr's, not a signal from outside.
        stop = Interrupted(self.reason, None) if self.reason else Interrupted(f"received {name}", name)
        if self.deferring:
            self.pending = stop
            return
        raise stop

    def _watch(self, parent: int) -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        self.reason = f"parent process {parent} gone"
        os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def _no_interruption() -> Iterator[None]:
    """SIGTERM/SIGINT wait until the block is done: torch.save interrupted by an exception raised in
    its write callback fails as a RuntimeError ("unexpected pos"), which would look like a crash."""
    handler = _signals_raise_interrupted.active
    if handler is None:
        yield
        return
    handler.deferring += 1
    try:
        yield
    finally:
        handler.deferring -= 1
    if not handler.deferring and handler.pending:
        stop, handler.pending = handler.pending, None
        raise stop


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
        code = run(argv[0])
    except errors.ImacsrError as exc:  # before events exist (no spec.json)
        print(f"error: {exc}", flush=True)
        return codes.EXIT_BAD_SPEC
    if code == codes.EXIT_LOCKED:  # the only end that writes nothing into RUN_DIR's files: say it here
        paths = RunPaths(Path(argv[0]))
        print(f"{paths.lock}: held by another trainer (pid {lock_holder(paths) or 'unknown'}); exit {code} (locked)",
              flush=True)
    return code

