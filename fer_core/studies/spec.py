"""A study file (studies/*.toml) parsed and validated into trials, before anything runs. Torch- and Ray-free.

    name = "optimizers"                      # the study's name (letters, digits, - and _)
    description = "Adam against SGD ..."
    seeds = 3                                # each point is trained with seeds 0..seeds-1
    baseline = { optimizer = "adam" }        # the point every other point is tested against (default: the
                                             # first value of every axis)
    [base]                                   # TrainConfig fields shared by every trial (model included), over
                                             # each model's own recipe (fer_core.training.presets)
    model = "keras_cnn"
    [axes]                                   # TrainConfig fields (or model) -> the values to try
    optimizer = ["adam", "sgd"]
    [budget]                                 # per trial: epochs = N, or minutes = M (cosine over time)
    epochs = 30
    [search]                                 # kind = "grid" (every point) or "random" (samples points);
                                             # early_stop = "asha" stops trials that trail the others at
                                             # epochs grace_epochs, 2 x grace_epochs, ... (on select_by);
                                             # concurrent = N runs at most N trials at once
    kind = "grid"
    [profiles.quick]                         # overrides: train_fraction, epochs or minutes, seeds, samples
    train_fraction = 0.1
    epochs = 2
    [profiles.full]

A bad file is refused with one line that names the file and the field.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..models import get_spec
from ..training.config import TrainConfig
from ..training.presets import make_config

SEARCHES = ("grid", "random")
PROFILE_FIELDS = ("train_fraction", "epochs", "minutes", "seeds", "samples")
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
    axes: dict[str, tuple[Any, ...]]
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

    def points(self, profile: str) -> list[dict[str, Any]]:
        """The points of the axes the study trains: all of them (grid), or `samples` drawn with seed 0 (random);
        the baseline is always among them."""
        grid = [dict(zip(self.axes, values, strict=True)) for values in itertools.product(*self.axes.values())]
        samples = self.profile(profile).samples or self.samples
        if self.search == "grid" or samples is None or samples >= len(grid):
            return grid
        others = [p for p in grid if p != self.baseline]
        return [self.baseline, *random.Random(0).sample(others, samples - 1)]

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise StudyError(f"{self.source}: no profile {name!r} (it has {', '.join(self.profiles) or 'none'})")
        return self.profiles[name]

    def trials(self, profile: str, data: str = "", device: str = "auto") -> list[Trial]:
        """Every trial of a profile, each with its validated TrainConfig."""
        prof = self.profile(profile)
        minutes = prof.minutes if prof.minutes is not None else (None if prof.epochs is not None else self.minutes)
        epochs = prof.epochs if prof.epochs is not None else (self.epochs or 1000)
        seeds = prof.seeds or self.seeds
        out = []
        for p, point in enumerate(self.points(profile)):
            for seed in range(seeds):
                settings = {
                    **self.base,
                    **point,
                    "seed": seed,
                    "data": data,
                    "device": device,
                    "epochs": epochs,
                    "time_budget_min": minutes,
                    "train_fraction": prof.train_fraction,
                }
                out.append(Trial(f"p{p:02d}-s{seed}", point, seed, _config(self.source, settings, point)))
        return out


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


def _models(source: str, base: dict[str, Any], axes: dict[str, tuple[Any, ...]]) -> None:
    for where, value in [("base.model", base.get("model"))] + [("axes.model", v) for v in axes.get("model", ())]:
        if value is None:
            continue
        try:
            get_spec(value)
        except KeyError as exc:
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
    axes: dict[str, tuple[Any, ...]] = {}
    for key, values in axes_raw.items():
        if key != "model":
            _field(source, "axes", key)
        if not isinstance(values, list) or not values:
            raise StudyError(f"{source}: axes.{key}: must be a non-empty list of values")
        if len(set(map(repr, values))) != len(values):
            raise StudyError(f"{source}: axes.{key}: a value is listed twice")
        axes[key] = tuple(tuple(v) if isinstance(v, list) else v for v in values)
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
    if kind == "random" and not isinstance(search.get("samples"), int):
        raise StudyError(f"{source}: search.samples: a random search needs a number of points")
    unknown = sorted(set(search) - {"kind", "samples", "early_stop", "grace_epochs", "concurrent"})
    if unknown:
        raise StudyError(f"{source}: search.{unknown[0]}: unknown")
    if search.get("early_stop") not in (None, "asha"):
        raise StudyError(f'{source}: search.early_stop: only "asha" (asynchronous successive halving)')
    for key in ("grace_epochs", "concurrent"):
        if key in search and (not isinstance(search[key], int) or search[key] < 1):
            raise StudyError(f"{source}: search.{key}: a positive whole number")
    baseline = {k: axes[k][0] for k in axes} | dict(raw.get("baseline", {}))
    for key, value in baseline.items():
        if key not in axes or value not in axes[key]:
            raise StudyError(f"{source}: baseline.{key}: {value!r} is not a value of axes.{key}")
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
    for profile in spec.profiles:
        spec.trials(profile)  # every trial's TrainConfig must be valid before anything starts
    return spec


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


SHIPPED = Path(__file__).resolve().parents[2] / "studies"


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
