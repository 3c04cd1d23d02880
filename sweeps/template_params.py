"""Checking a spec's DGP template parameters against the template's ``make()`` signature.

A sweep spec names a template and its keyword arguments; without this check a misspelt key or
a value of the wrong type loads fine and fails only per task, on the cluster. :func:`check_template_param`
validates one ``(template, key, value)`` when the spec loads:

- the key must be a parameter of the template's ``make()`` (``seed`` and ``n_visitors`` are
  the sweep's own and refused by the spec parser);
- the value must match the parameter's annotation (``float`` accepts ints, ``Sequence[float]``
  a list of numbers, ``X | None`` also ``null``);
- the template must accept it: ``make(seed=0, key=value)`` is called once (milliseconds), so its
  own range checks (e.g. ``conversion_scale > 0``) run at load time too.

A value may also be a distribution drawn per replication (a DGP population): ``{uniform: [lo,
hi]}``, ``{loguniform: [lo, hi]}`` (``0 < lo``) or ``{choice: [a, b, ...]}``. Then each bound
(``lo <= hi``) or option is checked as a value of the parameter.

Templates that ``dgps.registry`` does not know (a custom runner's, e.g. ``synthetic``) are not
checked here; :meth:`sweeps.spec.SweepSpec.check_templates` rejects them when the default runner
needs them.
"""

from __future__ import annotations

import collections.abc
import math
import types
import typing
from functools import lru_cache
from typing import Any

__all__ = ["DISTRIBUTIONS", "check_template_param"]

from pytyche._validation import error_for
from sweeps.population import DISTRIBUTIONS


#: the ValueError for a bad spec field, as `sweeps.spec` words it
_err = error_for("SweepSpec", noun="field", width=120)


@lru_cache(maxsize=None)
def _signature(template: str) -> dict[str, Any] | None:
    """``{parameter: type hint}`` of the template's ``make()``, or ``None`` for an unregistered one."""
    from dgps import registry

    if template not in registry.list_templates():
        return None
    make = registry._module(template, "check_template_param").make  # noqa: SLF001 (same repository)
    hints = typing.get_type_hints(make)
    import dataclasses
    import inspect

    out = {
        name: hints.get(name, Any)
        for name, p in inspect.signature(make).parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    cls = getattr(make, "template_class", None)  # dgps.base.feature_template: parameters are the dataclass fields
    if cls is not None:
        field_hints = typing.get_type_hints(cls)
        out.update({f.name: field_hints.get(f.name, Any) for f in dataclasses.fields(cls)})
    return out


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _conforms(value: Any, hint: Any) -> bool:
    """Whether plain YAML data ``value`` matches the annotation ``hint`` (unknown hints pass)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return _is_real(value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is bool:
        return isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (collections.abc.Sequence, list, tuple, collections.abc.Iterable):
        args = typing.get_args(hint)
        if not isinstance(value, list):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_conforms(v, a) for v, a in zip(value, args))
        return not args or all(_conforms(v, args[0]) for v in value)
    return True


def _describe(hint: Any) -> str:
    names = {float: "a real number", int: "an int", str: "a str", bool: "a bool", type(None): "null"}
    if hint in names:
        return names[hint]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if origin in (collections.abc.Sequence, list, tuple, collections.abc.Iterable):
        args = typing.get_args(hint)
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    return str(hint)


def _check_value(template: str, key: str, value: Any, hint: Any, field: str) -> None:
    if not _conforms(value, hint):
        raise _err(field, f"{_describe(hint)} (parameter {key!r} of template {template!r})", value)
    from dgps.registry import make_generator

    try:
        make_generator(template, seed=0, **{key: value})
    except (TypeError, ValueError) as err:
        raise ValueError(f"The '{field}' field of SweepSpec is not a valid {key!r} for template {template!r}: {err}") from None


def check_template_param(template: str, key: str, value: Any, *, field: str | None = None) -> None:
    """Validate one template parameter of a spec (see the module docstring).

    Parameters
    ----------
    template
        The template name.
    key, value
        The parameter and its value (plain YAML data), or a distribution mapping.
    field
        The spec field to name in errors (default ``params.<key>``).

    Raises
    ------
    ValueError
        Naming the field: an unknown parameter (listing the template's), a value of the wrong
        type or out of the template's range, or a malformed distribution.
    """
    field = field or f"params.{key}"
    sig = _signature(template)
    if sig is None:
        return
    if key not in sig:
        known = sorted(set(sig) - {"seed", "n_visitors"})
        raise _err(field, f"a parameter of template {template!r} ({', '.join(known)})", key)
    hint = sig[key]
    if isinstance(value, collections.abc.Mapping):
        # a DGP population: the spec parser (sweeps.population) has checked the distribution's
        # shape; here each bound or option must be a valid value of the parameter
        kinds = [k for k in DISTRIBUTIONS if k in value]
        if len(kinds) != 1:
            raise _err(field, f"a value or a distribution {{{'|'.join(DISTRIBUTIONS)}: [...]}} ({_describe(hint)} for template {template!r})", value)
        kind = kinds[0]
        args = value[kind]
        sub = f"{field}.{kind}"
        if not isinstance(args, (list, tuple)) or not args:
            raise _err(sub, "a non-empty list", args)
        for i, option in enumerate(args):
            _check_value(template, key, option, hint, f"{sub}[{i}]")
        return
    _check_value(template, key, value, hint, field)
