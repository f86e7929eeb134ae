"""``ganinv eval ...``: the evaluation commands (held-out SFN accuracy, contrastive retrieval, encoder and
reconstruction benchmarks, the editing benchmark, GAN FID-SFN, the metric validation battery), registered by
:func:`add_eval_parser`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from .devices import resolve_device


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number (no nan / inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _device(name: str) -> str:
    return str(resolve_device(name))


def _parse_given(text: str) -> dict[str, int]:
    """``"glasses=1,bangs=0"`` -> ``{"glasses": 1, "bangs": 0}``; a clear exit on anything else."""
    from .eval.gan import check_given

    try:
        pairs = [item.split("=") for item in text.split(",")]
        return check_given({name.strip(): int(value) for name, value in pairs})
    except ValueError as e:  # not NAME=INT (unpacking or int()), or check_given's verdict
        raise SystemExit(
            f"--preference-given {text!r}: expected ATTR=0 or ATTR=1, comma-separated ({e})"
        ) from e


def _report(args: argparse.Namespace, result: dict, table, figure=None, merge=None) -> None:
    """The shared end of the benchmark commands: ``--add`` (``merge`` into the existing ``--json``),
    ``--json``, ``--figure`` (``figure(result, path)``), then ``table(result)`` (and the JSON if unsaved)."""
    import json

    from .common import write_json

    if getattr(args, "add", False):  # the --add / --figure options exist only where _output_options put them
        if not args.json or not Path(args.json).is_file():
            raise ValueError("--add needs an existing --json file to add the rows to")
        result = merge(json.loads(Path(args.json).read_text()), result)
    if args.json:
        write_json(result, args.json)
    if figure is not None and getattr(args, "figure", None):
        import matplotlib.pyplot as plt

        plt.close(figure(result, args.figure))
    print(table(result))
    if not args.json:
        print(json.dumps(result, indent=2))


def _report_with_comparisons(args: argparse.Namespace, result: dict, module, figure=None) -> None:
    """:func:`_report` for a benchmark with ``--compare A B`` (``module.add_comparisons``): the pairs are
    formed after ``--add`` merged the new rows into the file's, so rows of either may be paired."""
    pairs = [tuple(p) for p in args.compare or ()]

    def merge(old: dict, new: dict) -> dict:
        return module.add_comparisons(module.merge_results(old, new), pairs)

    if not args.add:
        result = module.add_comparisons(result, pairs)
    _report(args, result, module.markdown_table, figure=figure, merge=merge)


def _compare_option(e: argparse.ArgumentParser) -> None:
    e.add_argument(
        "--compare",
        nargs=2,
        action="append",
        metavar=("A", "B"),
        help="paired difference B - A of two rows' per-image metrics with a 95%% bootstrap interval over "
        "images (repeatable; stored under 'comparisons'; with --add, rows of the file count too)",
    )


def _output_options(e: argparse.ArgumentParser, figure: str | None = None, add: bool = False) -> None:
    """The benchmark commands' output options: --json, --add (rows into an existing --json), --figure
    (when ``figure`` describes it) and --device; :func:`_report` reads them."""
    e.add_argument("--json", default=None, help="write the results to this JSON file")
    if add:
        e.add_argument(
            "--add", action="store_true", help="add the rows to the existing --json file (same settings)"
        )
    if figure:
        e.add_argument("--figure", default=None, help=figure)
    e.add_argument("--device", default="auto")


def _held_out_options(e: argparse.ArgumentParser, figure: str) -> None:
    """--generator, --sfn, --seed (of the held-out SynthFaces), --figure and the output options of the
    commands that score the bundled models on held-out faces (budget study, time to quality)."""
    from .common import EVAL_SEED

    e.add_argument("--generator", default="synthfaces64", help="bundled name or path of the generator")
    e.add_argument("--sfn", default="sfn", help="SFN of the metrics")
    e.add_argument("--seed", type=int, default=EVAL_SEED, help="held-out seed")
    e.add_argument("--figure", default=None, help=figure)
    _output_options(e)


