"""The searchable knobs of every variant: ranges from the papers, narrowed or fixed by the user.

Define-by-run: :meth:`SearchSpace.suggest` draws the variant, then only that variant's knobs, so
conditions are plain code. Optuna parameter names are ``variant.knob`` so each variant's knobs
form their own group for TPE (``group=True``).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import optuna

from lorasearch.adapters import build_adapter, get_variant
from lorasearch.errors import LorasearchError


@dataclass(frozen=True)
class Knob:
    """One searchable knob: an int or float range (optionally log-scaled), or a fixed value."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    fixed: Any = None

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if self.fixed is not None:
            return self.fixed
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        if self.fixed is not None:
            return f"= {self.fixed}"
        kind = "int" if self.integer else "float"
        return f"{kind} [{self.low:g}, {self.high:g}]{' log' if self.log else ''}"


def _int(low: int, high: int, log: bool = True) -> Knob:
    return Knob(low, high, log=log, integer=True)


def _float(low: float, high: float, log: bool = True) -> Knob:
    return Knob(low, high, log=log)


_RANK = _int(2, 64)
_LR = _float(1e-4, 5e-3)

# Paper-informed defaults (../shared/docs/variants.md): each variant's own knobs and ranges.
DEFAULT_KNOBS: dict[str, dict[str, Knob]] = {
    "lora": {"rank": _RANK, "lr": _LR},
    "lora_plus": {"rank": _RANK, "lr": _float(5e-5, 2e-3), "lr_ratio": _float(2, 64)},
    "vera": {"vera_rank": _int(16, 1024), "d_init": _float(0.01, 1.0), "lr": _float(1e-3, 5e-2)},
    "lora_fa": {"rank": _RANK, "lr": _LR},
    "lora_drop": {"rank": _RANK, "lr": _LR, "drop_threshold": _float(0.5, 0.99, log=False)},
    "adalora": {
        "target_rank": _int(2, 32),
        "init_rank_factor": _float(1.0, 2.0, log=False),
        "lr": _float(5e-4, 2e-2),  # Λ starts at zero: it wants more than LoRA (see its config)
    },
    "dora": {"rank": _RANK, "lr": _LR},
    "delta_lora": {
        "rank": _RANK,
        "lr": _LR,
        "delta_lambda": _float(0.1, 2.0),
        "delta_start": _float(0.0, 0.3, log=False),  # fraction of the run's steps
    },
}


@dataclass
class SearchSpace:
    """Which variants may be drawn and each one's knobs."""

    knobs: dict[str, dict[str, Knob]]

    @classmethod
    def default(cls, variants: list[str] | None = None) -> SearchSpace:
        chosen = variants or list(DEFAULT_KNOBS)
        for name in chosen:
            get_variant(name)  # one clear error for an unknown name
        return cls({name: dict(DEFAULT_KNOBS[name]) for name in chosen})

    @property
    def variants(self) -> list[str]:
        return list(self.knobs)

    def suggest(self, trial: optuna.Trial, total_steps: int) -> tuple[str, dict[str, Any]]:
        """Draw a variant and its knobs; returns the adapter knobs (in the variant's names)."""
        variant = (
            self.variants[0]
            if len(self.variants) == 1
            else trial.suggest_categorical("variant", self.variants)
        )
        drawn = {
            name: knob.suggest(trial, f"{variant}.{name}")
            for name, knob in self.knobs[variant].items()
        }
        return variant, to_adapter_knobs(variant, drawn, total_steps)

    def smallest(self, variant: str, total_steps: int) -> dict[str, Any]:
        """The variant's knobs at the low end of every range: its fewest parameters."""
        drawn = {
            name: knob.fixed
            if knob.fixed is not None
            else (int(knob.low) if knob.integer else knob.low)
            for name, knob in self.knobs[variant].items()
        }
        return to_adapter_knobs(variant, drawn, total_steps)

    def describe(self) -> dict[str, dict[str, str]]:
        return {v: {k: knob.describe() for k, knob in ks.items()} for v, ks in self.knobs.items()}

    def to_json(self) -> str:
        return json.dumps(
            {v: {k: asdict(kn) for k, kn in ks.items()} for v, ks in self.knobs.items()}
        )

    @classmethod
    def from_json(cls, text: str) -> SearchSpace:
        raw = json.loads(text)
        return cls({v: {k: Knob(**spec) for k, spec in ks.items()} for v, ks in raw.items()})

    def override(self, overrides: dict[str, Any]) -> SearchSpace:
        """Apply a space file: ``{variant or "all": {knob: value | {low, high, log}}}``."""
        knobs = {v: dict(ks) for v, ks in self.knobs.items()}
        for section, entries in overrides.items():
            if section == "variants":
                continue
            if section != "all" and section not in DEFAULT_KNOBS:
                raise LorasearchError(f"space file: unknown variant '{section}'")
            if not isinstance(entries, dict):
                raise LorasearchError(f"space file: [{section}] must be a table of knobs")
            targets = self.variants if section == "all" else [section]
            for knob, value in entries.items():
                holders = [v for v in targets if knob in _known(v)]
                if not holders:
                    known = sorted(set().union(*(_known(v) for v in targets)))
                    raise LorasearchError(
                        f"space file: '{knob}' is not a knob of {section} (knobs: {', '.join(known)})"
                    )
                for variant in holders:
                    if variant in knobs:
                        knobs[variant][knob] = _knob_from(
                            value, knobs[variant].get(knob), variant, knob
                        )
        return SearchSpace(knobs)

    def validate(self, total_steps: int) -> None:
        """Build every variant at both ends of its ranges: bad ranges or values fail now."""
        for variant, knobs in self.knobs.items():
            for end in ("low", "high"):
                drawn = {
                    name: knob.fixed if knob.fixed is not None else getattr(knob, end)
                    for name, knob in knobs.items()
                }
                drawn = {k: int(v) if knobs[k].integer else v for k, v in drawn.items()}
                try:
                    build_adapter(variant, **to_adapter_knobs(variant, drawn, total_steps))
                except LorasearchError as exc:
                    raise LorasearchError(f"search space for {variant}: {exc}") from None


