"""The ``attnzoo`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Optional, Sequence

import torch

from .layers import create_module, get_module_class, list_attn, list_conv, list_fusion
from .models import create_model, default_input_size, list_models
from .models.spec import parse_options
from .utils.io import ensure_writable
from .utils import count_macs, count_params


def _summary_line(doc: Optional[str]) -> str:
    return doc.strip().splitlines()[0] if doc else ""


def inventory(channels: int, size: int, batch: int, models: bool = True) -> dict:
    """Parameters and MACs of every registered module (at ``batch×channels×size×size``) and model."""
    shape = (batch, channels, size, size)
    result: dict = {"input_shape": list(shape), "attention": [], "conv": [], "fusion": [], "models": []}
    torch.manual_seed(0)
    x = torch.randn(shape)
    for section, names, inputs in (("attention", list_attn(), x), ("conv", list_conv(), x), ("fusion", list_fusion(), (x, x))):
        for name in names:
            m = create_module(name, channels)
            result[section].append(
                {"name": name, "class": type(m).__name__, "params": count_params(m), "macs": count_macs(m, inputs),
                 "summary": _summary_line(get_module_class(name).__doc__)}
            )
    if models:
        for name in list_models():
            m = create_model(name)
            in_shape = (1, 3, *default_input_size(name))
            result["models"].append(
                {"name": name, "params": count_params(m), "input_shape": list(in_shape), "macs": count_macs(m, in_shape)}
            )
    return result


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) if c.replace(",", "").replace(".", "").isdigit() else c.ljust(w) for c, w in zip(row, widths)))


def cmd_list(args: argparse.Namespace) -> int:
    info = inventory(args.channels, args.size, args.batch, models=not args.no_models)
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
        return 0
    shape = "x".join(map(str, info["input_shape"]))
    titles = {
        "attention": f"Attention modules at input {shape} (MACs: convs and matmuls, pooling/elementwise not counted)",
        "conv": f"3×3-conv replacements (attention inside the convolution; models take them as conv=NAME) at input {shape}",
        "fusion": f"Fusion modules z = m(x, y) at input {shape}",
    }
    for section, title in titles.items():
        print(f"{title}\n")
        _print_table(
            ["name", "class", "params", "MACs", "what it does"],
            [[r["name"], r["class"], f"{r['params']:,}", f"{r['macs']:,}", r["summary"]] for r in info[section]],
        )
        print()
    if info["models"]:
        print("Models (1000 classes, plain: attn=None, fusion=None)\n")
        _print_table(
            ["name", "params", "input", "GMACs"],
            [[r["name"], f"{r['params']:,}", "x".join(map(str, r["input_shape"])), f"{r['macs'] / 1e9:.3f}"] for r in info["models"]],
        )
    return 0


def _add_train_arguments(p: argparse.ArgumentParser, for_compare: bool = False) -> None:
    from .train import TrainConfig
    from .train.config import LR_PER_32

    d = TrainConfig()
    g = p.add_argument_group("model")
    g.add_argument("--model", default=d.model, help=f"model name (default {d.model}); see `attnzoo list`")
    if not for_compare:
        g.add_argument("--attn", default=None, help="attention module in every block (default none)")
        g.add_argument("--fusion", default=None, help="fusion module replacing each residual addition (default none)")
        g.add_argument("--conv", default=None, help="3×3-conv replacement in every bottleneck: sk or splat (default none)")
        g.add_argument("--attn-opt", action="append", metavar="KEY=VALUE", help="attention option, repeatable (e.g. reduction=8)")
        g.add_argument("--conv-opt", action="append", metavar="KEY=VALUE", help="conv replacement option, repeatable (e.g. radix=4)")
        g.add_argument("--fusion-opt", action="append", metavar="KEY=VALUE", help="fusion option, repeatable (e.g. scale=2)")
        g.add_argument("--attn-stages", type=int, nargs="+", help="stages (1-based) that get attention (default all)")
        g.add_argument("--fusion-stages", type=int, nargs="+", help="stages (1-based) that get fusion (default all)")
    g.add_argument("--model-opt", action="append", metavar="KEY=VALUE", help="model option, repeatable (e.g. zero_init_residual=true)")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=d.dataset, help="digits (embedded, default), cifar10, cifar100 or imagefolder")
    g.add_argument("--data-root", default=None, help="folder of a cifar10/cifar100/imagefolder dataset")
    g.add_argument("--image-size", type=positive_int, default=d.image_size, help="imagefolder: side of the resized, centre-cropped images")
    g.add_argument("--train-size", type=positive_int, default=None, help="digits: training images to generate (default 5000)")
    g.add_argument("--test-size", type=positive_int, default=None, help="digits: test images to generate (default 2000)")
    g.add_argument("--data-seed", type=int, default=d.data_seed, help="digits: seed of the dataset itself")
    g.add_argument("--no-augment", dest="augment", action="store_false", help="no random crop / flip")
    g.add_argument("--allow-empty-classes", action="store_true", help="imagefolder: warn about class folders without images instead of refusing")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=positive_int, default=d.epochs, help=f"default {d.epochs}")
    g.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"global batch size, split across torchrun ranks (default {d.batch_size})")
    g.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate of SGD with momentum (default {LR_PER_32} × batch size / 32)")
    g.add_argument("--momentum", type=float, default=d.momentum)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay, help="on conv/linear weights only (not BN, biases)")
    g.add_argument("--schedule", choices=["cosine", "onecycle"], default=d.schedule)
    g.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    g.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    _add_finetune_arguments(p, d)
    g = p.add_argument_group("execution")
    g.add_argument("--amp", action="store_true", help="autocast: bf16 on CPU, fp16 on CUDA (see --amp-dtype)")
    g.add_argument("--amp-dtype", choices=["bf16", "fp16"], default=None)
    g.add_argument("--channels-last", action="store_true")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across torchrun ranks (CUDA only)")
    g.add_argument("--device", default=d.device, help="auto (default), cpu, cuda, cuda:1, mps")
    g.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    g.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms")
    g.add_argument("--eval-batch-size", type=positive_int, default=d.eval_batch_size)
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    if not for_compare:
        g.add_argument("--seed", type=int, default=d.seed)
        g.add_argument("--out", default=d.out, help=f"run folder (default {d.out})")
        g.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its newest verified checkpoint, with the run's own config "
                       "(only --epochs may grow; execution flags such as --threads may change)")
        g.add_argument("--overwrite", action="store_true", help="replace a run already in --out (default: refuse)")


def _add_finetune_arguments(p: argparse.ArgumentParser, d) -> None:
    g = p.add_argument_group("fine-tuning a pretrained network")
    g.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start from a plain network's weights (.safetensors/.pth); --attn/--fusion are retrofitted behind residual "
                   "mixes at zero, so the first evaluation (epoch 0) equals the plain network's")
    g.add_argument("--init-source", default=d.init_source, help="key layout of --init-from: auto, attnzoo, torchvision, timm, cbam-authors")
    g.add_argument("--backbone-lr-scale", type=float, default=d.backbone_lr_scale,
                   help=f"learning rate of the pretrained parameters relative to the new modules and head (default {d.backbone_lr_scale})")
    g.add_argument("--freeze-stages", type=int, default=d.freeze_stages, help="freeze the stem and the first N stages (default 0)")


def _config_from_args(args: argparse.Namespace, explicit_only: bool = False):
    """The TrainConfig the flags describe; with ``explicit_only``, a dict of just the fields whose
    flags were given on the command line (for --resume, which keeps the rest of the run's config)."""
    from .train import TrainConfig

    values = vars(args)
    if explicit_only:
        values = {k: v for k, v in values.items() if k in args.explicit}
    fields = {k: v for k, v in values.items() if k in TrainConfig.__dataclass_fields__}
    for part in ("attn", "fusion", "conv", "model"):
        if not explicit_only or f"{part}_opt" in values:
            fields[f"{part}_options"] = parse_options(values.get(f"{part}_opt") or [], f"--{part}-opt")
    if explicit_only:
        return fields
    cfg = TrainConfig.from_dict(fields)
    cfg.spec().validate()  # unknown modules and options: a one-line error before any work
    return cfg


def _explicit_dests(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations of the flags given in ``argv`` (not those left at their defaults)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = sub.choices[argv[0]] if argv and argv[0] in sub.choices else None
    if command is None:
        return set()
    given = set()
    for action in command._actions:
        if any(arg == opt or arg.startswith(opt + "=") for arg in argv[1:] for opt in action.option_strings):
            given.add(action.dest)
    return given


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .train import TrainingDiverged, train
    from .train.engine import stored_config

    cfg = _config_from_args(args)
    stored = stored_config(Path(cfg.out)) if cfg.resume else None
    if stored is not None:  # the run's own config; the command line adds only what it names
        given = _config_from_args(args, explicit_only=True)
        cfg = dataclasses.replace(stored, **{**given, "resume": True})
    try:
        summary = train(cfg)
    except TrainingDiverged as e:
        print(f"attnzoo train: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    if int(os.environ.get("RANK", "0")) == 0 and summary.get("last_top1") is not None:
        flags = f"; FLAGGED: {'; '.join(summary['health_flags'])}" if summary.get("health_flags") else ""
        print(
            f"{summary['variant']}: best top-1 {summary['best_top1']:.4f} (epoch {summary['best_epoch']}), "
            f"last {summary['last_top1']:.4f}; {summary['params']:,} params, {summary['macs'] / 1e6:.2f} MMACs; "
            f"{summary['wall_time_s']:.1f} s; written to {cfg.out}{flags}"
        )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .train.evaluate import evaluate_checkpoint

    if args.out:
        ensure_writable(Path(args.out).parent)
    result = evaluate_checkpoint(args.checkpoint, dataset=args.dataset, data_root=args.data_root, batch_size=args.batch_size, device=args.device)
    if args.out:
        from .train import atomic_write_json

        atomic_write_json(args.out, result)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(f"{result['checkpoint']} on {result['dataset']} ({result['count']} images)")
    print(f"top-1 {result['top1']:.4f}   top-5 {result['top5']:.4f}   loss {result['loss']:.4f}\n")
    print("class  " + " ".join(f"{c:>5}" for c in range(len(result["confusion"]))) + "   acc")
    for c, (row, acc) in enumerate(zip(result["confusion"], result["per_class_top1"])):
        print(f"{c:>5}  " + " ".join(f"{v:>5}" for v in row) + f"  {acc:.3f}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .experiments import compare, report
    from .experiments.variants import parse_variants

    out = ensure_writable(args.out)
    if args.from_dirs:
        run_dirs = compare.from_dirs(args.from_dirs)
    else:
        base = _config_from_args(args)
        specs = parse_variants(args.variants, base.model, base.model_options)
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        run_dirs = compare.train_variants(specs, seeds, base, out, jobs=args.jobs, progress=args.progress)
    command = "attnzoo " + " ".join(args.argv)
    results = compare.compare(run_dirs, out, None if args.no_latency else args.latency_batch, not args.no_localisation, command)
    report.print_leaderboard(results)
    print(f"\nreport: {out / 'report.md'}   results: {out / 'results.json'}   plots: {out / 'leaderboard.png'}, {out / 'gates.png'}")
    return 0


def cmd_viz(args: argparse.Namespace) -> int:
    from .viz.run import visualise

    ensure_writable(args.out)
    result = visualise(args.out, image_path=args.image, sample=args.sample, checkpoint=args.checkpoint,
                       model_name=args.model, attn=args.attn, fusion=args.fusion, layers=args.layers)
    print(f"captured {len(result['layers'])} attention layers: " + ", ".join(f"{k} ({v})" for k, v in result["layers"].items()))
    for path in result["written"]:
        print(f"wrote {path}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .bench import run as bench
    ensure_writable(args.out)
    common = dict(dtype=args.dtype, threads=args.threads, rounds=args.rounds, warmup=args.warmup, backward=args.backward,
                  compile=args.compile, channels_last=args.channels_last, device=args.device, fused=args.fused)
    if args.backend != "eager":
        if args.target != "models":
            raise ValueError("--backend onnxruntime applies to `bench models`")
        common["backend"] = args.backend
    if args.target == "modules":
        result = bench.bench_modules(args.names, channels=args.channels, size=args.size, batch=args.batch, **common)
    else:
        result = bench.bench_models(args.model, args.names or bench.DEFAULT_MODEL_VARIANTS, batch=args.batch, size=args.size, **common)
    bench.print_table(result)
    stem = args.stem or (f"{args.target}-{args.device.replace(':', '')}-{args.dtype}{'-compiled' if args.compile else ''}{'-fused' if args.fused else ''}"
                         f"{'-onnxruntime' if args.backend != 'eager' else ''}")
    for path in bench.write(result, Path(args.out), stem):
        print(f"wrote {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .export import SUFFIXES, check_export, export_model, input_shape_for

    if args.checkpoint:
        from .train.evaluate import load_trained_model

        model, cfg, meta = load_trained_model(args.checkpoint)
        name, shape = cfg.model, json.loads(meta["input_shape"])
    else:
        from .models.spec import ModelSpec

        spec = ModelSpec(model=args.model, attn=args.attn, fusion=args.fusion).validate()
        model, name, shape = spec.build(args.num_classes), args.model, None
    out = Path(args.out or f"runs/export/model{SUFFIXES[args.format]}")
    ensure_writable(out.parent)
    shape = input_shape_for(name, shape)
    export_model(model, shape, out, args.format)
    error = check_export(model, out, args.format, shape)
    print(f"wrote {out} ({args.format}, input (N, {', '.join(map(str, shape))}) with N dynamic); "
          f"checked at batch 1 and 3: largest relative difference to eager {error:.1e}")
    return 0


def cmd_preview_data(args: argparse.Namespace) -> int:
    from .data.digits import save_preview

    save_preview(args.out, args.count)
    print(f"wrote {args.out}")
    return 0


# --quick: a smoke-test budget for CI, not a regime to read results from.
COMPARE_QUICK = {"epochs": 1, "train_size": 512, "test_size": 256}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the input (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_list_command(sub) -> None:
    p = sub.add_parser("list", help="list every module and model with its parameters and MACs")
    p.add_argument("--channels", type=positive_int, default=256, help="channels C of the module input (default 256)")
    p.add_argument("--size", type=positive_int, default=56, help="height = width of the module input (default 56)")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size of the module input (default 1)")
    p.add_argument("--no-models", action="store_true", help="skip the (slower) model table")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_list)


def _add_train_command(sub) -> None:
    p = sub.add_parser("train", help="train one model (single process, or one rank under torchrun)",
                       description="Train a model; metrics.jsonl, summary.json and atomic checkpoints go to --out.")
    _add_train_arguments(p)
    p.set_defaults(func=cmd_train)


def _add_eval_command(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint: top-1/top-5, per-class accuracy, confusion matrix")
    p.add_argument("checkpoint", help="a .safetensors file written by attnzoo train, or its run folder")
    p.add_argument("--dataset", default=None, help="dataset (default: the one it was trained on)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--batch-size", type=positive_int, default=512)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="also write the result as JSON here")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)


def _add_compare_command(sub) -> None:
    p = sub.add_parser("compare", help="train plain and attention variants over seeds; leaderboard, verdict and plots",
                       description="Train the plain model and each variant over the same seeds (independent run folders, "
                       "one run per core), then judge each difference to plain: paired and Welch intervals, Holm-corrected "
                       "across variants, flagged runs left out. Writes report.md, results.json, leaderboard.png and gates.png.")
    from .experiments.variants import PRESETS

    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="variants/seeds/model/epochs to start from: default (the seed modules, 3 seeds), ablations (the source "
                   "posts' claims, 5 seeds), long (cifar_resnet20, 10 epochs, plain/se/cbam, 5 seeds); flags override")
    p.add_argument("--variants", nargs="+", default=None,
                   help="variants as NAME[@STAGES][:KEY=VALUE,...] joined with '+': plain, se, self_attn@3, cbam:variant=paper, "
                   "cbam:kernel_size=3, aff@3... (default: the preset's; plain is always added)")
    p.add_argument("--seeds", type=positive_int, default=None, help="seeds per variant (default: the preset's, 3)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds run from this one (default 0): check a verdict on fresh seeds")
    p.add_argument("--jobs", type=positive_int, default=None, help="runs trained in parallel (default: one per core, 1 thread each)")
    p.add_argument("--out", default="runs/compare", help="output folder (default runs/compare)")
    p.add_argument("--from", dest="from_dirs", nargs="+", metavar="DIR", help="aggregate finished runs found under DIR... instead of training")
    p.add_argument("--quick", action="store_true", help="a smoke-test budget (1 epoch, 512 images): not for reading results")
    p.add_argument("--latency-batch", type=positive_int, default=64, help="batch size of the latency measurement (default 64)")
    p.add_argument("--no-latency", action="store_true")
    p.add_argument("--no-localisation", action="store_true")
    _add_train_arguments(p, for_compare=True)
    p.set_defaults(func=cmd_compare, model=None, epochs=None)


def _add_viz_command(sub) -> None:
    p = sub.add_parser("viz", help="figures of where attention looks on an image (maps, channel weights, Grad-CAM)",
                       description="Capture every attention module's weights on one image and draw them as PNG figures.")
    p.add_argument("image", nargs="?", help="an image file (default: an embedded sample, see --sample)")
    p.add_argument("--sample", help="digits, digits:INDEX (embedded test set) or a scikit-image sample: chelsea, astronaut, coffee, horse...")
    p.add_argument("--checkpoint", help="a trained checkpoint (.safetensors or run folder); else an untrained --model")
    p.add_argument("--model", help="model name when no checkpoint is given (default resnet50)")
    p.add_argument("--attn", help="attention module for --model")
    p.add_argument("--fusion", help="fusion module for --model")
    p.add_argument("--layers", nargs="+", help="only layers whose name matches these globs or prefixes (e.g. layer3)")
    p.add_argument("--out", default="runs/viz", help="output folder (default runs/viz)")
    p.set_defaults(func=cmd_viz)


def _add_bench_command(sub) -> None:
    p = sub.add_parser("bench", help="parameters, MACs, latency (forward, forward+backward), memory; ratios to a same-run reference",
                       description="Benchmark modules (reference: one copy of the input) or models (reference: the plain backbone).")
    p.add_argument("target", choices=["modules", "models"])
    p.add_argument("names", nargs="*", help="modules: registered names (default all); models: variants like se, cbam, aff@34 (default plain se cbam aff iaff)")
    p.add_argument("--model", default="resnet50", help="backbone for `bench models` (default resnet50)")
    p.add_argument("--channels", type=positive_int, default=256, help="modules: C (default 256)")
    p.add_argument("--size", type=positive_int, default=None, help="H = W (default 56 for modules, 224 for models)")
    p.add_argument("--batch", type=positive_int, default=8, help="batch size (default 8)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="fp32, or autocast to bf16/fp16")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--rounds", type=positive_int, default=None, help="interleaved timing rounds (default 20 modules, 10 models)")
    p.add_argument("--warmup", type=non_negative_int, default=3)
    p.add_argument("--backward", action=argparse.BooleanOptionalAction, default=None,
                   help="also time forward+backward in train mode (default: on for modules, off for models)")
    p.add_argument("--compile", action="store_true", help="torch.compile every candidate (default backend, inductor)")
    p.add_argument("--fused", action="store_true", help="convert every candidate with attnzoo.fused.convert (C++ CPU kernels for inference)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--backend", choices=["eager", "onnxruntime"], default="eager",
                   help="models: also time each variant exported to ONNX in onnxruntime, in the same interleaved rounds")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs/bench", help="folder for JSON, markdown and PNG (default runs/bench)")
    p.add_argument("--stem", default=None, help="file name stem (default TARGET-DEVICE-DTYPE)")
    p.set_defaults(func=cmd_bench)


def _add_export_command(sub) -> None:
    from .export import FORMATS

    p = sub.add_parser("export", help="export a trained run or a model for deployment (ONNX, torch.export, TorchScript)",
                       description="Write a model with a dynamic batch dimension, then load it back and check it against eager "
                       "at two batch sizes. ONNX goes through torch.onnx.export(dynamo=True) and is checked in onnxruntime "
                       "(pip install 'attnzoo[export]'). TorchScript is traced: torch.jit.script does not compile attnzoo's modules.")
    p.add_argument("checkpoint", nargs="?", help="a run folder or .safetensors written by attnzoo train (default: an untrained --model)")
    p.add_argument("--format", choices=FORMATS, default="onnx")
    p.add_argument("--out", default=None, help="output file (default runs/export/model.onnx|.pt2|.pt)")
    p.add_argument("--model", default="resnet50", help="model without a checkpoint (default resnet50)")
    p.add_argument("--attn", default=None)
    p.add_argument("--fusion", default=None)
    p.add_argument("--num-classes", type=positive_int, default=1000)
    p.set_defaults(func=cmd_export)


def _add_preview_data_command(sub) -> None:
    p = sub.add_parser("preview-data", help="a PNG grid of the embedded dataset's images, labels and target boxes")
    p.add_argument("--out", default="runs/digits.png")
    p.add_argument("--count", type=positive_int, default=24)
    p.set_defaults(func=cmd_preview_data)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="attnzoo", description="Visual attention modules for CNNs: list, train, compare, benchmark.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_list_command(sub)
    _add_train_command(sub)
    _add_eval_command(sub)
    _add_compare_command(sub)
    _add_viz_command(sub)
    _add_bench_command(sub)
    _add_export_command(sub)
    _add_preview_data_command(sub)
    return parser


# glibc returns freed blocks above these sizes to the OS, so every large allocation of a timed
# call page-faults afresh and timings swing by 5x with whatever ran before. Benchmarks run with
# the thresholds raised (freed memory stays mapped, as with a caching allocator).
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**32), "MALLOC_TRIM_THRESHOLD_": str(2**36), "MALLOC_TOP_PAD_": str(2**30)}


def _steady_allocator(argv: Optional[Sequence[str]]) -> None:
    """Re-execute a command-line ``attnzoo bench`` with the malloc settings above (once)."""
    import os
    import platform

    if argv is not None or platform.system() != "Linux" or all(k in os.environ for k in _MALLOC_ENV):
        return
    os.execve(sys.executable, [sys.executable, "-m", "attnzoo", *sys.argv[1:]], {**os.environ, **_MALLOC_ENV})


def _apply_preset(args: argparse.Namespace) -> None:
    """Fill compare's unset variants/seeds/model/epochs from its preset, then TrainConfig's defaults."""
    from .experiments.variants import PRESETS
    from .train import TrainConfig

    preset, defaults = PRESETS[args.preset], TrainConfig()
    args.variants = args.variants or list(preset["variants"])
    args.seeds = args.seeds or preset.get("seeds", 3)
    args.model = args.model or preset.get("model", defaults.model)
    args.epochs = args.epochs or preset.get("epochs", defaults.epochs)
    if args.quick:
        for key, value in COMPARE_QUICK.items():
            setattr(args, key, value)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        _steady_allocator(argv)
        modules = args.target == "modules"
        args.size = args.size or (56 if modules else 224)
        args.rounds = args.rounds or (20 if modules else 10)
        args.backward = modules if args.backward is None else args.backward
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.explicit = _explicit_dests(parser, args.argv)
    if args.command == "compare":
        _apply_preset(args)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"attnzoo {args.command}: error: {e}\n")
    except RuntimeError as e:
        from .experiments.compare import SweepFailed

        if not isinstance(e, SweepFailed):
            raise
        parser.exit(1, f"attnzoo {args.command}: error: {e}\n")
