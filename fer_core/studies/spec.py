"""A study file (studies/*.toml) parsed and validated into trials, before anything runs. Torch- and Ray-free.

    name = "optimizers"                      # the study's name (letters, digits, - and _)
    description = "Adam against SGD ..."
    seeds = 3                                # each point is trained with seeds 0..seeds-1
    baseline = { optimizer = "adam" }        # the point every other point is tested against (default: the
                                             # first value of every axis)
    [base]                                   # TrainConfig fields shared by every trial (model included), over
                                             # each model's own recipe (fer_core.training.presets)
    model = "keras_cnn"
    [axes]                                   # TrainConfig fields (or model) -> the values to try, or (random
    optimizer = ["adam", "sgd"]              # and TPE searches) a range: { low = 1e-4, high = 1e-2, log = true }
    [budget]                                 # per trial: epochs = N, or minutes = M (cosine over time)
    epochs = 30
    [search]                                 # kind = "grid" (every point), "random" (samples points) or "tpe"
                                             # (samples points, each chosen by Optuna's TPE from the trials
                                             # before it, through Ray Tune; one seed each; baseline first);
                                             # early_stop = "asha" stops trials that trail the others at
                                             # epochs grace_epochs, 2 x grace_epochs, ... (on select_by);
                                             # concurrent = N runs at most N trials at once
    kind = "grid"
    [profiles.quick]                         # overrides: train_fraction, epochs or minutes, seeds, samples,
                                             # grace_epochs
    train_fraction = 0.1
    epochs = 2
    [profiles.full]

A bad file is refused with one line that names the file and the field.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..models import get_spec
from ..repository import REPO
from ..training.config import TrainConfig
from ..training.presets import make_config

SEARCHES = ("grid", "random", "tpe")
PROFILE_FIELDS = ("train_fraction", "epochs", "minutes", "seeds", "samples", "grace_epochs")
# Fields a study sets itself: every trial's seed, data and device come from the run, not from the file.
RUN_FIELDS = ("seed", "data", "device", "epochs", "time_budget_min", "train_fraction")
# The fields the Studies page offers as an axis (any TrainConfig field works in a file).
STUDY_FIELDS = (
    "optimizer",
    "lr",
    "batch_size",
    "weight_decay",
    "scheduler",
    "augment",
    "balance",
    "label_smoothing",
    "mixup_alpha",
    "activation",
    "norm",
    "dropout",
    "blur_pool",
    "soft_labels",
    "labels",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class StudyError(ValueError):
    """A study file that cannot run; the message names the file and the field."""


@dataclass(frozen=True)
class Profile:
    """How big the trials are: `quick` for minutes on a 2-core CPU, `full` for a GPU or a cluster."""

    train_fraction: float = 1.0
    epochs: int | None = None
    minutes: float | None = None
    seeds: int | None = None
    samples: int | None = None
    grace_epochs: int | None = None  # ASHA's first rung for this profile's budget


@dataclass(frozen=True)
class Range:
    """An axis searched over an interval by random and TPE searches: log-uniform when `log`, whole numbers when both
    ends are whole."""

    low: float
    high: float
    log: bool = False

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and self.low <= value <= self.high

    def sample(self, rng: random.Random) -> float:
        """A value drawn like Ray Tune's (log)uniform / randint would, rounded to 3 significant digits (readable)."""
        ends = (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)
        value = rng.uniform(*ends)
        value = math.exp(value) if self.log else value
        return min(max(round(value), int(self.low)), int(self.high)) if self.integer else float(f"{value:.3g}")


Axis = tuple[Any, ...] | Range


@dataclass(frozen=True)
class Trial:
    id: str  # "p03-s1": point 3, seed 1 (stable: a resumed study recognises its finished trials)
    point: dict[str, Any]  # axis -> value
    seed: int
    config: TrainConfig