def cmd_eval_encoder(args: argparse.Namespace) -> None:
    import json

    from .common import write_json
    from .eval.encoder import evaluate_encoder
    from .models.sfn import load_sfn
    from .training.contrastive import build_generator
    from .training.encoders import load_trained_encoder

    device = _device(args.device)
    model, generator = load_trained_encoder(args.checkpoint, args.kind, device)
    generator = args.generator or generator
    G = build_generator(generator).to(device)
    sfn = load_sfn(args.sfn, device)
    result = evaluate_encoder(model, G, sfn, n=args.n, seed=args.seed, source=args.source)
    result.update(checkpoint=str(args.checkpoint), generator=str(generator))
    if args.json:
        write_json(result, args.json)
    print(json.dumps(result, indent=2))


def cmd_eval_reconstruction(args: argparse.Namespace) -> None:
    from .checkpoints import bundled_name, load_generator
    from .eval import reconstruction as recon_eval
    from .models.sfn import load_sfn

    device = _device(args.device)
    G = load_generator(args.generator, device=device).eval()
    entries = recon_eval.entries_from_specs(
        args.entry, args.optim_steps, args.optim_n, bundled_name(args.generator)
    )
    sfn = load_sfn(args.sfn, device)
    result = recon_eval.evaluate_reconstruction(entries, G, sfn, n=args.n, seed=args.seed, per_image=True)
    result.update(generator=str(args.generator), sfn=str(args.sfn))
    _report_with_comparisons(args, result, recon_eval)
    if args.grid:
        import matplotlib.pyplot as plt

        from .viz import save_figure

        fig = recon_eval.reconstruction_grid(entries, G, n_show=args.grid_n, seed=args.seed)
        save_figure(fig, args.grid)
        plt.close(fig)
        print(f"wrote {args.grid}")


def cmd_eval_editing(args: argparse.Namespace) -> None:
    from .checkpoints import bundled_name, load_generator
    from .editing import load_directions
    from .eval import editing as edit_eval
    from .eval import reconstruction as recon_eval
    from .models.sfn import load_sfn

    device = _device(args.device)
    G = load_generator(args.generator, device=device).eval()
    directions = load_directions(args.directions or args.generator, G)
    entries = recon_eval.entries_from_specs(
        args.entry, args.optim_steps, args.optim_n, bundled_name(args.generator)
    )
    if args.no_entries:
        entries = {}
    nonlinear = None
    if "non-linear" in args.editors:  # the generator's nonlinear.pt unless --nonlinear names another
        from .nonlinear_editing import load_nonlinear

        nonlinear = load_nonlinear(args.nonlinear or args.generator, G)
    sfn = load_sfn(args.sfn, device)
    result = edit_eval.evaluate_editing(
        entries, G, sfn, directions, attributes=args.attributes, n=args.n, seed=args.seed,
        strengths=args.strengths or edit_eval.STRENGTHS, batch_size=args.batch_size, nonlinear=nonlinear,
        editors=args.editors, generated=args.generated,
    )  # fmt: skip
    result.update(generator=str(args.generator), directions_file=str(args.directions or args.generator),
                  sfn=str(args.sfn))  # fmt: skip
    if nonlinear is not None:
        result["nonlinear_file"] = str(args.nonlinear or args.generator)
    _report(args, result, edit_eval.markdown_table, figure=edit_eval.tradeoff_figure,
            merge=edit_eval.merge_results)  # fmt: skip


