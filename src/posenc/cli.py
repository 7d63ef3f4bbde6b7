"""The ``posenc`` command. Its fit flags are generated from the same dataclasses the API uses.

Errors in the user's input print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Any, Callable, Sequence

from .config import TASK_CONFIGS, TASK_DEFAULTS, TASK_DIMS, FitConfig, NetworkConfig, TrainConfig, read_config_file, resolve_config, task_policy_defaults
from .encodings import encoding_class, encoding_names
from .errors import PosencError
from .io import MESH_SUFFIXES, check_output_file
from .methods import PRESET_DESCRIPTIONS, PREFIX_DESCRIPTIONS, parse_method
from .progressive import POLICIES as POLICY_CLASSES
from .progressive import policy_parameters


# a render is written as one uint8 canvas (3 bytes a pixel): 1 GP = 3 GB at most
MAX_RENDER_PIXELS = 1 << 30


# -- integer arguments: one rule for every command (a one-line usage error, never a traceback) --------
MAX_THREADS = 1024
MAX_POINTS = 100_000_000  # evaluation / sample counts: 10^8 points of float32 coordinates is already GBs


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer from ``lo`` to ``hi``, else a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be from {lo:,} to {hi:,}, got {value:,}")
        return value

    parse.__name__ = "integer"
    return parse


COUNT = int_in(0, 2**31 - 1)
THREADS = int_in(0, MAX_THREADS)
WORKERS = int_in(1, MAX_THREADS)
SEED = int_in(0, 2**63 - 1)
POINTS = int_in(1, MAX_POINTS)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


# dataclass field -> CLI flag (only where the flag is not just the field name)
_RENAMES = {("network", "type"): "network"}
_SECTIONS = {"network": NetworkConfig, "train": TrainConfig}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _int_or_word(text: str) -> int | str:
    """``--res 512`` or ``--res native``."""
    try:
        return int(text)
    except ValueError:
        return text


def _flag_type(hint: Any) -> Any:
    """The argparse type of a setting's type hint (``int | None`` -> int, ``int | str`` -> int or a word)."""
    args = typing.get_args(hint)
    if int in args and str in args:
        return _int_or_word
    for t in (bool, int, float, str):
        if hint is t or t in typing.get_args(hint):
            return t
    return str


def _add_dataclass_flags(parser: argparse.ArgumentParser, section: str, cls: type, defaults: Any,
                         skip: Sequence[str] = ()) -> list[str]:
    """One flag per field of ``cls``; help shows the task's resolved default (``defaults``)."""
    group = parser.add_argument_group(f"{section} settings")
    hints = typing.get_type_hints(cls)
    used = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = _RENAMES.get((section, f.name), f.name)
        group.add_argument(_flag(flag), dest=f"{section}.{f.name}", type=_flag_type(hints[f.name]), default=None,
                           metavar=flag.upper(),
                           help=f"{f.metadata.get('help', '')} (default {getattr(defaults, f.name)})".lstrip())
        used.append(flag)
    return used


def _encoding_flag_table(taken: set[str]) -> dict[str, str]:
    """Every encoding parameter -> its flag name (prefixed ``encoding-`` where a name is taken)."""
    table: dict[str, str] = {}
    for name in encoding_names():
        for param in encoding_class(name).settings():
            table[param] = f"encoding_{param}" if param in taken else param
    return table


def _add_encoding_flags(parser: argparse.ArgumentParser, taken: set[str], task: str) -> None:
    group = parser.add_argument_group("encoding settings (see `posenc encodings`)")
    group.add_argument("--encoding", default=None, help=f"one of: {', '.join(encoding_names())} (same as --method NAME)")
    hints: dict[str, Any] = {}
    defaults: dict[str, dict[Any, list[str]]] = {}
    for name in encoding_names():
        cls = encoding_class(name)
        resolved = cls.defaults(TASK_DIMS[task][0])
        resolved.update({k: v for k, v in TASK_DEFAULTS.get(task, {}).get("encoding", {}).items() if k in resolved})
        for k, (hint, _) in cls.settings().items():
            hints.setdefault(k, hint)
            defaults.setdefault(k, {}).setdefault(repr(resolved[k]), []).append(name)
    for param, flag in _encoding_flag_table(taken).items():
        shown = "; ".join(f"{', '.join(encs)}: {value}" for value, encs in defaults[param].items())
        kind = _flag_type(hints[param])
        if kind is bool:
            group.add_argument(_flag(flag), dest=f"encoding.{param}", action=argparse.BooleanOptionalAction, default=None,
                               help=f"(default {shown})")
        else:
            group.add_argument(_flag(flag), dest=f"encoding.{param}", type=kind, default=None, metavar=param.upper(),
                               help=f"(default {shown})")