def load_space_file(path: str | Path, variants: list[str] | None) -> SearchSpace:
    """The default space for ``variants`` with a TOML or YAML file's ranges and fixed values."""
    path = Path(path)
    if not path.is_file():
        raise LorasearchError(f"space file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            raw = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text) or {}
        else:
            raise LorasearchError(f"space file must be .toml, .yaml or .yml: {path}")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise LorasearchError(
            f"cannot parse space file {path}: {str(exc).splitlines()[0]}"
        ) from None
    file_variants = raw.get("variants")
    if isinstance(file_variants, str):
        file_variants = [v.strip() for v in file_variants.split(",")]
    return SearchSpace.default(variants or file_variants).override(raw)


def to_adapter_knobs(variant: str, drawn: dict[str, Any], total_steps: int) -> dict[str, Any]:
    """Search knobs -> the adapter's own knobs (derived ones resolved against the run)."""
    knobs = dict(drawn)
    if variant == "adalora" and "init_rank_factor" in knobs:
        factor = knobs.pop("init_rank_factor")
        knobs["init_rank"] = max(
            knobs.get("target_rank", 8), round(factor * knobs.get("target_rank", 8))
        )
    if variant == "delta_lora" and isinstance(knobs.get("delta_start"), float):
        knobs["delta_start"] = int(knobs["delta_start"] * total_steps)
    return knobs


_DERIVED = {"adalora": {"init_rank_factor"}}


def _known(variant: str) -> set[str]:
    """The knobs a space file may set for ``variant``: its adapter's, plus derived ones."""
    return set(get_variant(variant).config_class.knob_names()) | _DERIVED.get(variant, set())


def _is_int_knob(variant: str, knob: str) -> bool:
    fields = {f.name: str(f.type) for f in dataclasses.fields(get_variant(variant).config_class)}
    return fields.get(knob, "").startswith("int")


def _knob_from(value: Any, current: Knob | None, variant: str, knob: str) -> Knob:
    if not isinstance(value, dict):
        return Knob(fixed=value)
    unknown = set(value) - {"low", "high", "log"}
    if unknown:
        raise LorasearchError(
            f"space file: {variant}.{knob} has unknown field(s) {sorted(unknown)}"
        )
    base = current or Knob(integer=_is_int_knob(variant, knob))
    spec = replace(base, fixed=None, **{k: value[k] for k in ("low", "high", "log") if k in value})
    if spec.low is None or spec.high is None or not spec.low <= spec.high:
        raise LorasearchError(f"space file: {variant}.{knob} needs low <= high")
    if spec.log and spec.low <= 0:
        raise LorasearchError(f"space file: {variant}.{knob} is log-scaled, so low must be > 0")
    return spec