def cmd_eval_inpainting(args: argparse.Namespace) -> None:
    from .checkpoints import load_generator
    from .eval import inpainting as ie
    from .models.sfn import load_sfn

    device = _device(args.device)
    G = load_generator(args.generator, device=device).eval()
    entries = ie.entries_from_specs(args.entry, args.model, args.optim_steps, args.optim_n)
    sfn = load_sfn(args.sfn, device)
    buckets = [ie.BUCKET_NAMES.index(b) for b in args.buckets]
    result = ie.evaluate_entries(
        entries, G, sfn, n=args.n, generator=args.generator, sfn_name=args.sfn, buckets=buckets,
        samples=args.samples, batch_size=args.batch_size,
    )  # fmt: skip
    _report_with_comparisons(args, result, ie, figure=ie.bucket_figure)


def cmd_eval_budget(args: argparse.Namespace) -> None:
    import json

    from .checkpoints import load_generator
    from .common import update_json
    from .eval import budget as budget_eval
    from .models.sfn import load_sfn

    if not args.no_eval:
        device = _device(args.device)
        G = load_generator(args.generator, device=device).eval()
        sfn = load_sfn(args.sfn, device)
        budget_eval.evaluate_budget(args.runs, G, sfn, n=args.n, steps=args.steps, seed=args.seed)
    results, spread = budget_eval.load_cached(args.runs), None
    if args.rerun_reference and results:  # other runs of the same recipe, scored at the first budget
        references = [json.loads(Path(p).read_text()) for p in args.rerun_reference]
        spread = budget_eval.rerun_spread(results[min(results)], *references)
    summary = budget_eval.summarize(results, spread=spread)
    summary.update(generator=str(args.generator), sfn=str(args.sfn))
    if args.json:  # keeps what `eval time-to-quality` stored in the same file
        update_json(summary, args.json)
    if args.figure:
        import matplotlib.pyplot as plt

        plt.close(budget_eval.budget_figure(summary, args.figure))
    for metric in budget_eval.CLAIM_METRICS:
        print(f"\n{metric}:\n" + budget_eval.verdict_table(summary, metric))


def cmd_eval_time_to_quality(args: argparse.Namespace) -> None:
    from .checkpoints import bundled_name, load_generator
    from .common import update_json
    from .eval import time_to_quality as ttq
    from .models.sfn import load_sfn

    device = _device(args.device)
    G = load_generator(args.generator, device=device).eval()
    sfn = load_sfn(args.sfn, device)
    cfg = ttq.TimeToQualityConfig(
        n=args.n, budgets=args.budgets, encoders=args.encoders, seed=args.seed,
        encoder=args.encoder or bundled_name(args.generator) or str(args.generator),
    )  # fmt: skip
    result = ttq.evaluate_time_to_quality(G, sfn, cfg)
    result.update(generator=str(args.generator), sfn=str(args.sfn), device=str(device))
    if args.json:  # into the budget study's file, next to what `eval budget` wrote there
        update_json({"time_to_quality": result}, args.json)
    if args.figure:
        import matplotlib.pyplot as plt

        plt.close(ttq.time_to_quality_figure(result, args.figure))
    for metric in ("lpips_sfn", "psnr"):
        print(f"\n{metric}:\n" + ttq.match_lines(result, metric))


def cmd_eval_metrics(args: argparse.Namespace) -> None:
    from .checkpoints import bundled_name, load_generator
    from .common import rounded, write_json
    from .eval import metric_battery as mv
    from .inversion import invert, resolve_encoder
    from .models.sfn import load_sfn

    device = _device(args.device)
    sfn = load_sfn(args.sfn, device)
    encoders, size = {}, args.size
    if args.encoders:
        G = load_generator(args.generator, device=device).eval()
        size = G.size
        for method in args.encoders:
            enc = resolve_encoder(method, args.encoder or bundled_name(args.generator), device)
            encoders[method] = lambda x, m=method, e=enc: invert(x, m, generator=G, encoder=e).image
    cfg = mv.BatteryConfig(n=args.n, size=size, seed=args.seed, reference_n=args.reference_n)
    result = rounded(mv.evaluate_battery(sfn, cfg, encoders), 4)
    result.update(generator=str(args.generator) if encoders else None, sfn=str(args.sfn))
    if args.json:
        write_json(result, args.json)
    if args.figure:
        import matplotlib.pyplot as plt

        plt.close(mv.battery_figure(result, args.figure))
    print(mv.verdict_table(result))