def _add_policy_flags(parser: argparse.ArgumentParser, task: str) -> None:
    group = parser.add_argument_group("progressive encoding (SAPE)")
    in_dim = TASK_DIMS[task][0]
    params = policy_parameters(in_dim)
    group.add_argument("--progressive", default=None, choices=sorted(params),
                       help="band-mask policy: global (progressive FF, eq. 4) or spatial (SAPE, eq. 5-7); "
                            "same as the method prefixes progressive+ and sape+")
    seen: dict[str, dict[str, Any]] = {}
    for policy, p in params.items():
        for name, default in {**p, **task_policy_defaults(task, policy)}.items():
            seen.setdefault(name, {})[policy] = default
    for name, by_policy in seen.items():
        hint = next(POLICY_CLASSES[p].settings()[name][0] for p in by_policy)
        shown = "; ".join(f"{p}: {v}" for p, v in by_policy.items())
        group.add_argument(_flag(name), dest=f"progressive.{name}", type=_flag_type(hint), default=None,
                           metavar=name.upper(), help=f"(default {shown})")


def _fit_config_from_args(args: argparse.Namespace) -> FitConfig:
    """The run config of ``posenc fit``: the flags, method and config file, through the one resolver."""
    base: Any = args.task
    if getattr(args, "config_obj", None) is not None:
        base = args.config_obj
    elif args.config:
        base = FitConfig.from_dict(read_config_file(args.config))
        if base.task != args.task:
            raise PosencError(f"{args.config} is a {base.task!r} config; use `posenc fit {base.task}`")
    method = args.method
    if args.encoding is not None:
        encoding_class(args.encoding)  # an unknown name fails with the list of encodings
        if method is not None and parse_method(method)[0].rpartition("+")[2] != args.encoding:
            raise PosencError(f"--encoding {args.encoding} contradicts --method {method}; give one of them")
        method = method or args.encoding
    if args.progressive:
        prefix = {"global": "progressive+", "spatial": "sape+"}.get(args.progressive, "")
        if method is not None:
            name = parse_method(method)[0]
            if "+" in name:
                raise PosencError(f"--progressive {args.progressive} with --method {method}: give the policy once")
            method = prefix + method if prefix else method
        elif isinstance(base, FitConfig):  # a config file: keep its encoding, add the policy
            enc_type = (base.encoding or {}).get("type", parse_method(base.method)[0].rpartition("+")[2])
            base.encoding = dict(base.encoding or {"type": enc_type})
            if prefix and "include_input" in encoding_class(enc_type).settings():
                base.encoding.setdefault("include_input", True)
            base.progressive = {"type": args.progressive}
            base.method = prefix + enc_type
        else:
            method = prefix + "gaussian"
    overrides = {key: value for key, value in vars(args).items() if value is not None and "." in key}
    if args.path:
        overrides["data.path"] = args.path
    if getattr(args, "target_path", None):
        overrides["data.target"] = args.target_path
    return resolve_config(base, method=method, overrides=overrides)


def _cmd_fit(args: argparse.Namespace) -> int:
    from .train import stored_config

    if args.resume and args.out and (Path(args.out) / "config.json").exists() and not args.config:
        # --resume alone: the run's own stored config; flags given now override it (e.g. --iters)
        stored = stored_config(args.out)
        if stored.task != args.task:
            raise PosencError(f"{args.out} holds a {stored.task!r} run; use `posenc resume {args.out}`")
        args.config_obj = stored
    cfg = _fit_config_from_args(args)
    default_name = {"image": "astronaut", "signal1d": "signal1d", "silhouette": "star", "sdf": "torus", "occupancy": "torus",
                    "mesh-transfer": "sphere"}.get(cfg.task, cfg.task)
    out = Path(args.out or f"runs/{Path(cfg.data.path).stem or default_name}-{cfg.method.replace(':', '_')}")
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    return _run_fit(cfg, out, not args.quiet, args.resume, args.force)


