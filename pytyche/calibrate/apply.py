"""``apply_calibration``: attach a :class:`Calibration` to a posterior after checking its regime."""

from __future__ import annotations

import dataclasses
from typing import Any

from pytyche._validation import InstanceOf, validate, wrong_type
from pytyche.calibrate.calibration import Calibration, posterior_pooling
from pytyche.contracts.enums import ClaimLevel

__all__ = ["APPLY_CONSTRAINTS", "apply_calibration", "claim_level_of", "is_calibrated"]

#: the settings of :func:`apply_calibration` (the posterior's interface is checked by hand)
APPLY_CONSTRAINTS: dict[str, Any] = {
    "calibration": InstanceOf(Calibration, "a Calibration (from Calibration.from_sweep(...) or Calibration.skip())"),
}


def apply_calibration(posterior: Any, calibration: Calibration) -> Any:
    """Return ``posterior`` with ``calibration`` attached (``dataclasses.replace``).

    The posterior's intervals (``posterior.interval`` and everything built on it) then use the
    calibration's correction. ``Calibration.skip()`` attaches an explicit "uncalibrated" label
    and leaves intervals raw. The returned posterior shares ``observed`` (and every array) with
    the input by identity.

    Parameters
    ----------
    posterior
        A frozen-dataclass posterior (``BinaryBCFResult``, ``ContinuousBCFResult``,
        ``HurdleBCFResult``) with ``observed`` and a ``calibration`` field.
    calibration
        From :meth:`Calibration.from_sweep` or :meth:`Calibration.skip`.

    Raises
    ------
    TypeError
        When ``calibration`` is not a :class:`Calibration` or ``posterior`` is not a dataclass
        with ``observed`` and ``calibration`` fields.
    ValueError
        Naming each mismatched regime dimension (``metric``, ``n_treatments``, ``pooling``, and
        the MCMC settings ``num_trees_mu``, ``num_trees_tau``, ``num_draws``, ``num_chains`` of
        ``posterior.config``) when ``calibration.applies_to(posterior)`` is ``False``; for
        ``Calibration.from_sweep("auto")``, when no registry artifact applies.

    ``Calibration.from_sweep("auto")`` is resolved here (:meth:`Calibration.resolve`): the
    returned posterior carries the registry artifact it picked.
    """
    where = "apply_calibration"
    validate({"calibration": calibration}, APPLY_CONSTRAINTS, where)
    if not dataclasses.is_dataclass(posterior) or isinstance(posterior, type):
        raise wrong_type("posterior", where, "a posterior result (a dataclass instance)", posterior)
    names = {f.name for f in dataclasses.fields(posterior)}
    if "calibration" not in names or not hasattr(posterior, "observed"):
        raise wrong_type("posterior", where, "a posterior result with 'observed' and a 'calibration' field", posterior)
    pooling = posterior_pooling(posterior)
    config = getattr(posterior, "config", None)
    if calibration.auto:
        calibration = calibration.resolve(posterior)
    if not calibration.applies_to(posterior.observed, pooling, config):
        dims = calibration.mismatches(posterior.observed, pooling, config)
        label = f" {calibration.name!r}" if calibration.name else ""
        raise ValueError(
            f"The 'calibration' parameter of {where} must match the posterior's regime. Calibration{label} "
            f"does not apply: mismatched {', '.join(dims)} ({calibration.mismatch_message(posterior.observed, pooling, config)})."
        )
    return dataclasses.replace(posterior, calibration=calibration)


def is_calibrated(posterior: Any) -> bool:
    """``True`` iff ``posterior.calibration`` is a :class:`Calibration` that corrects intervals.

    The rule is :meth:`ClaimLevel.of`; only a :class:`Calibration` (not a look-alike) counts.
    """
    cal = getattr(posterior, "calibration", None)
    return isinstance(cal, Calibration) and ClaimLevel.of(cal) is ClaimLevel.CALIBRATED


def claim_level_of(posterior: Any) -> ClaimLevel:
    """``ClaimLevel.CALIBRATED`` for a calibrated posterior, ``UNCALIBRATED`` otherwise."""
    return ClaimLevel.CALIBRATED if is_calibrated(posterior) else ClaimLevel.UNCALIBRATED