def cmd_eval_contrastive(args: argparse.Namespace) -> None:
    import json

    from .checkpoints import load_checkpoint
    from .common import write_json
    from .eval.retrieval import evaluate_retrieval
    from .models.contrastive import load_contrastive
    from .training.contrastive import build_generator

    device = _device(args.device)
    model = load_contrastive(args.checkpoint, device=device)
    generator = args.generator or load_checkpoint(args.checkpoint, "contrastive").get("generator", "")
    G = build_generator(generator).to(device)
    result = evaluate_retrieval(model, G, n=args.n, seed=args.seed, truncation=args.truncation)
    result["generator"] = str(generator)
    if args.json:
        write_json(result, args.json)
    print(json.dumps(result, indent=2))


def cmd_eval_sfn(args: argparse.Namespace) -> None:
    import json

    from .eval.sfn import evaluate_sfn
    from .models.sfn import load_sfn

    model = load_sfn(args.checkpoint, device=_device(args.device))
    result = evaluate_sfn(model, n=args.n, seed=args.seed, json_path=args.json)
    print(json.dumps(result, indent=2))


def cmd_eval_gan(args: argparse.Namespace) -> None:
    import json

    from .checkpoints import load_generator
    from .data.images import save_image
    from .eval.gan import discriminator_preference, evaluate_gan, generate
    from .models.sfn import load_sfn

    conditions = {c: _parse_given(c) for c in args.preference_given or []}  # bad input fails before the work
    if conditions and not args.discriminator:
        raise SystemExit("--preference-given needs --discriminator (the D whose preference is measured)")
    device = _device(args.device)
    if args.weights == "G":  # the raw generator of a run's training state
        from .training.gan import load_run_generator

        G = load_run_generator(args.checkpoint, "G").to(device)
    else:
        G = load_generator(args.checkpoint, device=device)
    result = evaluate_gan(G, load_sfn(args.sfn, device=device), n=args.n, seed=args.seed)
    result["checkpoint"] = str(args.checkpoint)
    result["weights"] = args.weights
    result.update(G.training_record or {})  # step / images seen, for files the trainer wrote
    if args.discriminator:
        from .checkpoints import load_discriminator

        D = load_discriminator(args.discriminator, device=device)
        result["discriminator"] = str(args.discriminator)
        result["discriminator_preference"] = discriminator_preference(D, G.size)
        if conditions:
            result["discriminator_preference_given"] = {
                c: discriminator_preference(D, G.size, given=given) for c, given in conditions.items()
            }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    if args.grid:
        save_image(generate(G, 32, args.seed), args.grid, nrow=8)


