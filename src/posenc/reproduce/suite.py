"""Reproduction suites as data: one TOML file per paper table (``reproduce/suites/<name>.toml``).

A suite names its **columns** (a data set under a task and protocol: test images and, for rows that
search a setting, validation images), its **rows** (a method string, or a classical baseline such as
``bilinear``), the seeds every cell pools, the row the others are compared with, the settings of each
**scale** (``cpu``: what is committed; ``paper``: the paper's sizes) and the paper's figure for each cell.

A row may **select** one of its settings on the validation images before it runs on the test images::

    select = { param = "sigma", values = [5, 7, 10, 14], metric = "psnr", rule = "max" }

(on a column without validation inputs the row runs its method as written, or the one ``method_on``
names for that column: ``method_on = { silhouettes = "gaussian:sigma=10" }``), and another row may
**derive** its setting from that pick (SAPE's "twice the FF sigma")::

    select = { like = "gaussian", param = "sigma", factor = 2 }

A row with ``sweep = { param = "sigma", values = [...] }`` becomes one row per value (``gaussian
sigma=5``, ...), and the report plots the metric against the value (SAPE Fig. 7).

``montages`` (default 2) is how many test inputs of each column the report pictures with every row; a
fresh clone redraws them by refitting those seed-0 fits, so a suite of slow fits may picture fewer.

``measured`` records what a committed run of the suite cost, by scale, so ``posenc reproduce --list``
can show it beside the FLOP estimate (a test keeps it equal to the committed report's figures)::

    [measured.cpu]
    cpu_hours = 3.03
    wall_hours = 1.53
    machine = "2 cores, 2 workers x 1 thread"
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import PosencError

SCALES = ("cpu", "paper")  # every suite has these two; a suite may name more (a pilot's candidate scales)
SCALE_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")
TASKS = ("image", "signal1d", "silhouette", "sdf", "occupancy", "mesh-transfer")
BASELINES = ("bilinear", "bicubic")


@dataclass(frozen=True)
class Select:
    """How a row picks one setting: ``values`` searched on the validation images (``metric``, ``rule``
    max or min, over ``seeds`` seeds), or ``like`` another row's pick times ``factor``."""

    param: str
    values: tuple[float, ...] = ()
    metric: str = ""
    rule: str = "max"
    seeds: int = 1
    like: str = ""
    factor: float = 1.0


@dataclass(frozen=True)
class Column:
    """A data set under one task: ``data`` (a folder under the data root, or under the working folder
    when it starts with ``./``; ``prepare`` names the command that makes it), ``test`` and ``validation``
    file stems, data ``settings`` (``protocol``, ``crop``, ...), run ``overrides`` (dotted keys),
    ``metric`` (the cell's figure) with its ``digits``, and ``match_params`` (size every method to this
    many learned parameters; 0 = each method's own size)."""

    name: str
    task: str
    data: str
    test: tuple[str, ...]
    metric: str
    validation: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    digits: int = 2
    match_params: int = 0
    higher_is_better: bool = True
    compare_paper: bool = True  # False: the paper's figure is shown, not subtracted (other units or scale)
    prepare: str = ""  # the command that makes a generated data folder, named when it is missing


@dataclass(frozen=True)
class Row:
    """One method (``method``) or classical baseline (``baseline``), run on ``columns`` (default all),
    with optional ``select`` and ``paper`` figures by column (a number, or ``[mean, std]``)."""

    name: str
    method: str = ""
    baseline: str = ""
    columns: tuple[str, ...] = ()
    select: Select | None = None
    paper: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    sweep_param: str = ""
    sweep_value: float | None = None
    method_on: dict[str, str] = field(default_factory=dict)  # column -> the method this row runs there instead


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    source: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    reference: str
    seeds: int = 3
    scales: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    notes: str = ""
    path: str = ""
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)  # scale -> cpu_hours, wall_hours, machine
    montages: int = 2  # the report pictures every row on the first K test inputs of each column

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def rows_of(self, column: Column) -> list[Row]:
        return [r for r in self.rows if not r.columns or column.name in r.columns]

    def sweeps(self) -> dict[str, list[Row]]:
        """Rows made from one ``sweep``, by their base name."""
        out: dict[str, list[Row]] = {}
        for r in self.rows:
            if r.sweep_param:
                out.setdefault(r.name.rsplit(" ", 1)[0], []).append(r)
        return out