def _run_fit(cfg: FitConfig, out: Path, progress: bool, resume: bool, force: bool) -> int:
    from .train import fit

    try:
        metrics = fit(cfg, out, progress=progress, resume=resume, force=force)
    except KeyboardInterrupt:
        print(f"posenc: interrupted; checkpoint and metrics so far saved in {out} (continue with `posenc resume {out}`)",
              file=sys.stderr)
        return 130
    held, ssim, psnr = metrics.get("psnr_heldout"), metrics.get("ssim"), metrics.get("psnr")
    parts = [f"psnr {psnr:.2f} dB" if psnr is not None else "", f"held-out {held:.2f} dB" if held is not None else "",
             f"ssim {ssim:.3f}" if ssim is not None else "", f"IoU {metrics['iou']:.3f}" if "iou" in metrics else "",
             f"Chamfer-L1 {metrics['chamfer_l1']:.4f}, Dirichlet {metrics['dirichlet']:.2f}" if "dirichlet" in metrics else "",
             f"{metrics['params']:,} params", f"{metrics['seconds']:.1f} s"]
    print(f"{out}: " + ", ".join(p for p in parts if p))
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    """``posenc resume RUN``: continue a run from its own stored config; ``--iters`` may extend it,
    ``--threads`` / ``--device`` may change."""
    from .train import stored_config

    run = Path(args.run)
    stored = stored_config(run)
    overrides = {f"train.{k}": v for k, v in (("iters", args.iters), ("threads", args.threads), ("device", args.device)) if v is not None}
    cfg = resolve_config(stored, overrides=overrides)
    return _run_fit(cfg, run, not args.quiet, True, False)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise PosencError(f"size must look like 1024x768, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise PosencError(f"size must be positive, got {text!r}")
    return w, h


def _cmd_render(args: argparse.Namespace) -> int:
    import numpy as np

    from .io import save_image
    from .runtime import set_threads, tune_allocator
    from .tasks.image import render_image
    from .train import load_model

    check_output_file(args.out, (".png",))
    tune_allocator()
    set_threads(args.threads)
    field, cfg, info = load_model(args.run, device=args.device)
    if cfg.task != "image":
        raise PosencError(f"render makes images; {args.run} holds a {cfg.task!r} model")
    fit_h, fit_w = int(info.get("height", 0)), int(info.get("width", 0))
    if not fit_h or not fit_w:
        raise PosencError(f"{args.run} does not record the size it was fitted at; re-fit it with this posenc")
    if args.size and args.scale:
        raise PosencError("give --size or --scale, not both")
    if args.size:
        w, h = _parse_size(args.size)
        # the same region at another size: the aspect must be the fitted one (to a pixel of rounding)
        if abs(w * fit_h / fit_w - h) > 1.0 and abs(h * fit_w / fit_h - w) > 1.0:
            raise PosencError(f"--size {w}x{h} has another aspect than the fitted {fit_w}x{fit_h}; use --scale, or e.g. "
                              f"--size {w}x{round(w * fit_h / fit_w)}")
    else:
        scale = 1.0 if args.scale is None else args.scale
        if not scale > 0:
            raise PosencError(f"--scale must be positive, got {scale}")
        w, h = max(1, round(fit_w * scale)), max(1, round(fit_h * scale))
    if w * h > MAX_RENDER_PIXELS:
        raise PosencError(f"render size {w}x{h} ({w * h / 1e6:.0f} MP) is above the {MAX_RENDER_PIXELS / 1e6:.0f} MP a "
                          "PNG written here may have; choose a smaller --size or --scale")
    canvas = np.empty((h, w, 3), dtype=np.uint8)  # bands of rows are rendered into it: bounded memory
    region = info.get("region")
    render_image(field, h, w, extent=(fit_h, fit_w), out=canvas, region=tuple(region) if region else None)
    save_image(args.out, canvas)
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
    check_output_file(args.out, MESH_SUFFIXES)
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
    import textwrap

    def entry(name: str, text: str, params: str) -> None:
        lines = textwrap.wrap(text, 86) or [""]
        print(f"{name:16s}{lines[0]}")
        for line in lines[1:]:
            print(f"{'':16s}{line}")
        for line in textwrap.wrap(params, 86):
            print(f"{'':16s}  {line}")

    for name in encoding_names():
        cls = encoding_class(name)
        shown = {k: ("/".join(str(v) for v in cls.dim_defaults[k].values()) + " in 1/2/3/4-D" if k in cls.dim_defaults else repr(v))
                 for k, v in cls.defaults().items()}
        params = ", ".join(f"{k}={v}" for k, v in shown.items()) or "(no parameters)"
        entry(name, cls.describe(), params)
    for name, text in PRESET_DESCRIPTIONS.items():
        entry(name, text, "network settings: --width --depth --omega0")
    for prefix, policy in (("progressive", "global"), ("sape", "spatial")):
        params = ", ".join(f"{k}={v!r}" for k, v in policy_parameters()[policy].items())
        entry(f"{prefix}+ENC", PREFIX_DESCRIPTIONS[prefix], params + " (mask_grid None: 32 in 1-D, 128 in 2-D, 64 in 3-D, 16 in 4-D)")
    return 0


def _cmd_viz_fourier(args: argparse.Namespace) -> int:
    from .encodings import GaussianFourierFeatures
    from .io import save_image
    from .viz import fourier_basis_figure

    if args.features <= 0 or args.features > 200:
        raise PosencError(f"features must be between 1 and 200, got {args.features}")
    if not 8 <= args.size <= 1024:
        raise PosencError(f"size must be between 8 and 1024 pixels, got {args.size}")
    check_output_file(args.out, (".png",))
    enc = GaussianFourierFeatures(2, sigma=args.sigma, features=args.features, seed=args.seed)
    save_image(args.out, fourier_basis_figure(enc.B.numpy(), size=args.size))
    print(f"wrote {args.out}")
    return 0


def _cmd_bench_images(args: argparse.Namespace) -> int:
    from .bench.runner import BenchConfig, run_bench

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
    bc = BenchConfig(data=args.data, methods=methods, out=args.out, task=task, lr=args.lr, iters=args.iters,
                          seed=args.seed, seeds=args.seeds, limit=args.limit, workers=args.workers,
                          images=tuple(n.strip() for n in args.images.split(",") if n.strip()),
                          threads=args.threads, device=args.device, **extra)
    out = run_bench(bc, progress=not args.quiet)
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
             "occupancy": ("fit an occupancy field to a mesh (BCE; occupancy networks / SAPE)", "OBJ/OFF/PLY/STL mesh; omit for a built-in torus"),
             "mesh-transfer": ("move a source mesh onto a target shape, keeping its tessellation (SAPE Table 2)",
                               "source mesh (OBJ/OFF/PLY/STL); omit both meshes for a built-in sphere and rippled copy")}
    for task, data_cls in TASK_CONFIGS.items():
        tp = fit_sub.add_parser(task, help=helps[task][0])
        tp.add_argument("path", nargs="?", default=None, help=helps[task][1])
        if task == "mesh-transfer":
            tp.add_argument("target_path", nargs="?", default=None, metavar="target", help="target mesh")
        tp.add_argument("--out", default=None, help="output folder (default runs/<input>-<method>)")
        tp.add_argument("--config", default=None, help="start from a config.json / .yaml (flags override it)")
        tp.add_argument("--method", default=None, help="a method name with optional settings, e.g. gaussian:sigma=12, siren, sape+gaussian")
        tp.add_argument("--resume", action="store_true", help="continue the interrupted run in --out (its own settings; "
                        "flags given now override them, e.g. a larger --iters)")
        tp.add_argument("--force", action="store_true", help="overwrite a run already in --out")
        tp.add_argument("--quiet", action="store_true", help="no progress bar")
        tp.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        resolved = resolve_config(task)
        taken = set(_add_dataclass_flags(tp, "data", data_cls, resolved.data, skip=("path", "target")))
        for section, cls in _SECTIONS.items():
            taken |= set(_add_dataclass_flags(tp, section, cls, getattr(resolved, section)))
        _add_policy_flags(tp, task)
        taken |= set(policy_parameters()["spatial"]) | set(policy_parameters()["global"])
        taken |= {"out", "config", "method", "resume", "quiet", "encoding", "progressive"}
        _add_encoding_flags(tp, taken, task)
        tp.set_defaults(func=_cmd_fit)

    resume = sub.add_parser("resume", help="continue an interrupted run from its own stored settings")
    resume.add_argument("run", help="run folder (with checkpoint.safetensors)")
    resume.add_argument("--iters", type=COUNT, default=None, help="a new, larger iteration budget")
    resume.add_argument("--threads", type=THREADS, default=None)
    resume.add_argument("--device", default=None)
    resume.add_argument("--quiet", action="store_true")
    resume.set_defaults(func=_cmd_resume)

    render = sub.add_parser("render", help="render a saved image model at any size")
    render.add_argument("run", help="run folder (or model.safetensors)")
    render.add_argument("--size", default=None, help="WIDTHxHEIGHT with the fitted aspect (default: the fitted size)")
    render.add_argument("--scale", type=float, default=None, help="the fitted size times this (e.g. 2)")
    render.add_argument("--out", required=True)
    render.add_argument("--device", default="cpu")
    render.add_argument("--threads", type=THREADS, default=0)
    render.set_defaults(func=_cmd_render)

    mesh = sub.add_parser("mesh", help="marching cubes of a saved sdf / occupancy model")
    mesh.add_argument("run", help="run folder (or model.safetensors)")
    mesh.add_argument("--res", type=COUNT, default=256)
    mesh.add_argument("--out", required=True, help=".ply / .obj / .off / .stl")
    mesh.add_argument("--device", default="cpu")
    mesh.add_argument("--threads", type=THREADS, default=0)
    mesh.set_defaults(func=_cmd_mesh)

    enc = sub.add_parser("encodings", help="list every encoding with its parameters and defaults")
    enc.set_defaults(func=_cmd_encodings)

    viz = sub.add_parser("viz", help="pictures")
    viz_sub = viz.add_subparsers(dest="what", required=True, parser_class=_Parser)
    vf = viz_sub.add_parser("fourier", help="2-D sin/cos basis images of random Fourier features")
    vf.add_argument("--features", type=COUNT, default=25)
    vf.add_argument("--sigma", type=float, default=10.0)
    vf.add_argument("--seed", type=SEED, default=0)
    vf.add_argument("--size", type=COUNT, default=100)
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
        ("mesh-transfer", "methods x source -> target pairs (SAPE Table 2: Chamfer, Hausdorff, Dirichlet)",
         "none,siren,rbf_grid,sape+rbf_grid,gaussian,sape+gaussian"),
    ):
        bi = bench_sub.add_parser(suite, help=help_text)
        bi.add_argument("--data", required=True, help="folder of images / silhouettes / meshes / pair files")
        bi.add_argument("--methods", default=methods)
        if suite == "shapes":
            bi.add_argument("--task", dest="shape_task", default="occupancy", choices=["occupancy", "sdf"])
            bi.add_argument("--samples", type=POINTS, default=300000)
            bi.add_argument("--mc-res", type=COUNT, default=128)
            bi.add_argument("--eval-points", type=POINTS, default=1000000, help="uniform and near-surface IoU points (each)")
        if suite == "images":
            bi.add_argument("--protocol", default="gen25", choices=["gen25", "fit"])
            bi.add_argument("--res", type=COUNT, default=256)
        if suite in ("images", "shapes"):
            bi.add_argument("--match-params", type=COUNT, default=0, help="size every method to this many learned parameters (within 10%%)")
        bi.add_argument("--iters", type=COUNT, default=0, help="training iterations (default: the task's, 2000; silhouettes 10000)")
        bi.add_argument("--lr", type=float, default=0.0, help="learning rate for every method (default: each method's own)")
        bi.add_argument("--seed", type=SEED, default=0)
        bi.add_argument("--seeds", type=COUNT, default=1, help="network seeds per fit: --seed, --seed + 1, ... (tables pool them)")
        bi.add_argument("--limit", type=COUNT, default=0, help="first K files only")
        bi.add_argument("--images", default="", help="comma-separated file names (stems) to use, e.g. kodim24")
        bi.add_argument("--workers", type=WORKERS, default=1, help="parallel fits, one thread each")
        bi.add_argument("--threads", type=THREADS, default=0, help="threads with --workers 1 (0 = all)")
        bi.add_argument("--device", default="cpu")
        bi.add_argument("--out", required=True)
        bi.add_argument("--quiet", action="store_true")
        bi.set_defaults(func=_cmd_bench_images, task={"images": "image", "silhouettes": "silhouette", "shapes": "shapes",
                                                      "mesh-transfer": "mesh-transfer"}[suite])
    bs = bench_sub.add_parser("signal1d", help="methods on a 1-D signal (SAPE Fig. 2): results.md and comparison.png")
    bs.add_argument("--methods", default="none,gaussian:sigma=30,progressive+gaussian:sigma=30,sape+gaussian:sigma=30")
    bs.add_argument("--path", default="", help=".npy / .csv signal (default: built-in)")
    bs.add_argument("--samples", type=POINTS, default=128)
    bs.add_argument("--iters", type=COUNT, default=2000)
    bs.add_argument("--seeds", type=COUNT, default=3)
    bs.add_argument("--threads", type=THREADS, default=1)
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
    rp = sub.add_parser("reproduce", help="one command per paper table: suites of fits, selection, reports")
    rp.add_argument("suite", nargs="?", default=None, help="a suite name (see --list) or a .toml suite file")
    rp.add_argument("--list", action="store_true", help="list the suites with their size and an estimate of CPU-hours")
    rp.add_argument("--scale", default="cpu", help="cpu (committed), paper (the paper's sizes and sample counts), or another scale the suite names (--list shows them)")
    rp.add_argument("--seeds", type=COUNT, default=0, help="network seeds per cell (default: the suite's, 3)")
    rp.add_argument("--only", default="", help="comma-separated row names (a slice of the table)")
    rp.add_argument("--limit", type=COUNT, default=0, help="first K test inputs per column (0 = all)")
    rp.add_argument("--iters", type=COUNT, default=0, help="override every fit's iterations (quick looks only; recorded)")
    rp.add_argument("--executor", default="local", help="local (a process pool) or ray (pip install 'posenc[ray]')")
    rp.add_argument("--address", default="", help="a running Ray cluster, HOST:PORT (default: start a local one)")
    rp.add_argument("--workers", type=WORKERS, default=1, help="parallel fits (local processes, or local Ray CPUs)")
    rp.add_argument("--threads", type=THREADS, default=1, help="threads per fit")
    rp.add_argument("--device", default="cpu")
    rp.add_argument("--gpus", type=float, default=0.0, help="GPUs per fit (Ray)")
    rp.add_argument("--data-root", default="../shared/data", help="folder holding images/, meshes/, silhouettes/")
    rp.add_argument("--out", default=None, help="results folder (default repro/<suite>)")
    rp.add_argument("--reuse", default="", help="comma-separated folders of other suites' (or `posenc bench`) results: a fit with the "
                    "same config, input and seed is copied from there instead of run again")
    rp.add_argument("--no-pictures", action="store_true", help="do not refit the pictured seed-0 fits whose run "
                    "folders are gone (a fresh clone): the report then leaves out their montages")
    rp.add_argument("--quiet", action="store_true")
    rp.set_defaults(func=_cmd_reproduce)

    bp = bench_sub.add_parser("perf", help="matmul peak and training-step speed")
    bp.add_argument("--threads", type=THREADS, default=2)
    bp.add_argument("--points", type=POINTS, default=16384)
    bp.add_argument("--steps", type=COUNT, default=30)
    bp.add_argument("--out", default=None, help="folder for perf.json / perf.md")
    bp.set_defaults(func=_cmd_bench_perf)
    return p


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce.runner import ReproduceConfig, EST_GFLOPS_PER_THREAD, check, estimate, run_suite
    from .reproduce.suite import list_suites, load_suite

    def config(name: str) -> ReproduceConfig:
        return ReproduceConfig(suite=name, out=args.out or f"repro/{Path(name).stem}", scale=args.scale, seeds=args.seeds,
                               only=tuple(x for x in args.only.split(",") if x), limit=args.limit, executor=args.executor,
                               workers=args.workers, address=args.address, threads=args.threads, device=args.device,
                               gpus=args.gpus, data_root=args.data_root, iters=args.iters,
                               reuse=tuple(x for x in args.reuse.split(",") if x), pictures=not args.no_pictures)

    if args.list:
        suites = [load_suite(args.suite)] if args.suite else list_suites()
        print(f"{'suite':<15} {'columns':<34} {'rows':>4} {'fits':>5} {'CPU-h':>6} {'measured':>8}  title")
        for suite in suites:
            rc = config(suite.name)
            check(rc)
            est = estimate(suite, rc)
            cols = ",".join(c.name for c in suite.columns)
            m = suite.measured.get(args.scale)
            measured = f"{m['cpu_hours']:.1f}" if m else "-"
            print(f"{suite.name:<15} {cols[:34]:<34} {len(suite.rows):>4} {est['fits']:>5} {est['cpu_hours']:>6.1f} {measured:>8}  {suite.title}")
        print(f"(scale {args.scale}; CPU-h: estimated from each fit's MLP FLOPs at {EST_GFLOPS_PER_THREAD:g} GFLOP/s per thread "
              "plus sampling and evaluation, setting searches included; measured: the committed run on 2 x86_64 cores. "
              "Encoding-heavy and full-batch fits run below the estimate's rate)")
        return 0
    if not args.suite:
        raise PosencError("name a suite (posenc reproduce --list shows them)")
    rc = config(args.suite)
    try:
        out = run_suite(rc, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"posenc: interrupted; finished fits are kept in {rc.out}/results.jsonl and the one cut short in its "
              "checkpoint: run the same command again to continue", file=sys.stderr)
        return 130
    print(f"{out}: report.md, report.html, results.jsonl")
    return 0


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
