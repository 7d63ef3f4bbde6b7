"""Typed run configurations and the one resolver that turns settings into a complete run config.

A :class:`FitConfig` describes a run: task, data, method, encoding and progressive policy (registry
config dicts), network and training. ``None`` in a network or training field, or a missing
encoding / policy dict, means "the task's default"; :func:`resolve_config` fills every one of them
and is the only place where defaults are decided. The CLI (flags and ``--help``), ``FitConfig.for_task``,
``apply_method``, the benchmarks and :func:`posenc.fit` all go through it, so the same settings give
the same run whichever way they arrive. The resolved config is written as ``config.json`` next to
every result; ``posenc fit --config config.json`` re-makes the run.

Layers, lowest first (a later layer wins):

1. ``BASE_DEFAULTS`` (network, train) and each encoding's / policy's own signature defaults;
2. ``TASK_DEFAULTS[task]`` (network, train, encoding settings where the encoding takes them, policy
   settings per policy type);
3. the config given as a base (a file, a ``FitConfig``), when no method is named explicitly;
4. the method's preset (an encoding's declared ``preset``, or ``siren``) and a policy's rule
   (``sape+ENC`` feeds the raw coordinates as an always-open identity band);
5. the base config's network / train values, when a method *is* named explicitly;
6. the method string's settings (``gaussian:sigma=12:width=128``);
7. explicit overrides (``--sigma 12`` on the command line: ``{"encoding.sigma": 12}``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PosencError
from .validation import coerce


@dataclass
class NetworkConfig:
    """The coordinate network: ``mlp`` (ReLU / leaky-ReLU) or ``siren``. ``None`` = the task's default."""

    type: str | None = field(default=None, metadata={"help": "mlp or siren"})
    width: int | None = field(default=None, metadata={"help": "hidden units per layer"})
    depth: int | None = field(default=None, metadata={"help": "hidden layers"})
    activation: str | None = field(default=None, metadata={"help": "relu or leaky_relu (mlp)"})
    output: str | None = field(default=None, metadata={"help": "output activation: none or sigmoid"})
    omega0: float | None = field(default=None, metadata={"help": "SIREN's first-layer frequency"})


