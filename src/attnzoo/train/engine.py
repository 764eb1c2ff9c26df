"""The training loop: one process, or one rank of a ``torchrun`` job."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler

from .._version import __version__
from ..data import TensorImageDataset, augment_defaults, load_dataset, random_crop_flip
from ..utils.io import atomic_write_json, atomic_write_text, ensure_writable, read_json
from ..utils import count_macs, count_params
from ..utils.device import select_device
from . import checkpoint as ckpt, run_folder
from .run_folder import RunLock
from .config import CHECKPOINT_FORMAT, TrainConfig
from .distributed import DistInfo, all_reduce_sum, cleanup, init_distributed
from .health import GateStats, health_flags
from .interrupt import StopRequest


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    return cfg.spec().build(num_classes)


def param_groups(model: nn.Module, weight_decay: float, backbone_lr_scale: Optional[float] = None) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only: not on BN parameters, biases or scalar gains.

    With ``backbone_lr_scale`` (fine-tuning), pretrained parameters get that fraction of the
    learning rate (``lr_scale``), the new attention/fusion modules and the head the whole of it.
    """
    from ..models.weights import head_keys, is_new_module_key

    fresh = head_keys(model)
    groups: dict[tuple[bool, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        scale = 1.0 if backbone_lr_scale is None or is_new_module_key(name) or name in fresh else backbone_lr_scale
        groups.setdefault((p.ndim > 1, scale), []).append(p)
    # Decayed weights first, then the rest (the order older checkpoints' optimizer states have).
    order = sorted(groups, key=lambda k: (-k[1], not k[0]))
    return [{"params": groups[k], "weight_decay": weight_decay if k[0] else 0.0, "lr_scale": k[1]} for k in order]


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based)."""
    if schedule == "onecycle":
        # Cosine ramp from lr/25 to lr over the warm-up, then cosine down to lr/1e4 (torch's OneCycleLR).
        warmup_steps = max(1, warmup_steps)
        if step < warmup_steps:
            t = step / warmup_steps
            return 1 / 25 + (1 - 1 / 25) * (1 - math.cos(math.pi * t)) / 2
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 1e-4 + (1 - 1e-4) * (1 + math.cos(math.pi * min(1.0, t))) / 2
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def step_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """The augmentation RNG of one step: a function of (seed, epoch, step) only, so a resumed run
    draws exactly what the uninterrupted run would have."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + step)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    x = images.float().div_(255)
    return x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).clamp_min(1e-3).tolist()


class Batches(Protocol):
    """What the epoch loop and evaluation ask of a data source: how many images it has, and the
    (images, labels) batch of some indices, augmented when given a generator. :class:`BatchMaker`
    holds the whole dataset on the device; a streaming source would implement the same two."""

    def __len__(self) -> int: ...

    def __call__(self, index: torch.Tensor, generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]: ...


