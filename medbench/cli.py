"""The ``medbench`` command: run notebooks, audit, de-identify, benchmark.

Expected failures (bad names, bad parameters, unreadable input) print one line
``medbench: error: ...`` and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from medbench.errors import MedbenchError


def _cmd_run(args: argparse.Namespace) -> int:
    from medbench import config, runner

    overrides = dict(config.parse_override(p) for p in args.param)
    results = runner.run_many(args.notebooks, profile=args.profile, overrides=overrides,
                              reports=args.reports, progress=not args.quiet)
    failed = [r for r in results if r.status != "completed"]
    if failed:
        print(f"medbench: {len(failed)} of {len(results)} notebook(s) failed:", file=sys.stderr)
        for r in failed:
            print(f"  {r.error}", file=sys.stderr)
        return 1
    return 0


def _cmd_notebooks(args: argparse.Namespace) -> int:
    from medbench import runner

    for path in runner.refresh_in_place(args.notebooks, progress=not args.quiet):
        print(f"refreshed {path}")
    return 0


def _cmd_phantom(args: argparse.Namespace) -> int:
    from medbench import recipes
    from medbench.data.phantom import load_cohort

    cfg = recipes.resolve("00_tour", args.profile)
    spec = cfg.data.spec(cfg.seed)  # type: ignore[attr-defined]
    cohort = load_cohort(spec)
    print(f"phantom cohort ({args.profile}, {spec.n_cases} cases): {cohort.root}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    """Train a notebook's models from the command line: the recipe's ``cli_train`` (its ``train`` on freshly
    loaded data, the notebook's code path).

    Runs unchanged under ``torchrun --nproc_per_node N -m medbench.cli train NB``:
    every process trains its shard; rank 0 alone writes the run folder.
    """
    import json
    import os
    from pathlib import Path

    from medbench import config, recipes, report
    from medbench.engine import distributed
    from medbench.errors import ConfigError
    from medbench.report.run import ENV_OVERRIDES, ENV_PROFILE, ENV_RUN_DIR

    stem = recipes.resolve_notebook(args.notebook)
    module = recipes.recipe(stem)
    if not hasattr(module, "cli_train"):
        trainable = [nb for nb in recipes.NOTEBOOKS if hasattr(recipes.recipe(nb), "cli_train")]
        raise ConfigError(f"{stem} trains nothing; notebooks that train: {', '.join(trainable) or 'none'}")
    overrides = dict(config.parse_override(p) for p in args.param)
    cfg = recipes.resolve(stem, args.profile, overrides)
    distributed.init()
    try:
        run = None
        if distributed.is_main():
            out = Path(args.out) if args.out else report.reports_root() / stem / f"train-{args.profile}"
            os.environ[ENV_RUN_DIR] = str(out)
            os.environ[ENV_PROFILE] = args.profile
            os.environ[ENV_OVERRIDES] = json.dumps(recipes.changed_parameters(stem, args.profile, cfg))
            run = report.start_run(cfg, threads=args.threads)
        elif args.threads:
            import torch

            torch.set_num_threads(args.threads)
        results = module.cli_train(cfg, run)
        if run is not None:
            summary = module.train_summary(results) if hasattr(module, "train_summary") else {
                key: value for name, t in results.items()
                for key, value in ((f"{name}_best_val", t.fit.best_metric), (f"{name}_train_s", t.fit.train_time_s))}
            run.finish(summary)
            print(report.format_metrics(summary))
            print(f"run folder: {run.run_dir}")
        distributed.barrier()
    finally:
        distributed.shutdown()
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from medbench.bench import BENCHMARKS, run_benchmark

    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    for name in names:
        if name == "inference":  # trained networks: through the 07 notebook's recipe, so the table is the notebook's
            from medbench import config
            from medbench.recipes import inference_benchmark

            out = args.out if args.name != "all" or args.out is None else f"{args.out}/{name}"
            inference_benchmark.run_cli(models=args.model or None, backends=args.backends, out_dir=out,
                                        profile=args.profile, params=dict(config.parse_override(p) for p in args.param))
            continue
        if args.model or args.backends or args.param or args.profile != "smoke":
            print(f"medbench bench {name}: --model/--backends/--profile/-p apply to 'inference' only; ignored")
        run_benchmark(name, out_dir=args.out if args.name != "all" or args.out is None else f"{args.out}/{name}")
    return 0


#: Subcommands implemented next to their domain code: name -> (module, help).
_DELEGATED = {
    "audit": ("medbench.audit.cli", "header-only audit of a DICOM folder into CSV + HTML"),
    "deid": ("medbench.io.deid.cli", "de-identify a DICOM folder (PS3.15 Annex E basic profile)"),
    "fetch": ("medbench.data.cli", "download, verify and unpack a public dataset (data_manifests/)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; a delegated subcommand's module is imported only when ``command`` selects it."""
    parser = argparse.ArgumentParser(prog="medbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="execute notebooks with papermill into reports/ and rebuild reports/index.html")
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="names like 00_tour (default: all)")
    p.add_argument("--profile", default="smoke", help="parameter profile (smoke, full)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter (repeatable)")
    p.add_argument("--reports", default=None, help="reports folder (default: ./reports of this checkout)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-cell progress bar")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("notebooks", help="re-execute notebooks in place at the smoke profile (refresh outputs)")
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_notebooks)

    p = sub.add_parser("phantom", help="generate (or find cached) the synthetic cohort of a profile")
    p.add_argument("--profile", default="smoke")
    p.set_defaults(func=_cmd_phantom)

    p = sub.add_parser("train", help="train a notebook's models from the command line (works under torchrun)")
    p.add_argument("notebook", metavar="NOTEBOOK", help="e.g. 04_segmentation")
    p.add_argument("--profile", default="smoke", help="parameter profile (smoke, full)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter (repeatable), e.g. -p train.epochs=3")
    p.add_argument("--out", default=None, help="run folder (default reports/NOTEBOOK/train-PROFILE)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("bench", help="run a named benchmark (or 'all') into reports/bench/NAME/")
    p.add_argument("name")
    p.add_argument("--out", default=None, help="output folder (default reports/bench/NAME)")
    p.add_argument("--model", action="append", default=[], metavar="ARCH",
                   help="inference: a network to benchmark (repeatable; default: the 07 notebook's unet and unetr)")
    p.add_argument("--backends", default=None,
                   help="inference: 'all', 'cpu', 'gpu' or a comma-separated list (medbench.bench.backends)")
    p.add_argument("--profile", default="smoke", help="inference: the 07 notebook's profile (smoke, full)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="inference: override one 07 notebook parameter, e.g. -p bench.weights=reports/04_segmentation/RUN")
    p.set_defaults(func=_cmd_bench)

    for name, (module, help_text) in _DELEGATED.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).configure(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # phantom cases generate in parallel (one per CPU, at most 4) here and in the kernels these commands start:
    # this entry point is guarded, so the spawned workers can import it (medbench.data.phantom.cohort)
    os.environ.setdefault("MEDBENCH_PHANTOM_WORKERS", str(min(os.cpu_count() or 1, 4)))
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MedbenchError as exc:
        print(f"medbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