@dataclass
class TrainConfig:
    """Optimisation: Adam for ``iters`` steps; ``frames`` snapshots during training (0 = none).
    ``None`` = the task's default."""

    iters: int | None = field(default=None, metadata={"help": "training steps"})
    lr: float | None = field(default=None, metadata={"help": "Adam learning rate"})
    seed: int | None = field(default=None, metadata={"help": "seed of the network, encoding and batches"})
    threads: int | None = field(default=None, metadata={"help": "CPU threads (0 = torch's default)"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1, ..."})
    checkpoint_every: int | None = field(default=None, metadata={"help": "checkpoint every this many steps (0 = never by steps)"})
    checkpoint_seconds: float | None = field(default=None, metadata={"help": "also checkpoint after this much wall time (0 = only by steps)"})
    frames: int | None = field(default=None, metadata={"help": "snapshots during training, for frames.gif (0 = none)"})
    eval_every: int | None = field(default=None, metadata={"help": "report the held-out figures every this many steps (0 = at the end only)"})
    lr_schedule: str | None = field(default=None, metadata={"help": "constant or cosine (decays to lr_final_ratio * lr by the last step)"})
    lr_final_ratio: float | None = field(default=None, metadata={"help": "the cosine schedule's final lr, as a share of lr"})
    max_memory: float | None = field(default=None, metadata={"help": "GB a training step may use (estimate; default half the RAM): larger inputs train in mini-batches"})
    step_chunk: int | None = field(default=None, metadata={"help": "samples per forward/backward pass of a step larger than this (gradients accumulate; 0 = one pass; default 16384 on CPU, 0 on GPU)"})


@dataclass
class ImageConfig:
    """The image task: ``path`` ('' = scikit-image's astronaut); ``res`` the longest side in pixels
    (aspect kept) or ``"native"`` (the file's own size); ``crop`` ``"none"`` or ``"square"`` (centre
    crop first: the papers' protocol, which the benchmarks use); ``protocol`` fit or gen25; ``window``
    a centred square of that many pixels of the prepared image, fitted in place (0 = the whole image):
    the window keeps the whole image's coordinates, so the pixel density, the frequencies per pixel and
    SAPE's mask cells are the whole image's and only the field of view shrinks (the CPU scale)."""

    path: str = ""
    res: int | str = 256
    protocol: str = "gen25"
    crop: str = "none"
    window: int = 0
    batch: int = 0  # training pixels per step; 0 = all of them when that fits --max-memory, else 65,536


@dataclass
class Signal1DConfig:
    """The 1-D task: ``path`` ('' = the built-in signal, or a .npy / .csv column), ``samples`` regularly
    spaced training samples, evaluation on ``eval_points`` dense points."""

    path: str = ""
    samples: int = 128
    eval_points: int = 2048


@dataclass
class SilhouetteConfig:
    """The silhouette task: ``path`` (GIF/PNG, white shape on black; '' = a built-in star), ``points``
    curve samples optimised, ``target_points`` on the target contour, ``calib_iters`` of calibration to
    the unit circle (at ``calib_lr``), ``raster`` side for the IoU."""

    path: str = ""
    points: int = 500
    target_points: int = 2000
    calib_iters: int = 2000
    calib_lr: float = 1e-4
    raster: int = 512


@dataclass
class ShapeConfig:
    """The 3-D tasks (``sdf``, ``occupancy``): ``path`` (OBJ/OFF/PLY/STL; '' = a built-in torus),
    ``samples`` training points (PROTOCOLS.md three-way sampling) drawn in mini-batches of ``batch``,
    ``eval_points`` uniform + as many near-surface points for IoU, marching cubes at ``mc_res``,
    ``chamfer_points`` per surface for Chamfer / Hausdorff, ``sample_seed`` for every random draw;
    ``eikonal`` (sdf only) weighs the eikonal term ``(|grad f| - 1)^2`` (IGR, SIREN)."""


    path: str = ""
    samples: int = 300000
    batch: int = 16384
    eval_points: int = 1000000
    mc_res: int = 128
    chamfer_points: int = 100000
    sample_seed: int = 0
    eikonal: float = 0.0


# task name -> its data config class; input and output dimension of its field
@dataclass
class MeshTransferConfig:
    """Mesh transfer (SAPE Sec. 5.1): ``path`` the source mesh and ``target`` the target ('' for both =
    a built-in sphere and a rippled copy); ``landmarks`` a CSV of ``source_vertex,target_vertex`` pairs
    or ``auto``; ``points`` surface samples of the moved mesh per step (and as many target points, from
    a pool of ``target_points``); ``conformal`` the weight of the conformal energy; ``eval_points``
    per surface for Chamfer / Hausdorff; ``sample_seed`` for the target pool and the evaluation."""

    path: str = ""
    target: str = ""
    landmarks: str = "auto"
    points: int = 5000
    target_points: int = 50000
    conformal: float = 0.01
    eval_points: int = 100000
    sample_seed: int = 0


TASK_CONFIGS: dict[str, type] = {"image": ImageConfig, "signal1d": Signal1DConfig, "silhouette": SilhouetteConfig,
                                 "sdf": ShapeConfig, "occupancy": ShapeConfig, "mesh-transfer": MeshTransferConfig}
TASK_DIMS: dict[str, tuple[int, int]] = {"image": (2, 3), "signal1d": (1, 1), "silhouette": (1, 2), "sdf": (3, 1),
                                         "occupancy": (3, 1), "mesh-transfer": (3, 3)}

# every network and training default, in one place (a task may override them in TASK_DEFAULTS)
BASE_DEFAULTS: dict[str, dict[str, Any]] = {
    "network": {"type": "mlp", "width": 256, "depth": 3, "activation": "relu", "output": "none", "omega0": 30.0},
    "train": {"iters": 2000, "lr": 1e-3, "seed": 0, "threads": 0, "device": "cpu", "checkpoint_every": 500, "checkpoint_seconds": 60.0, "frames": 0, "eval_every": 0,
              "lr_schedule": "constant", "lr_final_ratio": 0.1, "max_memory": None,
              "step_chunk": None},
}


def machine_memory_gb() -> float:
    """Physical memory of this machine in GB (Linux / macOS sysconf; 8 GB if unknown)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return 8.0


CPU_STEP_CHUNK = 16384  # 16,384 x 256 floats = 16 MB: each activation stays below glibc's 32 MB mmap threshold


def default_step_chunk(device: str) -> int:
    """Samples per pass of a large training step: 16,384 on a CPU (``posenc.train.bound_step``), one pass
    (0) on a GPU, where nothing is gained by splitting."""
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return CPU_STEP_CHUNK if device.startswith("cpu") else 0


def default_max_memory() -> float:
    """A safe share of the machine's RAM for one run: half of it, in GB (one decimal)."""
    return round(machine_memory_gb() / 2, 1)
# Per-task defaults that differ from BASE_DEFAULTS, and encoding settings applied to every encoding
# that takes them. Outputs: sigmoid for colours in [0, 1], linear for everything else.
# Silhouettes follow the public SAPE setting for curves: 2 hidden layers, lr 1e-5, 10,000 iterations;
# a closed curve: periodic encodings of p where an encoding has that option, and no raw p channel (it
# is not periodic), so SAPE opens the lowest band first.
# "progressive" holds per-policy settings: on images SAPE box-blurs the cell masks and the cell losses
# over 5x5 cells (as the public SAPE code does at grids above 100 cells). In gen25 the held-out pixels
# sit between training pixels, so they see mixes of neighbouring cell masks that no training pixel saw;
# the blur keeps neighbouring masks alike. Chosen on the validation image kodim24 (PSNR 25.50 vs 25.19
# dB unblurred, sigma 10; benchmarks/README.md).
TASK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "image": {"network": {"output": "sigmoid"}, "progressive": {"spatial": {"mask_blur": 5, "smooth": 5}}},
    "signal1d": {},
    "silhouette": {"network": {"depth": 2}, "train": {"iters": 10000, "lr": 1e-5},
                   "encoding": {"periodic": True, "include_input": False}},
    "sdf": {},
    "occupancy": {},
    # geometry: the paper's epsilon for SAPE's feedback (squared distances are small)
    "mesh-transfer": {"progressive": {"spatial": {"epsilon": 1e-2}, "global": {"epsilon": 1e-2}}},
}
DEFAULT_METHOD = "gaussian"


def task_policy_defaults(task: str, policy: str) -> dict[str, Any]:
    """Settings a task gives a progressive policy unless told otherwise (``{}`` = the policy's own)."""
    return dict(TASK_DEFAULTS.get(task, {}).get("progressive", {}).get(policy, {}))


@dataclass
class FitConfig:
    """One fit: task data, method, encoding and progressive policy (registry config dicts), network,
    training. Unset parts (``None``) are the task's defaults; see :func:`resolve_config`."""

    task: str = "image"
    method: str = DEFAULT_METHOD
    data: Any = None
    encoding: dict[str, Any] | None = None
    progressive: dict[str, Any] | None = None
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.task not in TASK_CONFIGS:
            raise PosencError(f"unknown task {self.task!r}; valid: {', '.join(TASK_CONFIGS)}")
        if self.data is None:
            self.data = TASK_CONFIGS[self.task]()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FitConfig":
        """A config from a mapping (a config file, a stored model): every value type-checked."""
        if not isinstance(data, dict):
            raise PosencError("config must be a mapping")
        data = dict(data)
        task = data.get("task", "image")
        if task not in TASK_CONFIGS:
            raise PosencError(f"unknown task {task!r}; valid: {', '.join(TASK_CONFIGS)}")
        payload = data.pop("data", {})
        cfg = _from_dict(cls, data, "config")
        cfg.data = _from_dict(TASK_CONFIGS[task], payload if payload is not None else {}, "config.data")
        return cfg

    @classmethod
    def for_task(cls, task: str, method: str | None = None, **fields: Any) -> "FitConfig":
        """The complete config of ``task`` (optionally running ``method``; ``fields`` as FitConfig's,
        e.g. ``train=TrainConfig(iters=100)``), resolved."""
        return resolve_config(cls(task=task, **fields), method=method)


def _from_dict(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise PosencError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise PosencError(f"unknown key(s) in {where}: {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _from_dict(hint, value if value is not None else {}, f"{where}.{key}")
        elif key in ("encoding", "progressive"):
            if value is not None and not isinstance(value, dict):
                raise PosencError(f"{where}.{key} must be a mapping, got {value!r}")
            kwargs[key] = dict(value) if value is not None else None
        elif hint is Any:
            kwargs[key] = value
        else:
            kwargs[key] = coerce(key, value, hint, f"{where}.")
    return cls(**kwargs)


# -- the resolver ----------------------------------------------------------------------------------
NETWORK_KEYS = tuple(f.name for f in dataclasses.fields(NetworkConfig) if f.name != "type")
TRAIN_KEYS = ("lr", "lr_schedule", "lr_final_ratio", "iters")  # training settings a method string may carry
DATA_KEYS = ("eikonal",)  # loss terms of a task a method string may carry (``lpe:eikonal=0.1``)


def _section_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def resolve_config(base: "FitConfig | dict[str, Any] | str", method: str | None = None,
                   overrides: dict[str, Any] | None = None) -> FitConfig:
    """The complete run config: every setting filled in, typed and checked, nothing left to decide.

    ``base`` is a task name, a (partial) :class:`FitConfig` or its dict (a config file); ``method``
    names the method explicitly (``"sape+gaussian:sigma=20"``; default: the base's); ``overrides``
    maps dotted keys to values (``{"train.iters": 500, "encoding.sigma": 12, "data.res": 128}``).
    Resolving a resolved config changes nothing.
    """
    from .encodings import encoding_class
    from .methods import POLICY_PREFIXES, PRESETS, parse_method
    from .progressive import POLICIES, policy_parameters

    if isinstance(base, str):
        cfg = FitConfig(task=base)
    elif isinstance(base, dict):
        cfg = FitConfig.from_dict(base)
    elif isinstance(base, FitConfig):
        cfg = copy.deepcopy(base)
        cfg.data = _from_dict(TASK_CONFIGS[cfg.task], dataclasses.asdict(cfg.data) if dataclasses.is_dataclass(cfg.data)
                              else (cfg.data or {}), "config.data")
    else:
        raise PosencError(f"a run config is a task name, a FitConfig or a mapping, got {type(base).__name__}")
    task = cfg.task
    in_dim = TASK_DIMS[task][0]
    explicit = method is not None
    spec = method if explicit else (cfg.method or DEFAULT_METHOD)
    if not isinstance(spec, str) or not spec.strip():
        raise PosencError(f"method must be a method name such as gaussian or sape+gaussian, got {spec!r}")
    name, settings = parse_method(spec)
    prefix, _, enc_name = name.rpartition("+")
    task_defaults = TASK_DEFAULTS.get(task, {})
    preset = PRESETS.get(enc_name) or {"encoding": {"type": enc_name}, **encoding_class(enc_name).preset}
    overrides = dict(overrides or {})
    for key in overrides:
        if key.count(".") != 1 or key.split(".")[0] not in ("network", "train", "data", "encoding", "progressive"):
            raise PosencError(f"override keys look like 'train.iters' or 'encoding.sigma', got {key!r}")

    # network and training: base < task < (base) < preset < (base, explicit method) < method settings < overrides
    sections: dict[str, dict[str, Any]] = {}
    for section, cls in (("network", NetworkConfig), ("train", TrainConfig)):
        values = dict(BASE_DEFAULTS[section])
        values.update(task_defaults.get(section, {}))
        given = {k: v for k, v in dataclasses.asdict(getattr(cfg, section)).items() if v is not None}
        if not explicit:
            values.update(given)
        values.update(preset.get(section, {}) if explicit or not given else
                      {k: v for k, v in preset.get(section, {}).items() if k not in given})
        if explicit:
            values.update({k: v for k, v in given.items() if k not in preset.get(section, {})})
        sections[section] = values

    # encoding and policy: from the method (explicit, or the base has none), else the base's own
    policy_type = POLICY_PREFIXES[prefix] if prefix else "none"
    if explicit or cfg.encoding is None:
        encoding = dict(preset["encoding"])
        enc_keys = encoding_class(encoding["type"]).defaults()
        if policy_type != "none" and "include_input" in enc_keys:
            encoding["include_input"] = True  # SAPE keeps the raw coordinates always open
        encoding.update({k: v for k, v in task_defaults.get("encoding", {}).items() if k in enc_keys})
    else:
        encoding = dict(cfg.encoding)
        if "type" not in encoding:
            raise PosencError("config.encoding needs a 'type'")
    if explicit or cfg.progressive is None:
        progressive: dict[str, Any] = {"type": policy_type}
    else:
        progressive = dict(cfg.progressive)
        progressive.setdefault("type", "none")
    enc_cls = encoding_class(encoding["type"])
    enc_keys = enc_cls.defaults()
    all_policy = policy_parameters()
    if progressive["type"] not in all_policy:
        raise PosencError(f"unknown progressive policy {progressive['type']!r}; valid: {', '.join(all_policy)}")

    # the method string's settings go where they belong
    for key, value in settings.items():
        if key in NETWORK_KEYS:
            sections["network"][key] = value
        elif key in TRAIN_KEYS:
            sections["train"][key] = value
        elif key in DATA_KEYS and key in {f.name for f in dataclasses.fields(cfg.data)}:
            setattr(cfg.data, key, coerce(key, value, _section_hints(type(cfg.data))[key], "data."))
        elif progressive["type"] != "none" and key in all_policy[progressive["type"]]:
            progressive[key] = value
        elif key in enc_keys:
            encoding[key] = value
        else:
            valid = sorted(set(enc_keys) | set(NETWORK_KEYS) | set(TRAIN_KEYS) | set(all_policy[progressive["type"]]))
            raise PosencError(f"method {name!r} has no setting {key!r}; valid: {', '.join(valid)}")

    # explicit overrides (command-line flags)
    data = cfg.data
    data_fields = {f.name for f in dataclasses.fields(data)}
    for key, value in overrides.items():
        section, setting = key.split(".")
        if section in sections:
            if setting not in sections[section]:
                raise PosencError(f"unknown {section} setting {setting!r}; valid: {', '.join(sorted(sections[section]))}")
            sections[section][setting] = value
        elif section == "data":
            if setting not in data_fields:
                raise PosencError(f"the {task} task has no setting {setting!r}; it takes: {', '.join(sorted(data_fields))}")
            setattr(data, setting, coerce(setting, value, _section_hints(type(data))[setting], "data."))
        elif section == "encoding":
            if setting not in enc_keys:
                raise PosencError(f"encoding {encoding['type']!r} has no setting {setting!r}; it takes: "
                                  f"{', '.join(sorted(enc_keys)) or 'nothing'}")
            encoding[setting] = value
        else:
            allowed = all_policy[progressive["type"]]
            if setting not in allowed:
                raise PosencError(f"--{setting.replace('_', '-')} needs a progressive policy that takes it "
                                  f"(--progressive spatial); policy {progressive['type']!r} takes: {', '.join(allowed) or 'nothing'}")
            progressive[setting] = value

    # complete and type-check every part
    net_hints, train_hints = _section_hints(NetworkConfig), _section_hints(TrainConfig)
    network = NetworkConfig(**{k: coerce(k, v, net_hints[k], "network.") for k, v in sections["network"].items()})
    if sections["train"].get("max_memory") is None:
        sections["train"]["max_memory"] = default_max_memory()
    if sections["train"].get("step_chunk") is None:
        sections["train"]["step_chunk"] = default_step_chunk(str(sections["train"].get("device") or "cpu"))
    train = TrainConfig(**{k: coerce(k, v, train_hints[k], "train.") for k, v in sections["train"].items()})
    hints = enc_cls.settings()
    unknown = sorted(set(encoding) - set(hints) - {"type"})
    if unknown:
        raise PosencError(f"encoding {encoding['type']!r} does not take {', '.join(unknown)}; it takes: {', '.join(sorted(hints)) or 'nothing'}")
    full_enc = {"type": encoding["type"], **enc_cls.defaults(in_dim)}
    for key, value in encoding.items():
        if key == "type":
            continue
        if value is None or (value == 0 and hints[key][1] is None and not isinstance(value, bool)):
            continue  # "by input dimension" (0 is the legacy spelling): the resolved default stays
        full_enc[key] = coerce(key, value, hints[key][0], f"{encoding['type']}: ")
    if progressive["type"] == "none":
        extra = sorted(set(progressive) - {"type"})
        if extra:
            raise PosencError(f"{', '.join(extra)} need a progressive policy (sape+ or progressive+ a method, or --progressive)")
        full_policy: dict[str, Any] = {"type": "none"}
    else:
        pcls = POLICIES[progressive["type"]]
        phints = pcls.settings()
        full_policy = {"type": progressive["type"], **policy_parameters(in_dim)[progressive["type"]],
                       **task_policy_defaults(task, progressive["type"])}
        for key, value in progressive.items():
            if key == "type":
                continue
            if key not in phints or key == "iters":
                raise PosencError(f"policy {progressive['type']!r} has no setting {key!r}; it takes: "
                                  f"{', '.join(k for k in phints if k != 'iters')}")
            if value is None or (key == "mask_grid" and value == 0):
                continue  # by input dimension (0: the legacy spelling)
            full_policy[key] = coerce(key, value, phints[key][0], f"{progressive['type']}: ")
    return FitConfig(task=task, method=spec.strip(), data=data, encoding=full_enc, progressive=full_policy,
                     network=network, train=train)


def save_config(config: FitConfig, path: str | Path) -> None:
    from .io import atomic_write_text

    atomic_write_text(path, json.dumps(config.to_dict(), indent=2) + "\n")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a ``.json`` or ``.yaml``/``.yml`` config file (safe loaders only)."""
    path = Path(path)
    if not path.is_file():
        raise PosencError(f"config file not found: {path}")
    try:
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse error is the user's file
        raise PosencError(f"cannot parse config {path}: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise PosencError(f"config {path} must hold a mapping, got {type(data).__name__}")
    return data


def load_config(path: str | Path) -> FitConfig:
    """Read a FitConfig from ``.json`` or ``.yaml``/``.yml`` (typed; unset parts stay unset)."""
    return FitConfig.from_dict(read_config_file(path))


def dump_yaml(config: FitConfig) -> str:
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)