class BatchMaker:
    """uint8 images on the device -> normalised float batches, augmented on the whole batch."""

    def __init__(
        self, ds: TensorImageDataset, device: torch.device, mean, std, padding: int, flip: bool, channels_last: bool, shard: tuple[int, int] = (0, 1)
    ) -> None:
        self.shard = shard
        self.images = ds.images.to(device)
        self.labels = ds.labels.to(device)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.padding, self.flip = padding, flip
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __call__(self, index: torch.Tensor, generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
        index = index.to(self.images.device)
        x = self.images[index].float().div_(255).sub_(self.mean).div_(self.std)
        if generator is not None and (self.padding or self.flip):
            x = random_crop_flip(x, self.padding, generator, flip=self.flip, shard=self.shard)
        return x.contiguous(memory_format=self.memory_format), self.labels[index]


def _loss(out, target: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    if isinstance(out, (tuple, list)):  # e.g. HA-CNN: one classifier per branch
        return sum(F.cross_entropy(o.float(), target, label_smoothing=label_smoothing) for o in out)
    return F.cross_entropy(out.float(), target, label_smoothing=label_smoothing)


def _logits(out) -> torch.Tensor:
    return sum(o.float() for o in out) if isinstance(out, (tuple, list)) else out.float()


def autocast_context(device: torch.device, cfg: TrainConfig):
    if not cfg.execution.amp:
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[cfg.execution.amp_dtype or ("fp16" if device.type == "cuda" else "bf16")]
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Batches,
    num_classes: int,
    batch_size: int,
    info: DistInfo = DistInfo(),
    amp: Callable[[], Any] = contextlib.nullcontext,
    limit: Optional[int] = None,
) -> dict[str, Any]:
    """Top-1/top-5, loss, per-class accuracy and confusion matrix on a whole dataset (or on its
    first ``limit`` images).

    Under torchrun each rank scores a disjoint shard and the counts are summed.
    """
    model.eval()
    classify = getattr(model, "classify", model)
    n = len(batches) if limit is None else min(limit, len(batches))
    index = torch.arange(info.rank, n, info.world_size)
    k = min(5, num_classes)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    sums = torch.zeros(3, dtype=torch.float64)  # loss, top-5 hits, count
    monitor = GateStats(model)  # per-layer gate mean/std: how a collapse shows itself
    for start in range(0, index.numel(), batch_size):
        x, y = batches(index[start : start + batch_size])
        with amp(), monitor:
            logits = _logits(classify(x))
        sums[0] += F.cross_entropy(logits, y, reduction="sum").item()
        top = logits.topk(k, dim=1).indices
        sums[1] += (top == y[:, None]).any(1).sum().item()
        sums[2] += y.numel()
        confusion += torch.bincount((y * num_classes + top[:, 0]).cpu(), minlength=num_classes**2).view(num_classes, num_classes).double()
    all_reduce_sum(sums, info)
    all_reduce_sum(confusion, info)
    count = max(sums[2].item(), 1.0)
    per_class = (confusion.diag() / confusion.sum(1).clamp_min(1)).tolist()
    return {
        "top1": confusion.diag().sum().item() / count,
        "top5": sums[1].item() / count,
        "loss": sums[0].item() / count,
        "per_class_top1": per_class,
        "confusion": confusion.long().tolist(),
        "count": int(count),
        "gates": monitor.summary(),
    }


def versions() -> dict[str, str]:
    return {"attnzoo": __version__, "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety; training does not depend on it
        return None
    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True, file=sys.stderr)


def resumed_config(out: Path, requested: TrainConfig) -> Optional[TrainConfig]:
    """The config to continue the run in ``out`` with: the run's own, with only what is safe to
    change taken from ``requested`` (more ``epochs``; how it executes). Anything else that differs
    is refused, naming the option and both values. None when the run has already finished."""
    stored = stored_config(out)
    if stored is None:
        return requested
    mine, theirs = stored.to_dict(), requested.to_dict()
    execution = TrainConfig.execution_only_fields()
    changed = [k for k in mine if k not in execution and k != "epochs" and mine[k] != theirs[k]]
    if changed:
        raise ValueError(f"--resume continues {out} as it was configured; it differs in " + "; ".join(
            f"{k} (run: {mine[k]!r}, now: {theirs[k]!r})" for k in changed) + ". Start a new run (another --out) to change them")
    if requested.optim.epochs < stored.optim.epochs:
        raise ValueError(f"--resume: --epochs {requested.optim.epochs} is fewer than the run's {stored.optim.epochs}; epochs can only be extended")
    cfg = stored.replace(**{k: theirs[k] for k in execution}, epochs=requested.optim.epochs)
    summary = out / "summary.json"
    if summary.is_file():
        done = read_json(summary)
        if done.get("status") == "finished" and done["config"]["epochs"] >= cfg.optim.epochs:
            print(f"{out} finished all {done['config']['epochs']} epochs already; nothing to do (pass more --epochs to extend it)", file=sys.stderr)
            return None
    return cfg



def stored_config(out: Path) -> Optional[TrainConfig]:
    """The config a run in ``out`` was started with: ``config.json``, or a checkpoint's metadata
    (runs written before config.json existed), read as its checkpoints' format meant it."""
    if (out / "config.json").is_file():
        return TrainConfig.from_checkpoint(read_json(out / "config.json"), _run_format(out))
    found = ckpt.find_resumable(out)
    if found is None:
        return None
    meta = ckpt.load_weights(found[0])[1]
    return TrainConfig.from_checkpoint(json.loads(meta["config"]), meta.get("format", ""))


def _run_format(out: Path) -> str:
    """The checkpoint format of the run in ``out``, from the header of any readable weights file
    (today's when it has none yet). Headers only: a sweep asks this of every run folder it finds.
    (A run resumed by a newer attnzoo mixes formats, but its config.json was rewritten with every
    option explicit, and explicit options are never upgraded.)"""
    for weights in sorted(out.glob("*.safetensors")):
        try:
            return ckpt.read_metadata(weights).get("format", "")
        except ckpt.CheckpointError:
            continue
    return CHECKPOINT_FORMAT


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) one run described by ``cfg``; returns its summary (also written to
    ``--out/summary.json`` by rank 0)."""
    cfg.validate()
    device = select_device(cfg.execution.device)
    info = init_distributed(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    try:
        return _train(cfg, device, info)
    finally:
        cleanup(info)


@dataclass
class TrainState:
    """Where a run stands: what a checkpoint's state file holds besides optimizer and RNG."""

    epoch: int = 0  # epochs finished
    step: int = 0  # steps finished in the current epoch
    best: dict[str, Any] = field(default_factory=lambda: {"top1": -1.0, "epoch": -1})
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Run:
    """Everything a run trains with, set up once by :func:`_set_up`."""

    cfg: TrainConfig
    device: torch.device
    info: DistInfo
    out: Path
    train_ds: TensorImageDataset
    train_batches: Batches
    test_batches: Batches
    core: nn.Module  # the model itself (checkpoints, evaluation)
    model: nn.Module  # what trains: core, DDP-wrapped and/or compiled
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    sampler: DistributedSampler
    meta: dict[str, str]

    @property
    def num_classes(self) -> int:
        return self.train_ds.num_classes

    @property
    def per_rank_batch(self) -> int:
        return self.cfg.optim.batch_size // self.info.world_size

    @property
    def steps_per_epoch(self) -> int:
        return len(self.sampler) // self.per_rank_batch

    def amp(self):
        return autocast_context(self.device, self.cfg)

    def save(self, state: TrainState, tag: str) -> None:
        """Checkpoint ``state`` (rank 0 only) with the optimizer, scaler and RNG."""
        if not self.info.is_main:
            return
        blob = {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "torch_rng": torch.get_rng_state(),
            **dataclasses.asdict(state),
        }
        extra = ("best.safetensors",) if (self.out / "best.safetensors").is_file() else ()
        ckpt.save_checkpoint(self.out, tag, self.core.state_dict(), blob, {**self.meta, "epoch": str(state.epoch), "step": str(state.step)}, extra)