def suite_folder() -> Path:
    return Path(str(resources.files("posenc.reproduce") / "suites"))


def list_suites() -> list[Suite]:
    return [load_suite(p) for p in sorted(suite_folder().glob("*.toml"))]


def load_suite(name: str | Path) -> Suite:
    """A shipped suite by name, or a suite file by path; every key checked (PosencError naming it)."""
    path = Path(name)
    if path.suffix != ".toml":
        path = suite_folder() / f"{name}.toml"
        if not path.exists():
            known = ", ".join(p.stem for p in sorted(suite_folder().glob("*.toml")))
            raise PosencError(f"unknown suite {str(name)!r}; suites: {known} (or a path to a .toml suite file)")
    if not path.is_file():
        raise PosencError(f"suite file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PosencError(f"{path}: not a valid TOML suite file ({e})") from None
    try:
        return _parse(raw, str(path))
    except PosencError as e:
        raise PosencError(f"{path}: {e}") from None


# -- parsing ------------------------------------------------------------------------------------
def _take(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    if key not in raw:
        if default is ...:
            raise PosencError(f"{where} needs '{key}'")
        return default
    value = raw.pop(key)
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise PosencError(f"{where}.{key} must be a number, got {value!r}")
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise PosencError(f"{where}.{key} must be {names}, got {value!r}")
    return value


def _done(raw: dict[str, Any], where: str) -> None:
    if raw:
        raise PosencError(f"{where}: unknown key(s) {', '.join(sorted(raw))}")


def _names(values: Any, where: str) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise PosencError(f"{where} must be a list of names, got {values!r}")
    return tuple(values)


def _numbers(values: Any, where: str) -> tuple[float, ...]:
    if (not isinstance(values, list) or not values
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
        raise PosencError(f"{where} must be a non-empty list of numbers, got {values!r}")
    return tuple(values)


def _select(raw: Any, where: str) -> Select:
    if not isinstance(raw, dict):
        raise PosencError(f"{where} must be a table")
    raw = dict(raw)
    param = _take(raw, "param", str, where)
    like = _take(raw, "like", str, where, "")
    if like:
        factor = float(_take(raw, "factor", (int, float), where, 1.0))
        _done(raw, where)
        return Select(param=param, like=like, factor=factor)
    values = _numbers(_take(raw, "values", list, where), f"{where}.values")
    metric = _take(raw, "metric", str, where, "")
    rule = _take(raw, "rule", str, where, "max")
    if rule not in ("max", "min"):
        raise PosencError(f"{where}.rule must be max or min, got {rule!r}")
    seeds = _take(raw, "seeds", int, where, 1)
    if seeds < 1:
        raise PosencError(f"{where}.seeds must be >= 1, got {seeds}")
    _done(raw, where)
    return Select(param=param, values=values, metric=metric, rule=rule, seeds=seeds)


def _paper(raw: Any, where: str) -> dict[str, tuple[float, float | None]]:
    if not isinstance(raw, dict):
        raise PosencError(f"{where} must be a table of column = figure")
    out: dict[str, tuple[float, float | None]] = {}
    for col, v in raw.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[col] = (float(v), None)
        elif isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
            out[col] = (float(v[0]), float(v[1]))
        else:
            raise PosencError(f"{where}.{col} must be a number or [mean, std], got {v!r}")
    return out


def _parse(raw: dict[str, Any], path: str) -> Suite:
    raw = dict(raw)
    name = _take(raw, "name", str, "suite")
    title = _take(raw, "title", str, "suite")
    source = _take(raw, "source", str, "suite", "")
    notes = _take(raw, "notes", str, "suite", "")
    seeds = _take(raw, "seeds", int, "suite", 3)
    if not 1 <= seeds <= 100:
        raise PosencError(f"suite.seeds must be 1-100, got {seeds}")
    reference = _take(raw, "reference", str, "suite")
    montages = _take(raw, "montages", int, "suite", 2)
    if not 0 <= montages <= 10:
        raise PosencError(f"suite.montages must be 0-10 (pictured test inputs per column), got {montages}")
    scales_raw = _take(raw, "scales", dict, "suite", {})
    scales: dict[str, dict[str, dict[str, Any]]] = {}
    for scale, by_task in scales_raw.items():
        if not SCALE_NAME.fullmatch(scale):
            raise PosencError(f"scales.{scale}: a scale name is lower-case letters, digits and '-' (e.g. cpu, paper, window128)")
        if not isinstance(by_task, dict) or not all(t in TASKS and isinstance(v, dict) for t, v in by_task.items()):
            raise PosencError(f"scales.{scale} must map task names ({', '.join(TASKS)}) to settings (data settings, or dotted keys such as \"train.iters\")")
        scales[scale] = by_task
    columns = []
    for i, c in enumerate(_take(raw, "columns", list, "suite")):
        where = f"columns[{i}]"
        if not isinstance(c, dict):
            raise PosencError(f"{where} must be a table")
        c = dict(c)
        task = _take(c, "task", str, where)
        if task not in TASKS:
            raise PosencError(f"{where}.task: unknown task {task!r}; valid: {', '.join(TASKS)}")
        col = Column(
            name=_take(c, "name", str, where), task=task, data=_take(c, "data", str, where),
            test=_names(_take(c, "test", list, where), f"{where}.test"),
            validation=_names(_take(c, "validation", list, where, []), f"{where}.validation"),
            metric=_take(c, "metric", str, where), digits=_take(c, "digits", int, where, 2),
            settings=_take(c, "settings", dict, where, {}), overrides=_take(c, "overrides", dict, where, {}),
            match_params=_take(c, "match_params", int, where, 0),
            higher_is_better=_take(c, "higher_is_better", bool, where, True),
            compare_paper=_take(c, "compare_paper", bool, where, True),
            prepare=_take(c, "prepare", str, where, ""),
        )
        _done(c, where)
        if not col.test:
            raise PosencError(f"{where}.test is empty")
        columns.append(col)
    if not columns:
        raise PosencError("a suite needs at least one column")
    col_names = [c.name for c in columns]
    if len(set(col_names)) != len(col_names):
        raise PosencError(f"column names repeat: {col_names}")
    rows: list[Row] = []
    for i, r in enumerate(_take(raw, "rows", list, "suite")):
        where = f"rows[{i}]"
        if not isinstance(r, dict):
            raise PosencError(f"{where} must be a table")
        r = dict(r)
        rname = _take(r, "name", str, where)
        method = _take(r, "method", str, where, "")
        baseline = _take(r, "baseline", str, where, "")
        if bool(method) == bool(baseline):
            raise PosencError(f"{where} ({rname}) needs exactly one of 'method' and 'baseline'")
        if baseline and baseline not in BASELINES:
            raise PosencError(f"{where}.baseline: unknown baseline {baseline!r}; valid: {', '.join(BASELINES)}")
        cols = _names(_take(r, "columns", list, where, []), f"{where}.columns")
        for cn in cols:
            if cn not in col_names:
                raise PosencError(f"{where}.columns: no column named {cn!r}")
        select = _select(r.pop("select"), f"{where}.select") if "select" in r else None
        paper = _paper(_take(r, "paper", dict, where, {}), f"{where}.paper")
        for cn in paper:
            if cn not in col_names:
                raise PosencError(f"{where}.paper: no column named {cn!r}")
        sweep = _take(r, "sweep", dict, where, None)
        method_on = _take(r, "method_on", dict, where, {})
        for cn, m in method_on.items():
            if cn not in col_names or not isinstance(m, str):
                raise PosencError(f"{where}.method_on must map column names to method strings, got {cn!r} = {m!r}")
            from ..methods import parse_method

            parse_method(m)
        _done(r, where)
        if method:
            from ..methods import parse_method

            parse_method(method)  # a malformed method string fails here, before any run
        if sweep is not None:
            sweep = dict(sweep)
            param = _take(sweep, "param", str, f"{where}.sweep")
            values = _numbers(_take(sweep, "values", list, f"{where}.sweep"), f"{where}.sweep.values")
            _done(sweep, f"{where}.sweep")
            if select is not None or baseline:
                raise PosencError(f"{where}: a sweep row cannot also select or be a baseline")
            for v in values:
                rows.append(Row(name=f"{rname} {param}={v:g}", method=with_setting(method, param, v), columns=cols,
                                paper={}, sweep_param=param, sweep_value=float(v)))
        else:
            rows.append(Row(name=rname, method=method, baseline=baseline, columns=cols, select=select, paper=paper,
                            method_on=method_on))
    row_names = [r.name for r in rows]
    if len(set(row_names)) != len(row_names):
        raise PosencError(f"row names repeat: {row_names}")
    if reference not in row_names:
        raise PosencError(f"reference row {reference!r} is not a row; rows: {', '.join(row_names)}")
    for r in rows:
        if r.select and r.select.like:
            if r.select.like not in row_names:
                raise PosencError(f"row {r.name}: select.like names no row ({r.select.like!r})")
            src = next(x for x in rows if x.name == r.select.like)
            if src.select is None or src.select.like:
                raise PosencError(f"row {r.name}: select.like must name a row that searches on validation images")
    measured = _measured(_take(raw, "measured", dict, "suite", {}))
    for scale in measured:
        if scale not in SCALES and scale not in scales:
            raise PosencError(f"measured.{scale}: unknown scale; valid: {', '.join([*SCALES, *(k for k in scales if k not in SCALES)])}")
    _done(raw, "suite")
    return Suite(name=name, title=title, source=source, columns=tuple(columns), rows=tuple(rows), reference=reference,
                 seeds=seeds, scales=scales, notes=notes, path=path, measured=measured, montages=montages)


def _measured(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for scale, m in raw.items():
        where = f"measured.{scale}"
        if not SCALE_NAME.fullmatch(scale):
            raise PosencError(f"{where}: a scale name is lower-case letters, digits and '-'")
        if not isinstance(m, dict):
            raise PosencError(f"{where} must be a table (cpu_hours, wall_hours, machine)")
        m = dict(m)
        entry = {"cpu_hours": float(_take(m, "cpu_hours", (int, float), where)),
                 "wall_hours": _take(m, "wall_hours", (int, float), where, None),  # absent: not fully recorded
                 "machine": _take(m, "machine", str, where, "")}
        _done(m, where)
        if entry["wall_hours"] is not None:
            entry["wall_hours"] = float(entry["wall_hours"])
        if entry["cpu_hours"] < 0 or (entry["wall_hours"] is not None and entry["wall_hours"] < 0):
            raise PosencError(f"{where}: hours must be >= 0")
        out[scale] = entry
    return out


def with_setting(method: str, param: str, value: Any) -> str:
    """``method`` with ``param`` set to ``value`` (replacing it if present): ``gaussian:sigma=10``."""
    from ..methods import parse_method

    name, settings = parse_method(method)
    settings = dict(settings)
    settings[param] = value
    parts = [name] + [f"{k}={_fmt(v)}" for k, v in settings.items()]
    return ":".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