@dataclass(frozen=True)
class StudySpec:
    name: str
    description: str
    base: dict[str, Any]
    axes: dict[str, Axis]
    seeds: int
    epochs: int | None
    minutes: float | None
    search: str
    samples: int | None
    early_stop: str | None  # "asha" or None
    grace_epochs: int  # ASHA's first rung: every trial trains at least this many epochs
    concurrent: int | None  # at most this many trials at once (None: as many as the resources allow)
    profiles: dict[str, Profile]
    baseline: dict[str, Any]
    source: str  # the file it came from

    def samples_of(self, profile: str) -> int | None:
        return self.profile(profile).samples or self.samples

    def grace_of(self, profile: str) -> int:
        return self.profile(profile).grace_epochs or self.grace_epochs

    def points(self, profile: str) -> list[dict[str, Any]]:
        """The points of the axes the study trains: all of them (grid), or `samples` drawn with seed 0 (random);
        the baseline is always among them. A TPE search chooses its points while it runs."""
        if self.search == "tpe":
            raise StudyError(f"{self.source}: a TPE search chooses its points while it runs")
        samples = self.samples_of(profile)
        listed = {k: axis for k, axis in self.axes.items() if not isinstance(axis, Range)}
        if len(listed) < len(self.axes):
            assert samples is not None  # parse_study: ranges only with a number of samples
            rng, points = random.Random(0), [self.baseline]
            for _ in range(100 * samples):  # draws until `samples` distinct points (a small integer range may have fewer)
                point = {k: axis.sample(rng) if isinstance(axis, Range) else rng.choice(axis) for k, axis in self.axes.items()}
                points += [point] if point not in points else []
                if len(points) == samples:
                    break
            return points
        grid = _grid(listed)
        if self.search == "grid" or samples is None or samples >= len(grid):
            return grid
        others = [p for p in grid if p != self.baseline]
        return [self.baseline, *random.Random(0).sample(others, samples - 1)]

    def trial_ids(self, profile: str) -> list[str]:
        """Every trial's id; a TPE search's ids ("t00", "t01", ...) take its points in the order Tune starts them."""
        if self.search == "tpe":
            return [f"t{i:02d}" for i in range(self.samples_of(profile) or 0)]
        return [t.id for t in self.trials(profile)]

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise StudyError(f"{self.source}: no profile {name!r} (it has {', '.join(self.profiles) or 'none'})")
        return self.profiles[name]

    def trials(self, profile: str, data: str = "", device: str = "auto") -> list[Trial]:
        """Every trial of a grid or random search, each with its validated TrainConfig."""
        seeds = self.profile(profile).seeds or self.seeds
        return [
            self.trial(f"p{p:02d}-s{seed}", point, seed, profile, data, device)
            for p, point in enumerate(self.points(profile))
            for seed in range(seeds)
        ]

    def trial(self, trial_id: str, point: dict[str, Any], seed: int, profile: str, data: str = "", device: str = "auto") -> Trial:
        """One trial: the model's recipe, then the study's base, the point and the profile's budget over it."""
        prof = self.profile(profile)
        minutes = prof.minutes if prof.minutes is not None else (None if prof.epochs is not None else self.minutes)
        settings = {
            **self.base,
            **point,
            "seed": seed,
            "data": data,
            "device": device,
            "epochs": prof.epochs if prof.epochs is not None else (self.epochs or 1000),
            "time_budget_min": minutes,
            "train_fraction": prof.train_fraction,
        }
        return Trial(trial_id, point, seed, _config(self.source, settings, point))

    def check(self) -> None:
        """Every combination of axis values (a range's two ends) makes a valid TrainConfig in every profile."""
        corners = {k: (axis.low, axis.high) if isinstance(axis, Range) else axis for k, axis in self.axes.items()}
        for profile in self.profiles:
            for point in _grid(corners):
                self.trial("check", point, 0, profile)


