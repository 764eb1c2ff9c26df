"""The training loop: one process, or one rank of a ``torchrun`` job."""

from __future__ import annotations

import contextlib
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler

from .. import __version__
from ..data import TensorImageDataset, augment_defaults, load_dataset, random_crop_flip
from ..utils import count_macs, count_params
from . import checkpoint as ckpt
from .config import TrainConfig
from .distributed import DistInfo, all_reduce_sum, cleanup, init_distributed
from .health import GateStats, health_flags


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def select_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    return cfg.spec().build(num_classes)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only: not on BN parameters, biases or scalar gains."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


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
    if not cfg.amp:
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[cfg.amp_dtype or ("fp16" if device.type == "cuda" else "bf16")]
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: BatchMaker,
    num_classes: int,
    batch_size: int,
    info: DistInfo = DistInfo(),
    amp: Callable[[], Any] = contextlib.nullcontext,
) -> dict[str, Any]:
    """Top-1/top-5, loss, per-class accuracy and confusion matrix on a whole dataset.

    Under torchrun each rank scores a disjoint shard and the counts are summed.
    """
    model.eval()
    classify = getattr(model, "classify", model)
    n = batches.labels.shape[0]
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


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) one run described by ``cfg``; returns its summary (also written to
    ``cfg.out/summary.json`` by rank 0)."""
    cfg.validate()
    device = select_device(cfg.device)
    info = init_distributed(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    try:
        return _train(cfg, device, info)
    finally:
        cleanup(info)


def _train(cfg: TrainConfig, device: torch.device, info: DistInfo) -> dict[str, Any]:
    start_time = time.perf_counter()
    out = Path(cfg.out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if cfg.sync_bn and device.type != "cuda":
        raise ValueError(
            "--sync-bn needs CUDA (SyncBatchNorm runs on NCCL); on CPU each rank normalises its own "
            "batch and rank 0's running statistics are broadcast to all ranks every step"
        )
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch size {cfg.batch_size} is not divisible by the {info.world_size} ranks")
    if not cfg.resume and ckpt.latest_checkpoint(out) is not None:  # every rank checks: none may hang
        raise ValueError(f"{out} already holds a checkpoint; pass --resume to continue it or choose another --out")

    train_ds = load_dataset(cfg.dataset, "train", cfg.data_root, cfg.image_size, cfg.train_size, cfg.data_seed, progress=info.is_main)
    test_ds = load_dataset(cfg.dataset, "test", cfg.data_root, cfg.image_size, cfg.test_size, cfg.data_seed, progress=info.is_main)
    if len(train_ds) < cfg.batch_size:
        raise ValueError(f"the training set has {len(train_ds)} images, fewer than one batch of {cfg.batch_size}")
    num_classes = train_ds.num_classes
    mean, std = channel_stats(train_ds.images)
    aug = augment_defaults(cfg.dataset, train_ds.images.shape[-1])
    train_batches = BatchMaker(
        train_ds, device, mean, std, aug.padding if cfg.augment else 0, aug.flip and cfg.augment, cfg.channels_last, (info.rank, info.world_size)
    )
    test_batches = BatchMaker(test_ds, device, mean, std, 0, False, cfg.channels_last)

    torch.manual_seed(cfg.seed)
    core = build_model(cfg, num_classes).to(device)
    if cfg.sync_bn and info.enabled:
        core = nn.SyncBatchNorm.convert_sync_batchnorm(core)
    if cfg.channels_last:
        core = core.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(param_groups(core, cfg.weight_decay), lr=cfg.peak_lr, momentum=cfg.momentum)
    amp = lambda: autocast_context(device, cfg)  # noqa: E731
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda" and cfg.amp_dtype != "bf16")

    per_rank_batch = cfg.batch_size // info.world_size
    sampler = DistributedSampler(range(len(train_ds)), num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed, drop_last=True)
    steps_per_epoch = len(sampler) // per_rank_batch
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)

    meta = {
        "format": "attnzoo-checkpoint-v1",
        "config": cfg.to_json(),
        "num_classes": str(num_classes),
        "input_shape": json.dumps(list(train_ds.images.shape[1:])),
        "mean": json.dumps(mean),
        "std": json.dumps(std),
    }
    start_epoch, start_step, best, history = 0, 0, {"top1": -1.0, "epoch": -1}, []
    latest = ckpt.latest_checkpoint(out) if cfg.resume else None
    if latest is not None:
        weights, _ = ckpt.load_weights(latest[0])
        core.load_state_dict(weights)
        state = ckpt.load_state(latest[1])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, start_step, best = state["epoch"], state["step"], state["best"]
        history = [h for h in state["history"] if h["epoch"] <= start_epoch]
        if info.is_main:
            print(f"resuming {out} at epoch {start_epoch + 1}, step {start_step}", file=sys.stderr)

    model: nn.Module = core
    if info.enabled:
        model = nn.parallel.DistributedDataParallel(core, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        model = torch.compile(model)

    def save(epoch: int, step: int, tag: str) -> None:
        if not info.is_main:
            return
        state = {
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "step": step,
            "best": best,
            "history": history,
        }
        ckpt.save_checkpoint(out, tag, core.state_dict(), state, {**meta, "epoch": str(epoch), "step": str(step)})

    epoch, step = start_epoch, start_step
    try:
        for epoch in range(start_epoch, cfg.epochs):
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler))
            model.train()
            bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress and info.is_main)
            if bar is not None and step:
                bar.update(step)
            stats = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, seen
            data_time, epoch_start = 0.0, time.perf_counter()
            first_step, lr = step, optimizer.param_groups[0]["lr"]
            while step < steps_per_epoch:
                t0 = time.perf_counter()
                x, y = train_batches(order[step * per_rank_batch : (step + 1) * per_rank_batch], step_generator(cfg.seed, epoch, step))
                data_time += time.perf_counter() - t0
                lr = cfg.peak_lr * lr_factor(epoch * steps_per_epoch + step, total_steps, warmup_steps, cfg.schedule)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with amp():
                    out_ = model(x)
                    loss = _loss(out_, y, cfg.label_smoothing)
                finite = torch.tensor([float(torch.isfinite(loss))])
                if all_reduce_sum(finite, info).item() < info.world_size:
                    raise TrainingDiverged(
                        f"loss is {loss.item()} at epoch {epoch + 1}, step {step}; training stopped. "
                        f"The last good checkpoint is kept in {out}. Try a lower --lr, or run without --amp."
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                stats += torch.tensor([loss.item() * y.numel(), (_logits(out_).argmax(1) == y).sum().item(), y.numel()], dtype=torch.float64)
                step += 1
                if bar is not None:
                    elapsed = time.perf_counter() - epoch_start
                    bar.set_postfix(loss=f"{stats[0] / stats[2]:.3f}", acc=f"{stats[1] / stats[2]:.3f}", img_s=f"{stats[2] * info.world_size / elapsed:.0f}")
                    bar.update(1)
            if bar is not None:
                bar.close()
            epoch_time = time.perf_counter() - epoch_start
            all_reduce_sum(stats, info)
            result = evaluate(core, test_batches, num_classes, cfg.eval_batch_size, info, amp)
            record = {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": stats[0].item() / max(stats[2].item(), 1),
                "train_top1": stats[1].item() / max(stats[2].item(), 1),
                "test_top1": result["top1"],
                "test_top5": result["top5"],
                "test_loss": result["loss"],
                "images_per_s": (step - first_step) * cfg.batch_size / epoch_time,
                "epoch_time_s": epoch_time,
                "data_share": data_time / epoch_time,
                "gates": result["gates"],
            }
            history.append(record)
            if result["top1"] > best["top1"]:
                best = {"top1": result["top1"], "top5": result["top5"], "epoch": epoch + 1}
                if info.is_main:
                    ckpt.save_weights(out / "best.safetensors", core.state_dict(), {**meta, "epoch": str(epoch + 1)})
            step = 0
            save(epoch + 1, 0, f"epoch-{epoch + 1:04d}")
            if info.is_main:
                ckpt.atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
                print(
                    f"epoch {epoch + 1}/{cfg.epochs}  loss {record['train_loss']:.4f}  train {record['train_top1']:.4f}  "
                    f"test top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  {record['images_per_s']:.0f} img/s",
                    file=sys.stderr,
                )
    except KeyboardInterrupt:
        save(epoch, step, "interrupted")
        if info.is_main:
            print(f"\ninterrupted: checkpoint saved in {out}; continue with --resume", file=sys.stderr)
        raise
    except TrainingDiverged:
        if info.is_main:  # the run ends flagged, so a sweep reports it instead of losing it
            ckpt.atomic_write_json(out / "summary.json", _summary(cfg, core, train_ds, history, best, None, device, info, start_time, diverged=True))
        raise

    last = result if cfg.epochs > start_epoch else None
    summary = _summary(cfg, core, train_ds, history, best, last, device, info, start_time)
    if info.is_main:
        ckpt.atomic_write_json(out / "summary.json", summary)
    return summary


def _summary(cfg: TrainConfig, core: nn.Module, train_ds, history: list[dict], best: dict, last: Optional[dict], device: torch.device,
             info: DistInfo, start_time: float, diverged: bool = False) -> dict[str, Any]:
    """What a run leaves behind: scores, health, cost, config and versions."""
    num_classes = train_ds.num_classes
    last_top1 = history[-1]["test_top1"] if history else None
    gates_last = history[-1].get("gates", {}) if history else {}
    flags = health_flags(last_top1, num_classes, gates_last, diverged)
    return {
        "run": cfg.out,
        "variant": cfg.spec().label,
        "seed": cfg.seed,
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
        "peak_lr": cfg.peak_lr,
        "images_per_s": float(np.mean([h["images_per_s"] for h in history])) if history else None,
        "wall_time_s": time.perf_counter() - start_time,
        "data_share": float(np.mean([h["data_share"] for h in history])) if history else None,
        "device": str(device),
        "world_size": info.world_size,
        "threads": torch.get_num_threads(),
        "config": cfg.to_dict(),
        "versions": versions(),
    }


def variant_name(cfg: TrainConfig) -> str:
    """Short label of the model's attention/fusion/conv choice: "plain", "se", "cbam:variant=paper", "self_attn@3"..."""
    return cfg.spec().label
