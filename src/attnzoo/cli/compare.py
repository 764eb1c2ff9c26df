"""`attnzoo compare`: plain and attention variants over the same seeds, judged."""

from __future__ import annotations

import argparse

from ..utils.io import ensure_writable
from .common import non_negative_int, positive_int
from .options import add_train_arguments, config_from_args


# --quick: a smoke-test budget for CI, not a regime to read results from.
COMPARE_QUICK = {"epochs": 1, "train_size": 512, "test_size": 256}


def cmd_compare(args: argparse.Namespace) -> int:
    from ..experiments import compare, report
    from ..experiments.variants import parse_variants

    out = ensure_writable(args.out)
    if args.from_dirs:
        run_dirs = compare.from_dirs(args.from_dirs)
    else:
        base = config_from_args(args)
        specs = parse_variants(args.variants, base.model.model, base.model.model_options)
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        run_dirs = compare.train_variants(specs, seeds, base, out, jobs=args.jobs, progress=args.progress)
    command = "attnzoo " + " ".join(args.argv)
    results = compare.compare(run_dirs, out, None if args.no_latency else args.latency_batch, not args.no_localisation, command)
    report.print_leaderboard(results)
    print(f"\nreport: {out / 'report.md'}   results: {out / 'results.json'}   plots: {out / 'leaderboard.png'}, {out / 'gates.png'}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="train plain and attention variants over seeds; leaderboard, verdict and plots",
                       description="Train the plain model and each variant over the same seeds (independent run folders, "
                       "one run per core), then judge each difference to plain: paired and Welch intervals, Holm-corrected "
                       "across variants, flagged runs left out. Writes report.md, results.json, leaderboard.png and gates.png.")
    from ..experiments.variants import PRESETS

    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="variants, seeds and training settings to start from: default (the seed modules, 3 seeds), ablations "
                   "(the source posts' claims, 5 seeds), long (cifar_resnet20, 10 epochs, plain/se/cbam, 5 seeds), fashion "
                   "(Fashion-MNIST, cifar_resnet20, the seed modules, ECA, CBAM's halves, 5 seeds; CPU budget: 5,000 training "
                   "images, 5 epochs), fashion-full (the same on all 60,000 images, 30 epochs at batch 128: a GPU budget); "
                   "flags override")
    p.add_argument("--variants", nargs="+", default=None,
                   help="variants as NAME[@STAGES][:KEY=VALUE,...] joined with '+': plain, se, self_attn@3, cbam:variant=paper, "
                   "cbam:kernel_size=3, aff@3... (default: the preset's; plain is always added)")
    p.add_argument("--seeds", type=positive_int, default=None, help="seeds per variant (default: the preset's, 3)")
    p.add_argument("--first-seed", type=non_negative_int, default=0, help="seeds run from this one (default 0): check a verdict on fresh seeds")
    p.add_argument("--jobs", type=positive_int, default=None, help="runs trained in parallel (default: one per core, 1 thread each)")
    p.add_argument("--out", default="runs/compare", help="output folder (default runs/compare)")
    p.add_argument("--from", dest="from_dirs", nargs="+", metavar="DIR", help="aggregate finished runs found under DIR... instead of training")
    p.add_argument("--quick", action="store_true", help="a smoke-test budget (1 epoch, 512 images): not for reading results")
    p.add_argument("--latency-batch", type=positive_int, default=64, help="batch size of the latency measurement (default 64)")
    p.add_argument("--no-latency", action="store_true")
    p.add_argument("--no-localisation", action="store_true")
    add_train_arguments(p, for_compare=True)
    p.set_defaults(func=cmd_compare, model=None, epochs=None)


def apply_preset(args: argparse.Namespace) -> None:
    """Fill compare's variants, seeds and training fields from its preset where no flag set them,
    then model/epochs from TrainConfig's defaults."""
    from ..experiments.variants import PRESET_KEYS, PRESETS
    from ..train import TrainConfig

    preset, defaults = PRESETS[args.preset], TrainConfig()
    args.variants = args.variants or list(preset["variants"])
    args.seeds = args.seeds or preset.get("seeds", 3)
    for key, value in preset.items():
        if key not in PRESET_KEYS and key not in args.explicit:
            setattr(args, key, value)
    args.model = args.model or defaults.model.model
    args.epochs = args.epochs or defaults.optim.epochs
    if args.quick:
        for key, value in COMPARE_QUICK.items():
            setattr(args, key, value)