def _grid(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def _config(source: str, settings: dict[str, Any], point: dict[str, Any]) -> TrainConfig:
    """The model's own recipe (training.presets), then the study's base, axes and budget over it."""
    try:
        return make_config(**settings)
    except (TypeError, ValueError) as exc:
        where = ", ".join(f"axes.{k} = {v!r}" for k, v in point.items()) or "base"
        raise StudyError(f"{source}: {where}: {exc}") from None


def _field(source: str, where: str, name: str) -> None:
    known = {f.name for f in fields(TrainConfig)} - set(RUN_FIELDS)
    if name not in known:
        hint = "set by the run or the budget" if name in RUN_FIELDS else "not a TrainConfig field"
        raise StudyError(f"{source}: {where}.{name}: {hint}")


def _models(source: str, base: dict[str, Any], axes: dict[str, Axis]) -> None:
    models = axes.get("model", ())
    assert isinstance(models, tuple)  # _axis: the model axis is a list
    for where, value in [("base.model", base.get("model"))] + [("axes.model", v) for v in models]:
        if value is None:
            continue
        try:
            get_spec(value)  # a timm:<name> is built on the meta device here: a bad name or size fails at load
        except (KeyError, ValueError) as exc:
            raise StudyError(f"{source}: {where}: {exc.args[0]}") from None
    if "model" not in base and "model" not in axes:
        raise StudyError(f"{source}: base.model: every trial needs a model (set it in [base] or vary it in [axes])")


def _profiles(source: str, raw: dict[str, Any]) -> dict[str, Profile]:
    profiles = {}
    for name, values in raw.items():
        if not isinstance(values, dict):
            raise StudyError(f"{source}: profiles.{name}: must be a table")
        unknown = sorted(set(values) - set(PROFILE_FIELDS))
        if unknown:
            raise StudyError(f"{source}: profiles.{name}.{unknown[0]}: unknown (allowed: {', '.join(PROFILE_FIELDS)})")
        profile = Profile(**values)
        for key in ("epochs", "seeds", "samples", "grace_epochs"):
            value = getattr(profile, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise StudyError(f"{source}: profiles.{name}.{key}: a positive whole number, not {value!r}")
        if profile.epochs is not None and profile.minutes is not None:
            raise StudyError(f"{source}: profiles.{name}: give epochs or minutes, not both")
        if not 0.0 < profile.train_fraction <= 1.0:
            raise StudyError(f"{source}: profiles.{name}.train_fraction: must be in (0, 1]")
        profiles[name] = profile
    return profiles or {"full": Profile()}


def parse_study(text: str, source: str = "<study>") -> StudySpec:
    """A validated StudySpec from TOML text; StudyError names the field of the first problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{source}: not valid TOML ({exc})") from None
    unknown = sorted(set(raw) - {"name", "description", "seeds", "baseline", "base", "axes", "budget", "search", "profiles"})
    if unknown:
        raise StudyError(f"{source}: {unknown[0]}: unknown key")
    name = raw.get("name", "")
    if not isinstance(name, str) or not _NAME.match(name):
        raise StudyError(f"{source}: name: letters, digits, - and _ only, not {name!r}")
    base, axes_raw = dict(raw.get("base", {})), dict(raw.get("axes", {}))
    for key in base:
        if key != "model":
            _field(source, "base", key)
    axes = {key: _axis(source, key, values) for key, values in axes_raw.items()}
    _models(source, base, axes)
    seeds = raw.get("seeds", 1)
    if not isinstance(seeds, int) or seeds < 1:
        raise StudyError(f"{source}: seeds: a positive number of seeds, not {seeds!r}")
    budget = dict(raw.get("budget", {}))
    if set(budget) - {"epochs", "minutes"} or len(budget) > 1:
        raise StudyError(f"{source}: budget: give epochs = N or minutes = M")
    search = dict(raw.get("search", {}))
    kind = search.get("kind", "grid")
    if kind not in SEARCHES:
        raise StudyError(f"{source}: search.kind: one of {', '.join(SEARCHES)}, not {kind!r}")
    if kind != "grid" and not isinstance(search.get("samples"), int):
        raise StudyError(f"{source}: search.samples: a {kind} search needs a number of points")
    ranged = next((k for k, axis in axes.items() if isinstance(axis, Range)), None)
    if kind == "grid" and ranged:
        raise StudyError(f'{source}: axes.{ranged}: a range needs search kind "random" or "tpe" (a grid lists values)')
    unknown = sorted(set(search) - {"kind", "samples", "early_stop", "grace_epochs", "concurrent"})
    if unknown:
        raise StudyError(f"{source}: search.{unknown[0]}: unknown")
    if search.get("early_stop") not in (None, "asha"):
        raise StudyError(f'{source}: search.early_stop: only "asha" (asynchronous successive halving)')
    for key in ("grace_epochs", "concurrent"):
        if key in search and (not isinstance(search[key], int) or search[key] < 1):
            raise StudyError(f"{source}: search.{key}: a positive whole number")
    baseline = _baseline(source, axes, dict(raw.get("baseline", {})))
    spec = StudySpec(
        name=name,
        description=str(raw.get("description", "")),
        base=base,
        axes=axes,
        seeds=seeds,
        epochs=budget.get("epochs"),
        minutes=budget.get("minutes"),
        search=kind,
        samples=search.get("samples"),
        early_stop=search.get("early_stop"),
        grace_epochs=search.get("grace_epochs", 2),
        concurrent=search.get("concurrent"),
        profiles=_profiles(source, dict(raw.get("profiles", {}))),
        baseline=baseline,
        source=source,
    )
    if kind == "tpe":
        for name, profile in spec.profiles.items():
            if (profile.seeds or seeds) > 1:
                where = f"profiles.{name}.seeds" if profile.seeds else "seeds"
                raise StudyError(f"{source}: {where}: a TPE search trains each point it chooses once (repeat its best in a grid)")
    _check_asha(spec)
    spec.check()  # every trial's TrainConfig must be valid before anything starts
    return spec


def _check_asha(spec: StudySpec) -> None:
    """ASHA's first rung must come before a trial's last epoch, in every profile with an epoch budget."""
    if spec.early_stop != "asha":
        return
    for name, profile in spec.profiles.items():
        epochs = profile.epochs or (None if profile.minutes or spec.minutes else spec.epochs)
        if epochs is not None and spec.grace_of(name) >= epochs:
            raise StudyError(
                f"{spec.source}: profiles.{name}: ASHA's grace_epochs {spec.grace_of(name)} is not below its {epochs} "
                f"epochs, so it could stop nothing (set profiles.{name}.grace_epochs)"
            )


def _axis(source: str, key: str, values: Any) -> Axis:
    """A list of values, or a range table {low, high, log}."""
    if key != "model":
        _field(source, "axes", key)
    if isinstance(values, dict) and key != "model":
        return _range(source, key, values)
    if not isinstance(values, list) or not values:
        raise StudyError(f"{source}: axes.{key}: must be a non-empty list of values or a range {{ low, high, log }}")
    if len(set(map(repr, values))) != len(values):
        raise StudyError(f"{source}: axes.{key}: a value is listed twice")
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


def _range(source: str, key: str, values: dict[str, Any]) -> Range:
    ends = (values.get("low"), values.get("high"))
    log = values.get("log", False)
    if set(values) - {"low", "high", "log"} or not isinstance(log, bool):
        raise StudyError(f"{source}: axes.{key}: a range is {{ low = A, high = B, log = true|false }}")
    match ends:
        case (int() | float() as low, int() | float() as high) if low < high and not {type(low), type(high)} & {bool}:
            if log and low <= 0:
                raise StudyError(f"{source}: axes.{key}: a log range needs low > 0")
            return Range(low, high, log)
    raise StudyError(f"{source}: axes.{key}: a range needs numbers low < high, not {ends[0]!r} and {ends[1]!r}")


def _baseline(source: str, axes: dict[str, Axis], given: dict[str, Any]) -> dict[str, Any]:
    """The first value of every listed axis, overridden by the file's; a range axis needs its baseline value."""
    baseline = {k: axis[0] for k, axis in axes.items() if not isinstance(axis, Range)} | given
    for key in axes:
        if key not in baseline:
            raise StudyError(f"{source}: baseline.{key}: a range axis needs its baseline value")
    for key, value in baseline.items():
        if key not in axes or value not in axes[key]:
            raise StudyError(f"{source}: baseline.{key}: {value!r} is not a value of axes.{key}")
    return baseline


def _value(token: str) -> Any:
    """A value typed into a form: a number, true/false, or text."""
    for kind in (int, float):
        try:
            return kind(token)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(token.lower(), token)


def compose_study(
    name: str, models: list[str], axis: str | None, values: str, seeds: int, epochs: int, train_fraction: float
) -> str:
    """A study file's text from the Studies page's form: the models (an axis when several), one more TrainConfig field
    with comma-separated values, and a budget; `quick` trains on `train_fraction` of the faces, `full` on all.
    Validated like any file (StudyError names the field)."""
    axes: dict[str, list[Any]] = {}
    if len(models) > 1:
        axes["model"] = list(models)
    if axis:
        axes[axis] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    lines = [f"name = {json.dumps(name)}", f"seeds = {seeds}", "[base]"]
    lines += [f"model = {json.dumps(models[0])}"] if len(models) == 1 else []
    lines += ["[axes]", *(f"{k} = {json.dumps(v)}" for k, v in axes.items()), "[budget]", f"epochs = {epochs}"]
    lines += ["[profiles.quick]", f"train_fraction = {train_fraction}", "[profiles.full]"]
    text = "\n".join(lines) + "\n"
    parse_study(text, f"{name}.toml")
    return text


SHIPPED = REPO / "studies"


def shipped_studies() -> list[Path]:
    """The study files that ship with the repository (studies/*.toml)."""
    return sorted(SHIPPED.glob("*.toml"))


def load_study(path: str | Path) -> StudySpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"{path}: cannot read ({exc})") from None
    return parse_study(text, str(path))
