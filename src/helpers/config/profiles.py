"""Profiles: named sets of parameter values (``profiles/<name>.yaml``), and their resolution.

A profile sets every parameter of the :class:`~helpers.study.Study` (the task, the model sources,
the training grid and curves) and the sizes of the chapters' analyses.  Values are coerced (YAML
reads ``3e-4`` as a string; a single value is accepted where a list is expected) and checked
against :data:`helpers.config.parameters.SPECS` before any compute.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from helpers.config.parameters import SPECS, STUDY_PARAMETERS, check_relations, check_value
from helpers.core.errors import ParameterError
from helpers.core.paths import REPO

PROFILES_DIR: Path = REPO / "profiles"
TOP_LEVEL_KEYS = ("description", "parameters", "chapters")


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def load_profile(profile: str) -> dict[str, Any]:
    """The raw contents of ``profiles/<profile>.yaml`` (top-level keys checked).  A profile is a
    *name* of a file in ``profiles/`` (letters, digits, ``-`` and ``_``): never a path, so that
    neither the profile read nor the build folder named after it (``_build/<profile>``) can lie
    outside the project."""
    if not isinstance(profile, str) or not PROFILE_NAME.fullmatch(profile):
        raise ParameterError(f"profile {profile!r} is not a profile name: a profile is the name of a file in "
                             f"{PROFILES_DIR} without '.yaml' (accepted profiles are {list_profiles()}); "
                             "to use your own, copy one there under a new name")
    path = PROFILES_DIR / f"{profile}.yaml"
    if not path.exists():
        raise ParameterError(f"unknown profile {profile!r}: accepted profiles are {list_profiles()}")
    data = yaml.safe_load(path.read_text()) or {}
    extra = set(data) - set(TOP_LEVEL_KEYS)
    if extra:
        raise ParameterError(f"profile {profile}: unknown top-level keys {sorted(extra)}; "
                             f"accepted keys are {', '.join(TOP_LEVEL_KEYS)}")
    unknown = set(data.get("parameters") or {}) - set(SPECS)
    if unknown:
        raise ParameterError(f"profile {profile}: unknown parameters {sorted(unknown)}; accepted "
                             f"parameters are {sorted(SPECS)}")
    return data


def coerce(name: str, value: Any) -> Any:
    """YAML reads '3e-4' as a string: accept it where a float is expected; a single value where a
    list is expected becomes a list of one."""
    spec = SPECS.get(name)
    if spec is None:
        return value

    def to_float(v):
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                return v
        return v
    if spec.kind.startswith("list[") and not isinstance(value, (list, tuple)):
        value = [value]
    if spec.kind == "float":
        return to_float(value)
    if spec.kind == "list[float]":
        return [to_float(v) for v in value]
    if isinstance(value, tuple):
        return list(value)
    return value


def profile_values(profile: str) -> dict[str, Any]:
    """Every parameter the profile sets (its ``parameters`` section), coerced."""
    data = load_profile(profile)
    return {k: coerce(k, v) for k, v in (data.get("parameters") or {}).items()}


def study_parameters(profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The study's parameters: the profile's values with `overrides` on top, all checked."""
    overrides = {k: coerce(k, v) for k, v in (overrides or {}).items()}
    bad = set(overrides) - set(STUDY_PARAMETERS)
    if bad:
        raise ParameterError(f"unknown study parameters {sorted(bad)}: accepted are {list(STUDY_PARAMETERS)}")
    values = profile_values(profile)
    missing = [k for k in STUDY_PARAMETERS if k not in values]
    if missing:
        raise ParameterError(f"profile {profile} does not set the study parameters {missing}; every "
                             "profile sets all of them (see profiles/quick.yaml)")
    params = {k: values[k] for k in STUDY_PARAMETERS}
    params.update(overrides)
    for k, v in params.items():
        check_value(k, v)
    check_relations(params)
    return params