def _check_output(cfg: TrainConfig) -> bool:
    """Before any work (``_train`` has already made the folder and probed it writable): a folder
    holding a run is only continued (``resume``) or replaced (``overwrite``), never silently
    overwritten. True when this run is to replace one (its files are set aside only once the new
    run has set up: :mod:`.run_folder`)."""
    out = Path(cfg.execution.out)
    if cfg.execution.resume or not ckpt.holds_run(out):
        return False
    if not cfg.execution.overwrite:
        raise ValueError(f"{out} already holds a run; pass --resume to continue it, --overwrite to replace it, or choose another --out")
    return True


def _set_up(cfg: TrainConfig, device: torch.device, info: DistInfo) -> Run:
    data, optim, ex = cfg.data, cfg.optim, cfg.execution
    if ex.threads:
        torch.set_num_threads(ex.threads)
    if ex.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if ex.sync_bn and device.type != "cuda":
        raise ValueError(
            "--sync-bn needs CUDA (SyncBatchNorm runs on NCCL); on CPU each rank normalises its own "
            "batch and rank 0's running statistics are broadcast to all ranks every step"
        )
    if optim.batch_size % info.world_size:
        raise ValueError(f"batch size {optim.batch_size} is not divisible by the {info.world_size} ranks")
    if ex.amp and ex.amp_dtype == "fp16" and device.type == "cpu" and info.is_main:
        print("warning: --amp-dtype fp16 on a CPU: few CPU kernels run fp16, so autocast casts back and forth and a step "
              "can take many times fp32's; bf16 is the CPU's autocast dtype (the default there)", file=sys.stderr)
    loading = dict(progress=info.is_main and ex.progress, **data.dataset_options())
    train_ds = load_dataset(data.dataset, "train", data.data_root, data.train_size, data.data_seed, **loading)
    test_ds = load_dataset(data.dataset, "test", data.data_root, data.test_size, data.data_seed, **loading)
    if len(train_ds) < optim.batch_size:
        raise ValueError(f"the training set has {len(train_ds)} images, fewer than one batch of {optim.batch_size}")
    mean, std = channel_stats(train_ds.images)
    aug = augment_defaults(data.dataset, train_ds.images.shape[-1])
    train_batches = BatchMaker(
        train_ds, device, mean, std, aug.padding if data.augment else 0, aug.flip and data.augment, ex.channels_last, (info.rank, info.world_size)
    )
    test_batches = BatchMaker(test_ds, device, mean, std, 0, False, ex.channels_last)

    torch.manual_seed(ex.seed)
    core = build_model(cfg, train_ds.num_classes).to(device)
    if ex.sync_bn and info.enabled:
        core = nn.SyncBatchNorm.convert_sync_batchnorm(core)
    if ex.channels_last:
        core = core.to(memory_format=torch.channels_last)
    if cfg.finetune.init_from:
        _init_from(core, cfg, info)
    backbone_lr_scale = cfg.finetune.backbone_lr_scale if cfg.finetune.init_from else None
    optimizer = torch.optim.SGD(param_groups(core, optim.weight_decay, backbone_lr_scale), lr=optim.peak_lr, momentum=optim.momentum)
    scaler = torch.amp.GradScaler(device.type, enabled=ex.amp and device.type == "cuda" and ex.amp_dtype != "bf16")
    sampler = DistributedSampler(range(len(train_ds)), num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=ex.seed, drop_last=True)
    model: nn.Module = core
    if info.enabled:
        model = nn.parallel.DistributedDataParallel(core, device_ids=[device.index] if device.type == "cuda" else None)
    if ex.compile:
        model = torch.compile(model)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "config": cfg.to_json(),
        "num_classes": str(train_ds.num_classes),
        "input_shape": json.dumps(list(train_ds.images.shape[1:])),
        "mean": json.dumps(mean),
        "std": json.dumps(std),
    }
    return Run(cfg, device, info, Path(ex.out), train_ds, train_batches, test_batches, core, model, optimizer, scaler, sampler, meta)


