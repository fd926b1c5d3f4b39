"""The searchable knobs of every variant: ranges from the papers, narrowed or fixed by the user.

Each variant declares its knobs, their ranges and how drawn values become its own knobs
(``search_knobs``, ``from_search`` on its class); this module reads them from the registry when
it runs. Define-by-run: :meth:`SearchSpace.suggest` draws the variant, then only that variant's
knobs, so conditions are plain code. Optuna parameter names are ``variant.knob`` so each
variant's knobs form their own group for TPE (``group=True``).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import optuna

from lorasearch.adapters import VARIANTS, get_variant
from lorasearch.adapters.knobs import Knob
from lorasearch.adapters.placement import place
from lorasearch.errors import LorasearchError, first_line


@dataclass
class SearchSpace:
    """Which variants may be drawn and each one's knobs."""

    knobs: dict[str, dict[str, Knob]]

    @classmethod
    def default(cls, variants: list[str] | None = None) -> SearchSpace:
        """Every registered variant (or those in ``variants``) with its own search knobs, then
        (a placeable variant) where to adapt: ``targets`` and ``layers``."""
        chosen = variants or list(VARIANTS)
        return cls({name: get_variant(name).all_search_knobs() for name in chosen})

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
        return variant, get_variant(variant).from_search(drawn, total_steps)

    def smallest(self, variant: str, total_steps: int) -> dict[str, Any]:
        """The variant's knobs at the low end of every range: its fewest parameters."""
        return self.adapter_knobs(variant, {}, total_steps)

    def adapter_knobs(
        self, variant: str, drawn: dict[str, Any], total_steps: int
    ) -> dict[str, Any]:
        """``drawn`` (the variant's search knobs; one it lacks at its fixed value or the low end
        of its range) as the variant's adapter knobs, as :meth:`suggest` makes them."""
        values = {
            name: drawn[name] if name in drawn else _end(knob, "low")
            for name, knob in self.knobs[variant].items()
        }
        return get_variant(variant).from_search(values, total_steps)

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
        """Apply a space file: ``{variant or "all": {knob: value | [choices] | {low, high, log}}}``."""
        knobs = {v: dict(ks) for v, ks in self.knobs.items()}
        for section, entries in overrides.items():
            if section == "variants":
                continue
            if section != "all" and section not in VARIANTS:
                raise LorasearchError(f"space file: unknown variant '{section}'")
            if not isinstance(entries, dict):
                raise LorasearchError(f"space file: [{section}] must be a table of knobs")
            targets = self.variants if section == "all" else [section]
            for knob, value in entries.items():
                holders = [v for v in targets if knob in get_variant(v).space_knobs()]
                if not holders:
                    known = sorted(set().union(*(get_variant(v).space_knobs() for v in targets)))
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
                drawn = {name: _end(knob, end) for name, knob in knobs.items()}
                adapter_class = get_variant(variant)
                try:
                    adapter_class.from_knobs(**adapter_class.from_search(drawn, total_steps))
                except LorasearchError as exc:
                    raise LorasearchError(f"search space for {variant}: {exc}") from None

    def check_placement(self, target_modules: list[str]) -> None:
        """Every ``targets`` and ``layers`` value the space may draw must place something on
        this model (a user error now, not a failed trial later)."""
        for variant, knobs in self.knobs.items():
            for knob, other in (("targets", "layers"), ("layers", "targets")):
                spec = knobs.get(knob)
                values = () if spec is None else spec.choices or (spec.fixed,)
                for value in values:
                    try:
                        place(target_modules, **{knob: value, other: "all"})
                    except LorasearchError as exc:
                        raise LorasearchError(
                            f"search space for {variant}: {exc}; fix {knob} with --{knob} or a "
                            "space file"
                        ) from None


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
        raise LorasearchError(f"cannot parse space file {path}: {first_line(exc)}") from None
    file_variants = raw.get("variants")
    if isinstance(file_variants, str):
        file_variants = [v.strip() for v in file_variants.split(",")]
    return SearchSpace.default(variants or file_variants).override(raw)


def _is_int_knob(variant: str, knob: str) -> bool:
    fields = {f.name: str(f.type) for f in dataclasses.fields(get_variant(variant).config_class)}
    return fields.get(knob, "").startswith("int")


def _end(knob: Knob, end: str) -> Any:
    """The knob's value at the ``"low"`` (fewest parameters) or ``"high"`` end of its range; a
    choice's ends are its last and first choices (``Knob.choices`` runs from most to fewest)."""
    if knob.fixed is not None:
        return knob.fixed
    if knob.choices is not None:
        return knob.choices[-1 if end == "low" else 0]
    value = getattr(knob, end)
    return int(value) if knob.integer else value


def _knob_from(value: Any, current: Knob | None, variant: str, knob: str) -> Knob:
    if isinstance(value, list):
        if not value or len(set(map(repr, value))) != len(value):
            raise LorasearchError(f"space file: {variant}.{knob} needs distinct choices")
        return Knob(choices=tuple(value))
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
