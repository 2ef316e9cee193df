"""What a chapter's kernel does first: take its parameters as the command line would.

A chapter is run by ``python -m helpers run`` (which resolves and checks every parameter and runs the
pre-flight before any kernel starts) or by papermill directly, as the README shows, or in Jupyter.
:func:`take_parameters`, called in the first cell after the ``parameters`` cell, makes the last
two behave as the first:

* the parameters *given* are read from the cell papermill injected (``# Parameters``; none in plain
  Jupyter), and everything not given takes the given profile's value, so ``-p profile smoke``
  alone runs the chapter at smoke's sizes (the values written in the chapter file are only what a
  reader sees);
* every value is checked (:func:`~helpers.book.runner.resolve_parameters`: unknown names, types,
  ranges, the study's relations) and the pre-flight runs (model sources, local model folders,
  trained runs), so a bad value is refused before any compute;
* the project's own errors (:class:`~helpers.core.errors.BookError`) are shown in one line, not a
  traceback, in the notebook and in papermill's message.

For a chapter run by the command line this repeats checks that already passed, on the same values,
and changes nothing.
"""
from __future__ import annotations

from typing import Any, Iterable, MutableMapping

from helpers.core.errors import BookError, ParameterError

INJECTED = "# Parameters"          # the first line of the cell papermill injects


def injected_parameters(history: Iterable[str]) -> dict[str, Any]:
    """The parameters of the last cell papermill injected among the executed cells `history`
    (IPython's ``In``), or ``{}`` when there is none (a chapter opened in Jupyter)."""
    from helpers.book.chapters import literal_assignments
    for src in reversed(list(history)):
        if src.lstrip().splitlines()[:1] == [INJECTED]:
            return literal_assignments(src, "the injected parameters")
    return {}


def _one_line(shell, etype, value, tb, tb_offset=None):
    """IPython's handler for the project's own errors: the message, no traceback."""
    line = f"{etype.__name__}: {value}"
    shell._showtraceback(etype, value, [line])      # the kernel's error message: name, value, one line
    return [line]


def take_parameters(chapter: str, namespace: MutableMapping[str, Any]) -> dict[str, Any]:
    """Resolve and check the chapter's parameters in its kernel (module docstring) and set them in
    `namespace` (the notebook's ``globals()``).  Returns them."""
    from helpers.book.runner import STUDY_KEY, preflight, resolve_parameters
    try:
        shell = get_ipython()          # noqa: F821  (defined in a kernel)
    except NameError:
        shell = None
    if shell is not None:
        shell.set_custom_exc((BookError,), _one_line)
    given = injected_parameters(shell.user_ns.get("In", []) if shell is not None else [])
    profile = given.get("profile", namespace.get("profile"))
    study = given.get(STUDY_KEY) or {}
    if not isinstance(study, dict):
        raise ParameterError(f"{STUDY_KEY} must be a mapping of study parameters to values, got {study!r}")
    overrides = {k: v for k, v in given.items() if k not in ("profile", STUDY_KEY)}
    clash = set(overrides) & set(study)
    if clash:
        raise ParameterError(f"{sorted(clash)} given both directly and in {STUDY_KEY}: give each once")
    params = resolve_parameters(chapter, profile, {**overrides, **study})
    preflight(chapter, params)
    namespace.update(params)
    return params