def _init_from(core: nn.Module, cfg: TrainConfig, info: DistInfo) -> None:
    """Fine-tuning: the pretrained plain weights into the (retrofitted) model, a head of another
    size re-initialised, the stem and the first ``freeze_stages`` stages frozen."""
    from ..models.weights import load_backbone

    report = load_backbone(core, cfg.finetune.init_from, cfg.finetune.init_source, head="reinit")
    if info.is_main:
        print(f"initialised from {cfg.finetune.init_from}: {report}", file=sys.stderr)
    if cfg.finetune.freeze_stages:
        from ..models.slots import freeze_stages

        freeze_stages(core, cfg.finetune.freeze_stages)


def _restore(run: Run) -> TrainState:
    """The state of the newest verified checkpoint, loaded into the run; a fresh state without one."""
    damaged: list[str] = []
    found = ckpt.find_resumable(run.out, damaged)
    if run.info.is_main and damaged:
        print("skipped damaged checkpoint files: " + "; ".join(damaged), file=sys.stderr)
    if found is None:
        if damaged:  # never restart at epoch 1 over a run whose checkpoints exist but do not load
            raise ckpt.CheckpointError(f"--resume: no checkpoint in {run.out} loads ({'; '.join(damaged)}); "
                                       "restore the files, or pass --overwrite (instead of --resume) to start the run again")
        if run.info.is_main:
            print(f"{run.out} holds no checkpoint yet: starting from epoch 1", file=sys.stderr)
        return TrainState()
    weights, _ = ckpt.load_weights(found[0])
    run.core.load_state_dict(weights)
    blob = ckpt.load_state(found[1])
    run.optimizer.load_state_dict(blob["optimizer"])
    if blob.get("scaler"):
        run.scaler.load_state_dict(blob["scaler"])
    torch.set_rng_state(blob["torch_rng"])
    state = TrainState(blob["epoch"], blob["step"], blob["best"], [h for h in blob["history"] if h["epoch"] <= blob["epoch"]])
    if run.info.is_main and state.epoch < run.cfg.optim.epochs:
        print(f"resuming {run.out} from {found[0].name} at epoch {state.epoch + 1}, step {state.step}", file=sys.stderr)
    return state