def add_eval_parser(sub) -> None:
    """Register ``ganinv eval`` and its subcommands on the top-level subparsers ``sub``."""
    from .common import EVAL_SEED
    from .eval.inpainting import BUCKET_NAMES
    from .eval.inpainting import METHODS as INPAINT_METHODS

    p = sub.add_parser("eval", help="evaluate a model on held-out data (see `ganinv eval sfn --help`)")
    eval_sub = p.add_subparsers(dest="model", required=True)
    e = eval_sub.add_parser("sfn", help="held-out attribute accuracy / R^2 and identity retrieval of SFN")
    e.add_argument("--checkpoint", default="sfn", help="bundled name or path of an sfn.pt")
    e.add_argument("--json", default=None, help="also write the results to this JSON file")
    e.add_argument("-n", type=positive_int, default=2000, help="held-out faces")
    e.add_argument("--seed", type=int, default=EVAL_SEED, help="held-out SynthFaces seed")
    e.add_argument("--device", default="auto")
    e.set_defaults(fn=cmd_eval_sfn)
    from .common import EVAL_SEED

    e = eval_sub.add_parser("contrastive", help="held-out image <-> w retrieval of CLCAE stage 1")
    e.add_argument("--checkpoint", default="synthfaces64", help="bundled name or path of a contrastive.pt")
    e.add_argument(
        "--generator", default=None, help="generator of the pairs (default: the one it was trained on)"
    )
    e.add_argument("-n", type=positive_int, default=1000, help="held-out pairs")
    e.add_argument("--seed", type=int, default=EVAL_SEED, help="held-out seed")
    e.add_argument("--truncation", type=finite_float, default=1.0)
    e.add_argument("--json", default=None, help="also write the results to this JSON file")
    e.add_argument("--device", default="auto")
    e.set_defaults(fn=cmd_eval_contrastive)
    from .common import EVAL_SEED

    e = eval_sub.add_parser("encoder", help="held-out reconstruction metrics of a CLCAE / pSp / e4e encoder")
    e.add_argument("--checkpoint", default="synthfaces64", help="clcae.pt / psp_encoder.pt / e4e_encoder.pt")
    e.add_argument("--kind", default="auto", choices=["auto", "clcae", "psp", "e4e"], help="auto: the file's")
    e.add_argument("--generator", default=None, help="default: the generator it was trained for")
    e.add_argument("--sfn", default="sfn", help="SFN of the LPIPS-SFN and ID-SFN metrics")
    e.add_argument("--source", default="synthfaces", choices=["synthfaces", "generated"])
    e.add_argument("-n", type=positive_int, default=500, help="held-out images")
    e.add_argument("--seed", type=int, default=EVAL_SEED, help="held-out seed")
    e.add_argument("--json", default=None, help="also write the results to this JSON file")
    e.add_argument("--device", default="auto")
    e.set_defaults(fn=cmd_eval_encoder)
    e = eval_sub.add_parser(
        "reconstruction", help="every inversion method on held-out SynthFaces (03_reconstruction.json)"
    )
    e.add_argument("--generator", default="synthfaces64", help="bundled name or path of the generator")
    e.add_argument(
        "--entry",
        action="append",
        metavar="NAME=METHOD[@ENCODER]",
        help="a row (repeatable), e.g. 'clcae-f w/o L_align=clcae-f@runs/noalign/clcae.pt'; "
        "default: every method with the bundled encoders",
    )
    e.add_argument("--sfn", default="sfn", help="SFN of LPIPS-SFN, ID-SFN and the factor read-out")
    e.add_argument("-n", type=positive_int, default=1000, help="held-out images")
    e.add_argument(
        "--optim-n", type=positive_int, default=100, help="images for the optimisation methods (slow)"
    )
    e.add_argument("--optim-steps", type=positive_int, default=300, help="steps of the optimisation methods")
    e.add_argument("--seed", type=int, default=EVAL_SEED, help="held-out seed")
    e.add_argument("--grid", default=None, help="PNG: the first --grid-n held-out faces through each --entry")
    e.add_argument("--grid-n", type=positive_int, default=6, help="faces in the --grid picture")
    _compare_option(e)
    _output_options(e, add=True)
    e.set_defaults(fn=cmd_eval_reconstruction)
    e = eval_sub.add_parser(
        "editing", help="edits in W / W+ / F of every inversion method against ground truth (04_editing.json)"
    )
    e.add_argument("--generator", default="synthfaces64", help="bundled name or path of the generator")
    e.add_argument("--directions", default=None, help="bundled name or path of a directions.pt (default: "
                   "the generator's)")  # fmt: skip
    e.add_argument("--entry", action="append", metavar="NAME=METHOD[@ENCODER]",
                   help="a row (repeatable); default: every method with the bundled encoders")  # fmt: skip
    e.add_argument("--attributes", nargs="+", default=None, help="default: every binary attribute")
    e.add_argument("--strengths", nargs="+", type=finite_float, default=None,
                   help="in units of each direction's std "
                        "(default: ganinv.eval.editing.STRENGTHS)")  # fmt: skip
    e.add_argument("--sfn", default="sfn", help="SFN of the read-out, LPIPS-SFN and ID-SFN")
    e.add_argument("-n", type=positive_int, default=200, help="held-out images")
    e.add_argument(
        "--optim-n", type=positive_int, default=50, help="images for the optimisation methods (slow)"
    )
    e.add_argument("--optim-steps", type=positive_int, default=300, help="steps of the optimisation methods")
    e.add_argument("--seed", type=int, default=EVAL_SEED, help="held-out seed")
    e.add_argument("--batch-size", type=positive_int, default=50)
    e.add_argument(
        "--editors",
        nargs="+",
        choices=("linear", "non-linear"),
        default=["linear"],
        help="InterFaceGAN directions and / or the non-linear edit (rows '<name> · non-linear')",
    )
    e.add_argument(
        "--nonlinear", default=None, help="nonlinear.pt of the non-linear editor (default: the generator's)"
    )
    e.add_argument(
        "--generated",
        type=int,
        default=0,
        metavar="N",
        help="also score N generated faces (rows 'generated', seed --seed)",
    )
    e.add_argument("--no-entries", action="store_true", help="no inversion rows (with --generated)")
    _output_options(e, figure="write the fidelity / editability scatter to this PNG", add=True)
    e.set_defaults(fn=cmd_eval_editing)
    e = eval_sub.add_parser(
        "inpainting", help="diverse inpainting vs baselines per hole-ratio bucket (05_inpainting.json)"
    )
    e.add_argument("--generator", default="synthfaces64", help="bundled name or path of the generator")
    e.add_argument("--model", default="synthfaces64", help="inpainter of rows without @MODEL")
    e.add_argument("--entry", action="append", metavar="NAME=METHOD[@MODEL]",
                   help="a row (repeatable), METHOD one of: " + "; ".join(
                       f"{k}: {v}" for k, v in INPAINT_METHODS.items()) + ". Default: the model, "
                   "no stage 2, no mixing, masked optimisation and biharmonic")  # fmt: skip
    e.add_argument("--sfn", default="sfn", help="SFN of FID, U-/P-IDS, LPIPS-SFN and the diversity")
    e.add_argument("-n", type=positive_int, default=200, help="held-out images per hole-ratio bucket")
    e.add_argument("--samples", type=positive_int, default=5, help="completions per input (diversity)")
    e.add_argument(
        "--buckets",
        nargs="+",
        default=list(BUCKET_NAMES),
        choices=BUCKET_NAMES,
        help="hole-ratio buckets (CoModGAN's h0 = 0-20%% ... h4 = 80-100%%)",
    )
    _compare_option(e)
    e.add_argument("--optim-n", type=positive_int, default=50, help="images for masked optimisation (slow)")
    e.add_argument("--optim-steps", type=positive_int, default=200, help="steps of masked optimisation")
    e.add_argument("--batch-size", type=positive_int, default=25)
    _output_options(e, figure="write metric-vs-hole-ratio panels to this PNG", add=True)
    e.set_defaults(fn=cmd_eval_inpainting)
    e = eval_sub.add_parser(
        "budget",
        help="score the snapshots of the training-budget study and decide the claims (03_budget.json)",
    )
    e.add_argument(
        "--runs", default="runs/budget", help="folder of the study's runs (ganinv.eval.budget.RUNS)"
    )
    e.add_argument("--steps", type=positive_int, nargs="+", default=None, help="only these snapshot steps")
    e.add_argument("--no-eval", action="store_true", help="only summarise what is already scored")
    e.add_argument(
        "--rerun-reference",
        nargs="+",
        default=None,
        help="reconstruction JSONs of the same recipe trained separately (the 1,200-step encoders' "
        "03_reconstruction_1200.json, an earlier run of the study): the largest run-to-run spread at the "
        "first budget flags close calls",
    )
    e.add_argument("-n", type=positive_int, default=1000, help="held-out images")
    _held_out_options(e, figure="learning curves and claim intervals (PNG)")
    e.set_defaults(fn=cmd_eval_budget)
    from .eval import time_to_quality as ttq

    e = eval_sub.add_parser(
        "time-to-quality",
        help="optimisation in W / W+ as a curve of quality vs steps and seconds, and the steps that match "
        "each encoder (stored as 'time_to_quality' in 03_budget.json)",
    )
    e.add_argument("-n", type=positive_int, default=32, help="held-out images (optimised as one batch)")
    e.add_argument("--budgets", type=positive_int, nargs="+", default=list(ttq.BUDGETS),
                   help="optimisation steps, one run each (increasing)")  # fmt: skip
    e.add_argument("--encoders", nargs="+", default=list(ttq.ENCODERS), help="encoder methods to place")
    e.add_argument(
        "--encoder", default=None, help="their checkpoint: bundled name or path (default: the generator's)"
    )
    _held_out_options(e, figure="quality vs seconds per image (PNG)")
    e.set_defaults(fn=cmd_eval_time_to_quality)
    from .eval import metric_battery as mv

    e = eval_sub.add_parser(
        "metrics",
        help="validate every reported metric on graded distortions of held-out SynthFaces "
        "(metric_validation.json)",
    )
    e.add_argument("-n", type=positive_int, default=200, help="held-out images distorted")
    e.add_argument(
        "--reference-n", type=positive_int, default=1000, help="reference images of the realism metrics"
    )
    e.add_argument("--seed", type=int, default=0, help="seed of the random parts of the distortions")
    e.add_argument("--size", type=positive_int, default=64, help="image size without encoders")
    e.add_argument("--generator", default="synthfaces64", help="generator of the encoder families")
    e.add_argument(
        "--encoders", nargs="*", default=list(mv.ENCODER_METHODS), choices=mv.ENCODER_METHODS,
        help="encoder methods whose error patterns are graded (none: only the distortion families)",
    )  # fmt: skip
    e.add_argument(
        "--encoder", default=None, help="encoder checkpoint or bundled name (default: the generator's)"
    )
    e.add_argument("--sfn", default="sfn", help="SFN of the metrics")
    e.add_argument("--json", default=None, help="write the results to this JSON file")
    e.add_argument("--figure", default=None, help="write the Spearman / equal-MSE heatmaps to this PNG")
    e.add_argument("--device", default="auto")
    e.set_defaults(fn=cmd_eval_metrics)
    e = eval_sub.add_parser("gan", help="FID-SFN vs SynthFaces, blurred-data scale, attribute frequencies")
    e.add_argument("--checkpoint", default="synthfaces64", help="bundled name or path of a generator")
    e.add_argument(
        "--weights",
        choices=("G_ema", "G"),
        default="G_ema",
        help="G: the raw generator of a run (--checkpoint is then its folder or training_state.pt)",
    )
    e.add_argument(
        "--discriminator",
        default=None,
        help="also record D's logit gain per binary attribute on paired SynthFaces (name or path of a D)",
    )
    e.add_argument(
        "--preference-given",
        action="append",
        metavar="ATTR=0|1[,ATTR=0|1]",
        help="also D's preference with these attributes held fixed on every face (repeatable), e.g. "
        "glasses=1: does D want closed eyes behind glasses?",
    )
    e.add_argument("--sfn", default="sfn", help="bundled name or path of the SFN used for the metrics")
    e.add_argument("-n", type=positive_int, default=5000, help="images per set")
    e.add_argument("--seed", type=int, default=0, help="seed of the generated z")
    e.add_argument("--json", default=None, help="also write the results to this JSON file")
    e.add_argument("--grid", default=None, help="also write a grid of 32 samples to this PNG")
    e.add_argument("--device", default="auto")
    e.set_defaults(fn=cmd_eval_gan)
