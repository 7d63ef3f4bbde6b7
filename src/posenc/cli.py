"""The ``posenc`` command. Its fit flags are generated from the same dataclasses the API uses.

Errors in the user's input print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from .config import TASK_CONFIGS, FitConfig, NetworkConfig, TrainConfig, load_config, task_policy_defaults
from .encodings import encoding_class, encoding_names, encoding_parameters
from .errors import PosencError
from .progressive import policy_parameters


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


# dataclass field -> CLI flag (only where the flag is not just the field name)
_RENAMES = {("network", "type"): "network"}
_SECTIONS = {"network": NetworkConfig, "train": TrainConfig}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_dataclass_flags(parser: argparse.ArgumentParser, section: str, cls: type, skip: Sequence[str] = ()) -> list[str]:
    group = parser.add_argument_group(f"{section} settings ({cls.__name__})")
    used = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = _RENAMES.get((section, f.name), f.name)
        default = f.default
        group.add_argument(_flag(flag), dest=f"{section}.{f.name}", type=type(default), default=None,
                           help=f"(default {default})")
        used.append(flag)
    return used


def _encoding_flag_table(taken: set[str]) -> dict[str, str]:
    """Every encoding parameter -> its flag name (prefixed ``encoding-`` where a name is taken)."""
    table: dict[str, str] = {}
    for name in encoding_names():
        for param in encoding_parameters(name):
            table[param] = f"encoding_{param}" if param in taken else param
    return table


def _add_encoding_flags(parser: argparse.ArgumentParser, taken: set[str]) -> None:
    group = parser.add_argument_group("encoding settings (see `posenc encodings`)")
    group.add_argument("--encoding", default=None, help=f"one of: {', '.join(encoding_names())}")
    defaults: dict[str, Any] = {}
    for name in encoding_names():
        for k, v in encoding_parameters(name).items():
            defaults.setdefault(k, v)
    for param, flag in _encoding_flag_table(taken).items():
        default = defaults[param]
        if isinstance(default, bool):
            group.add_argument(_flag(flag), dest=f"encoding.{param}", action=argparse.BooleanOptionalAction, default=None)
        else:
            group.add_argument(_flag(flag), dest=f"encoding.{param}", type=type(default) if default is not None else float, default=None)


def _add_policy_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("progressive encoding (SAPE)")
    params = policy_parameters()
    group.add_argument("--progressive", default=None, choices=sorted(params),
                       help="band-mask policy: global (progressive FF, eq. 4) or spatial (SAPE, eq. 5-7)")
    seen: dict[str, Any] = {}
    for p in params.values():
        seen.update(p)
    for name, default in seen.items():
        group.add_argument(_flag(name), dest=f"progressive.{name}", type=type(default), default=None, help=f"(default {default})")


def _fit_config_from_args(args: argparse.Namespace) -> FitConfig:
    from .methods import apply_method

    cfg = load_config(args.config) if args.config else FitConfig.for_task(args.task)
    if cfg.task != args.task:
        raise PosencError(f"{args.config} is a {cfg.task!r} config; use `posenc fit {cfg.task}`")
    if args.method:
        cfg = apply_method(cfg, args.method)
    if args.encoding:
        encoding_class(args.encoding)  # an unknown name fails with the list of encodings
    if args.encoding and not args.method:
        cfg = apply_method(cfg, args.encoding)  # the encoding's preset network (lpe: 3x64 leaky-ReLU, grids: 2x64)
    elif args.encoding:
        cfg.encoding = {"type": args.encoding}
    if args.progressive:
        cfg.progressive = {"type": args.progressive, **task_policy_defaults(cfg.task, args.progressive)}
        if args.progressive != "none" and "include_input" in encoding_parameters(cfg.encoding["type"]):
            cfg.encoding.setdefault("include_input", True)  # SAPE keeps the raw coordinates always open
        if not args.method:
            prefix = {"global": "progressive+", "spatial": "sape+"}.get(args.progressive, "")
            cfg.method = prefix + cfg.encoding["type"]
    values = vars(args)
    for key, value in values.items():
        if value is None or "." not in key:
            continue
        section, name = key.split(".", 1)
        if section == "progressive":
            allowed = policy_parameters()[cfg.progressive.get("type", "none")]
            if name not in allowed:
                raise PosencError(f"--{name.replace('_', '-')} needs a progressive policy that takes it (--progressive spatial)")
            cfg.progressive[name] = value
        elif section == "encoding":
            if name not in encoding_parameters(cfg.encoding["type"]):
                raise PosencError(f"encoding {cfg.encoding['type']!r} has no setting {name!r}; it takes: "
                                  f"{', '.join(encoding_parameters(cfg.encoding['type'])) or 'nothing'}")
            cfg.encoding[name] = value
        elif section == "data":
            setattr(cfg.data, name, value)
        else:
            setattr(getattr(cfg, section), name, value)
    if getattr(args, "path", None):
        cfg.data.path = args.path
    return cfg


def _cmd_fit(args: argparse.Namespace) -> int:
    from .train import fit

    cfg = _fit_config_from_args(args)
    default_name = {"image": "astronaut", "signal1d": "signal1d", "silhouette": "star", "sdf": "torus", "occupancy": "torus"}.get(cfg.task, cfg.task)
    out = Path(args.out or f"runs/{Path(cfg.data.path).stem or default_name}-{cfg.method.replace(':', '_')}")
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    try:
        metrics = fit(cfg, out, progress=not args.quiet, resume=args.resume)
    except KeyboardInterrupt:
        print(f"posenc: interrupted; checkpoint and metrics so far saved in {out} (resume with --resume)", file=sys.stderr)
        return 130
    held, ssim, psnr = metrics.get("psnr_heldout"), metrics.get("ssim"), metrics.get("psnr")
    parts = [f"psnr {psnr:.2f} dB" if psnr is not None else "", f"held-out {held:.2f} dB" if held is not None else "",
             f"ssim {ssim:.3f}" if ssim is not None else "", f"IoU {metrics['iou']:.3f}" if "iou" in metrics else "",
             f"{metrics['params']:,} params", f"{metrics['seconds']:.1f} s"]
    print(f"{out}: " + ", ".join(p for p in parts if p))
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise PosencError(f"size must look like 1024x768, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise PosencError(f"size must be positive, got {text!r}")
    return w, h


def _cmd_render(args: argparse.Namespace) -> int:
    from .io import save_image
    from .runtime import set_threads, tune_allocator
    from .tasks.image import render_image
    from .train import load_model

    tune_allocator()
    set_threads(args.threads)
    field, cfg, _ = load_model(args.run, device=args.device)
    if cfg.task != "image":
        raise PosencError(f"render makes images; {args.run} holds a {cfg.task!r} model")
    w, h = _parse_size(args.size)
    save_image(args.out, render_image(field, h, w))
    print(f"wrote {args.out} ({w}x{h})")
    return 0


def _cmd_mesh(args: argparse.Namespace) -> int:
    from .io import save_mesh
    from .runtime import set_threads, tune_allocator
    from .tasks.shapes import extract_mesh
    from .train import load_model

    tune_allocator()
    set_threads(args.threads)
    if args.res < 8 or args.res > 1024:
        raise PosencError(f"res must be between 8 and 1024, got {args.res}")
    field, cfg, _ = load_model(args.run, device=args.device)
    if cfg.task not in ("sdf", "occupancy"):
        raise PosencError(f"mesh needs a 3-D model (sdf or occupancy); {args.run} holds a {cfg.task!r} model")
    verts, faces = extract_mesh(field, args.res, 0.0)
    if not len(faces):
        raise PosencError("the field has no zero crossing: nothing to mesh")
    if cfg.task == "occupancy":
        faces = faces[:, ::-1]
    save_mesh(args.out, verts, faces)
    print(f"wrote {args.out} ({len(verts):,} vertices, {len(faces):,} faces)")
    return 0


def _cmd_encodings(args: argparse.Namespace) -> int:
    from .encodings import encoding_class

    for name in encoding_names():
        doc = (encoding_class(name).__doc__ or "").strip().splitlines()[0]
        params = ", ".join(f"{k}={v!r}" for k, v in encoding_parameters(name).items()) or "(no parameters)"
        print(f"{name:12s} {doc}\n{'':12s} {params}")
    return 0


def _cmd_viz_fourier(args: argparse.Namespace) -> int:
    from .encodings import GaussianFourierFeatures
    from .io import save_image
    from .viz import fourier_basis_figure

    if args.features <= 0 or args.features > 200:
        raise PosencError(f"features must be between 1 and 200, got {args.features}")
    enc = GaussianFourierFeatures(2, sigma=args.sigma, features=args.features, seed=args.seed)
    save_image(args.out, fourier_basis_figure(enc.B.numpy(), size=args.size))
    print(f"wrote {args.out}")
    return 0


def _cmd_bench_images(args: argparse.Namespace) -> int:
    from .bench.images import ImageBenchConfig, run_image_bench

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise PosencError("--methods needs at least one method")
    extra: dict[str, Any] = {}
    task = args.task
    if task == "image":
        extra = {"protocol": args.protocol, "res": args.res, "match_params": args.match_params}
    elif task == "shapes":
        task = args.shape_task
        extra = {"samples": args.samples, "mc_res": args.mc_res, "eval_points": args.eval_points,
                 "match_params": args.match_params}
    bc = ImageBenchConfig(data=args.data, methods=methods, out=args.out, task=task, lr=args.lr, iters=args.iters,
                          seed=args.seed, seeds=args.seeds, limit=args.limit, workers=args.workers,
                          images=tuple(n.strip() for n in args.images.split(",") if n.strip()),
                          threads=args.threads, device=args.device, **extra)
    out = run_image_bench(bc, progress=not args.quiet)
    print((out / "results.md").read_text())
    return 0


def _cmd_bench_signal(args: argparse.Namespace) -> int:
    from .bench.signal import SignalBenchConfig, run_signal_bench

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bc = SignalBenchConfig(methods=methods, out=args.out, path=args.path, samples=args.samples, iters=args.iters,
                           seeds=args.seeds, threads=args.threads)
    out = run_signal_bench(bc, progress=not args.quiet)
    print((out / "results.md").read_text())
    return 0


def _cmd_bench_plot(args: argparse.Namespace) -> int:
    from .bench.plots import sweep_plot

    images = tuple(n.strip() for n in args.images.split(",") if n.strip())
    series = sweep_plot(args.results, args.param, args.out, metric=args.metric, logx=not args.linear, images=images)
    for name, pts in series.items():
        print(name + ": " + ", ".join(f"{x:g} -> {m:.2f} ± {s:.2f}" for x, m, s in pts))
    print(f"wrote {args.out}")
    return 0


def _cmd_bench_perf(args: argparse.Namespace) -> int:
    from .bench.perf import PerfConfig, format_perf, run_perf

    result = run_perf(PerfConfig(threads=args.threads, points=args.points, steps=args.steps), out=args.out)
    print(format_perf(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="posenc", description="Coordinate networks with positional encodings.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    fit = sub.add_parser("fit", help="fit a field to a signal")
    fit_sub = fit.add_subparsers(dest="task", required=True, parser_class=_Parser)
    helps = {"image": ("fit an image (default: scikit-image's astronaut)", "image file (any Pillow format); omit for the built-in image"),
             "signal1d": ("fit a 1-D signal (default: the built-in smooth + high-frequency signal)", ".npy or .csv column; omit for the built-in signal"),
             "silhouette": ("deform a circle onto a silhouette's contour by Chamfer distance (SAPE Fig. 9)", "GIF/PNG, white shape on black; omit for a built-in star"),
             "sdf": ("fit a signed distance field to a mesh (L1 loss; LPE's task)", "OBJ/OFF/PLY/STL mesh; omit for a built-in torus"),
             "occupancy": ("fit an occupancy field to a mesh (BCE; occupancy networks / SAPE)", "OBJ/OFF/PLY/STL mesh; omit for a built-in torus")}
    for task, data_cls in TASK_CONFIGS.items():
        tp = fit_sub.add_parser(task, help=helps[task][0])
        tp.add_argument("path", nargs="?", default=None, help=helps[task][1])
        tp.add_argument("--out", default=None, help="output folder (default runs/<input>-<method>)")
        tp.add_argument("--config", default=None, help="start from a config.json / .yaml (flags override it)")
        tp.add_argument("--method", default=None, help="a method name with optional settings, e.g. gaussian:sigma=12, siren, sape+gaussian")
        tp.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
        tp.add_argument("--quiet", action="store_true", help="no progress bar")
        tp.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        taken = set(_add_dataclass_flags(tp, "data", data_cls, skip=("path",)))
        for section, cls in _SECTIONS.items():
            taken |= set(_add_dataclass_flags(tp, section, cls))
        _add_policy_flags(tp)
        taken |= set(policy_parameters()["spatial"]) | {"out", "config", "method", "resume", "quiet", "encoding", "progressive"}
        _add_encoding_flags(tp, taken)
        tp.set_defaults(func=_cmd_fit)

    render = sub.add_parser("render", help="render a saved image model at any size")
    render.add_argument("run", help="run folder (or model.safetensors)")
    render.add_argument("--size", default="1024x1024", help="WIDTHxHEIGHT (default 1024x1024)")
    render.add_argument("--out", required=True)
    render.add_argument("--device", default="cpu")
    render.add_argument("--threads", type=int, default=0)
    render.set_defaults(func=_cmd_render)

    mesh = sub.add_parser("mesh", help="marching cubes of a saved sdf / occupancy model")
    mesh.add_argument("run", help="run folder (or model.safetensors)")
    mesh.add_argument("--res", type=int, default=256)
    mesh.add_argument("--out", required=True, help=".ply / .obj / .off / .stl")
    mesh.add_argument("--device", default="cpu")
    mesh.add_argument("--threads", type=int, default=0)
    mesh.set_defaults(func=_cmd_mesh)

    enc = sub.add_parser("encodings", help="list every encoding with its parameters and defaults")
    enc.set_defaults(func=_cmd_encodings)

    viz = sub.add_parser("viz", help="pictures")
    viz_sub = viz.add_subparsers(dest="what", required=True, parser_class=_Parser)
    vf = viz_sub.add_parser("fourier", help="2-D sin/cos basis images of random Fourier features")
    vf.add_argument("--features", type=int, default=25)
    vf.add_argument("--sigma", type=float, default=10.0)
    vf.add_argument("--seed", type=int, default=0)
    vf.add_argument("--size", type=int, default=100)
    vf.add_argument("--out", required=True)
    vf.set_defaults(func=_cmd_viz_fourier)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="suite", required=True, parser_class=_Parser)
    for suite, help_text, methods in (
        ("images", "methods x images, resumable (results.jsonl, results.md, montages)", "none,basic,positional,gaussian,rbf_grid,siren"),
        ("silhouettes", "methods x silhouettes, curve deformation by Chamfer (IoU table, overlay montages)",
         "none,gaussian,sape+gaussian,siren,rbf_grid,sape+rbf_grid"),
        ("shapes", "methods x meshes, occupancy or sdf (IoU, Chamfer-L1, Hausdorff, previews)",
         "none,gaussian,sape+gaussian,lpe,hash_grid,siren"),
    ):
        bi = bench_sub.add_parser(suite, help=help_text)
        bi.add_argument("--data", required=True, help="folder of images / silhouettes")
        bi.add_argument("--methods", default=methods)
        if suite == "shapes":
            bi.add_argument("--task", dest="shape_task", default="occupancy", choices=["occupancy", "sdf"])
            bi.add_argument("--samples", type=int, default=300000)
            bi.add_argument("--mc-res", type=int, default=128)
            bi.add_argument("--eval-points", type=int, default=1000000, help="uniform and near-surface IoU points (each)")
        if suite == "images":
            bi.add_argument("--protocol", default="gen25", choices=["gen25", "fit"])
            bi.add_argument("--res", type=int, default=256)
        if suite in ("images", "shapes"):
            bi.add_argument("--match-params", type=int, default=0, help="size every method to this many learned parameters (within 10%%)")
        bi.add_argument("--iters", type=int, default=0, help="training iterations (default: the task's, 2000; silhouettes 10000)")
        bi.add_argument("--lr", type=float, default=0.0, help="learning rate for every method (default: each method's own)")
        bi.add_argument("--seed", type=int, default=0)
        bi.add_argument("--seeds", type=int, default=1, help="network seeds per fit: --seed, --seed + 1, ... (tables pool them)")
        bi.add_argument("--limit", type=int, default=0, help="first K files only")
        bi.add_argument("--images", default="", help="comma-separated file names (stems) to use, e.g. kodim24")
        bi.add_argument("--workers", type=int, default=1, help="parallel fits, one thread each")
        bi.add_argument("--threads", type=int, default=0, help="threads with --workers 1 (0 = all)")
        bi.add_argument("--device", default="cpu")
        bi.add_argument("--out", required=True)
        bi.add_argument("--quiet", action="store_true")
        bi.set_defaults(func=_cmd_bench_images, task={"images": "image", "silhouettes": "silhouette", "shapes": "shapes"}[suite])
    bs = bench_sub.add_parser("signal1d", help="methods on a 1-D signal (SAPE Fig. 2): results.md and comparison.png")
    bs.add_argument("--methods", default="none,gaussian:sigma=30,progressive+gaussian:sigma=30,sape+gaussian:sigma=30")
    bs.add_argument("--path", default="", help=".npy / .csv signal (default: built-in)")
    bs.add_argument("--samples", type=int, default=128)
    bs.add_argument("--iters", type=int, default=2000)
    bs.add_argument("--seeds", type=int, default=3)
    bs.add_argument("--threads", type=int, default=1)
    bs.add_argument("--out", required=True)
    bs.add_argument("--quiet", action="store_true")
    bs.set_defaults(func=_cmd_bench_signal)
    bl = bench_sub.add_parser("plot", help="PSNR against a method setting (e.g. sigma) from results folders")
    bl.add_argument("results", nargs="+", help="benchmark folders holding results.jsonl")
    bl.add_argument("--param", required=True, help="method setting on the x axis, e.g. sigma or mask_grid")
    bl.add_argument("--metric", default="psnr")
    bl.add_argument("--linear", action="store_true", help="linear x axis (default log2)")
    bl.add_argument("--images", default="", help="comma-separated inputs to include (default: all)")
    bl.add_argument("--out", required=True)
    bl.set_defaults(func=_cmd_bench_plot)
    bp = bench_sub.add_parser("perf", help="matmul peak and training-step speed")
    bp.add_argument("--threads", type=int, default=2)
    bp.add_argument("--points", type=int, default=16384)
    bp.add_argument("--steps", type=int, default=30)
    bp.add_argument("--out", default=None, help="folder for perf.json / perf.md")
    bp.set_defaults(func=_cmd_bench_perf)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, one line)
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except PosencError as exc:
        print(f"posenc: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        return 0


if __name__ == "__main__":
    sys.exit(main())