def _train_epoch(run: Run, state: TrainState, stop: "StopRequest") -> dict[str, Any]:
    """Train from ``state.step`` to the end of epoch ``state.epoch + 1``; returns the epoch's
    training figures. A stop request ends it after the current step with a checkpoint."""
    cfg, info = run.cfg, run.info
    epoch, steps = state.epoch, run.steps_per_epoch
    total_steps, warmup_steps = steps * cfg.optim.epochs, int(cfg.optim.warmup_epochs * steps)
    run.sampler.set_epoch(epoch)
    order = torch.tensor(list(run.sampler))
    run.model.train()
    bar = _progress(steps, f"epoch {epoch + 1}/{cfg.optim.epochs}", cfg.execution.progress and info.is_main)
    if bar is not None and state.step:
        bar.update(state.step)
    stats = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, seen
    data_time, epoch_start, first_step, lr = 0.0, time.perf_counter(), state.step, run.optimizer.param_groups[0]["lr"]
    b = run.per_rank_batch
    while state.step < steps:
        t0 = time.perf_counter()
        x, y = run.train_batches(order[state.step * b : (state.step + 1) * b], step_generator(cfg.execution.seed, epoch, state.step))
        data_time += time.perf_counter() - t0
        lr = cfg.optim.peak_lr * lr_factor(epoch * steps + state.step, total_steps, warmup_steps, cfg.optim.schedule)
        for group in run.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        with run.amp():
            out = run.model(x)
            loss = _loss(out, y, cfg.optim.label_smoothing)
        finite = torch.tensor([float(torch.isfinite(loss))])
        if all_reduce_sum(finite, info).item() < info.world_size:
            raise TrainingDiverged(f"loss is {loss.item()} at epoch {epoch + 1}, step {state.step}; training stopped. {_kept(run.out)} "
                                   "Try a lower --lr, or run without --amp.")
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        stats += torch.tensor([loss.item() * y.numel(), (_logits(out).argmax(1) == y).sum().item(), y.numel()], dtype=torch.float64)
        state.step += 1
        if bar is not None:
            elapsed = time.perf_counter() - epoch_start
            bar.set_postfix(loss=f"{stats[0] / stats[2]:.3f}", acc=f"{stats[1] / stats[2]:.3f}", img_s=f"{stats[2] * info.world_size / elapsed:.0f}")
            bar.update(1)
        if stop.agreed(info) and state.step < steps:  # a whole step is done: the checkpoint resumes exactly
            if bar is not None:
                bar.close()
            run.save(state, "interrupted")
            raise KeyboardInterrupt
    if bar is not None:
        bar.close()
    epoch_time = time.perf_counter() - epoch_start
    all_reduce_sum(stats, info)
    return {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": stats[0].item() / max(stats[2].item(), 1),
        "train_top1": stats[1].item() / max(stats[2].item(), 1),
        "images_per_s": (state.step - first_step) * cfg.optim.batch_size / epoch_time,
        "epoch_time_s": epoch_time,
        "data_share": data_time / epoch_time,
    }


def _kept(out: Path) -> str:
    latest = ckpt.latest_checkpoint(out) if (out / ckpt.POINTER).is_file() else None
    return f"The last good checkpoint is kept: {latest[0]}." if latest else "No checkpoint had been written yet."


def _end_epoch(run: Run, state: TrainState, record: dict[str, Any]) -> dict[str, Any]:
    """Evaluate, log and checkpoint a finished epoch; returns the evaluation."""
    # Epochs before the last are scored on the first eval_subset test images (their curves and gate
    # statistics); the last epoch, whose score a run reports, on the whole test set.
    final = state.epoch + 1 == run.cfg.optim.epochs
    limit = None if final or not run.cfg.execution.eval_subset else run.cfg.execution.eval_subset
    result = evaluate(run.core, run.test_batches, run.num_classes, run.cfg.execution.eval_batch_size, run.info, run.amp, limit)
    record.update(test_top1=result["top1"], test_top5=result["top5"], test_loss=result["loss"], gates=result["gates"], test_images=result["count"])
    state.history.append(record)
    state.epoch, state.step = state.epoch + 1, 0
    if result["top1"] > state.best["top1"]:
        state.best = {"top1": result["top1"], "top5": result["top5"], "epoch": state.epoch}
        if run.info.is_main:
            ckpt.save_weights(run.out / "best.safetensors", run.core.state_dict(), {**run.meta, "epoch": str(state.epoch)})
    run.save(state, f"epoch-{state.epoch:04d}")
    if run.info.is_main:
        atomic_write_text(run.out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in state.history))
        print(f"epoch {state.epoch}/{run.cfg.optim.epochs}  loss {record['train_loss']:.4f}  train {record['train_top1']:.4f}  "
              f"test top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  {record['images_per_s']:.0f} img/s", file=sys.stderr)
    return result


def _train(cfg: TrainConfig, device: torch.device, info: DistInfo) -> dict[str, Any]:
    out = Path(cfg.execution.out)
    ensure_writable(out)
    with RunLock(out) if info.is_main else contextlib.nullcontext():  # one run per folder at a time
        return _train_locked(cfg, device, info)


def _train_locked(cfg: TrainConfig, device: torch.device, info: DistInfo) -> dict[str, Any]:
    start_time = time.perf_counter()
    out = Path(cfg.execution.out)
    replacing = _check_output(cfg)  # every rank checks: a refusal must not leave the others waiting
    if cfg.execution.resume:
        cfg = resumed_config(out, cfg)
        if cfg is None:  # finished: nothing to do, nothing rewritten
            return read_json(out / "summary.json")
    run = _set_up(cfg, device, info)
    state = _restore(run) if cfg.execution.resume else TrainState()
    aside = run_folder.set_aside(out) if replacing and info.is_main else None  # the new run could start: the old one steps aside
    if aside is not None:
        print(f"the previous run in {out} is kept in {aside} until this run saves its first checkpoint", file=sys.stderr)
    if cfg.finetune.init_from and not state.history:  # epoch 0: the pretrained model as loaded, before any step
        result = evaluate(run.core, run.test_batches, run.num_classes, cfg.execution.eval_batch_size, info, run.amp)
        state.history.append({"epoch": 0, "test_top1": result["top1"], "test_top5": result["top5"], "test_loss": result["loss"],
                              "gates": result["gates"]})
    if info.is_main:
        atomic_write_json(out / "config.json", cfg.replace(resume=False, overwrite=False).to_dict())
    last = None
    try:
        with StopRequest.on_sigint() as stop:
            while state.epoch < cfg.optim.epochs:
                record = _train_epoch(run, state, stop)
                last = _end_epoch(run, state, record)
                if aside is not None:
                    run_folder.discard_replaced(out)
                    aside = None
                if stop.agreed(info) and state.epoch < cfg.optim.epochs:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        if info.is_main:
            print(f"\ninterrupted: checkpoint saved in {out}; continue with --resume", file=sys.stderr)
        raise
    except TrainingDiverged:
        if info.is_main:  # the run ends flagged, so a sweep reports it instead of losing it
            summary = _summary(cfg, run.core, run.train_ds, state.history, state.best, None, device, info, start_time, diverged=True)
            atomic_write_json(out / "summary.json", summary)
        raise
    summary = _summary(cfg, run.core, run.train_ds, state.history, state.best, last, device, info, start_time)
    if info.is_main:
        atomic_write_json(out / "summary.json", summary)
    return summary


def _summary(cfg: TrainConfig, core: nn.Module, train_ds, history: list[dict], best: dict, last: Optional[dict], device: torch.device,
             info: DistInfo, start_time: float, diverged: bool = False) -> dict[str, Any]:
    """What a run leaves behind: scores, health, cost, config and versions."""
    num_classes = train_ds.num_classes
    last_top1 = history[-1]["test_top1"] if history else None
    gates_last = history[-1].get("gates", {}) if history else {}
    flags = health_flags(last_top1, num_classes, gates_last, diverged)
    return {
        "run": cfg.execution.out,
        "variant": cfg.spec().label,
        "seed": cfg.execution.seed,
        "status": "diverged" if diverged else "finished",
        "healthy": not flags,
        "health_flags": flags,
        "best_top1": best["top1"],
        "best_top5": best.get("top5"),
        "best_epoch": best["epoch"],
        "last_top1": last_top1,
        "last_top5": history[-1]["test_top5"] if history else None,
        "last_per_class_top1": last["per_class_top1"] if last else None,
        "num_classes": num_classes,
        "input_shape": list(train_ds.images.shape[1:]),
        "params": count_params(core),
        "macs": count_macs(build_model(cfg, num_classes), (1, *train_ds.images.shape[1:])),
        "peak_lr": cfg.optim.peak_lr,
        "images_per_s": _mean_of(history, "images_per_s"),
        "wall_time_s": time.perf_counter() - start_time,
        "data_share": _mean_of(history, "data_share"),
        "device": str(device),
        "world_size": info.world_size,
        "threads": torch.get_num_threads(),
        "config": cfg.to_dict(),
        "versions": versions(),
    }


def _mean_of(history: list[dict[str, Any]], key: str) -> Optional[float]:
    values = [h[key] for h in history if key in h]  # (a fine-tuning run's epoch 0 has no training figures)
    return float(np.mean(values)) if values else None


def variant_name(cfg: TrainConfig) -> str:
    """Short label of the model's attention/fusion/conv choice: "plain", "se", "cbam:variant=paper", "self_attn@3"..."""
    return cfg.spec().label
