"""``pt.check_setup()``: what this machine gives pytyche, and how to get a GPU working."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

_CPU_INSTALL = 'pip install -e ".[cuda12]"   # or: pip install "jax[cuda12]" "bartz[cuda12]>=0.13,<0.14"'


@dataclass(frozen=True)
class SetupReport:
    """Structured result of :func:`check_setup`.

    Attributes
    ----------
    pytyche_version, bartz_version, jax_version
        Installed versions (``None`` when a package is missing).
    jax_devices
        ``str`` of every device JAX sees, e.g. ``("TFRT_CPU_0",)`` or ``("cuda:0",)``.
    default_backend
        JAX's default backend (``"cpu"``, ``"gpu"``, ...).
    cuda_available
        Whether JAX sees at least one CUDA GPU.
    calibration_registry
        Names of the shipped calibration artifacts ``Calibration.from_sweep`` resolves.
    recommended_install
        Install command for GPU support when no GPU is found (``None`` when one is).
    problems
        Human-readable problems found (missing packages, version outside the tested range).
    """

    pytyche_version: str
    python_version: str
    jax_version: str | None
    bartz_version: str | None
    jax_devices: tuple[str, ...]
    default_backend: str | None
    cuda_available: bool
    calibration_registry: tuple[str, ...]
    recommended_install: str | None
    problems: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        lines = [
            "pytyche setup report",
            f"  pytyche      {self.pytyche_version}",
            f"  python       {self.python_version}",
            f"  jax          {self.jax_version or 'NOT INSTALLED'} (backend: {self.default_backend or '-'})",
            f"  bartz        {self.bartz_version or 'NOT INSTALLED'}",
            f"  devices      {', '.join(self.jax_devices) or 'none'}",
            f"  CUDA GPU     {'yes' if self.cuda_available else 'no (fits run on the CPU)'}",
            "  calibration  "
            + (", ".join(self.calibration_registry) if self.calibration_registry else "no shipped artifacts registered"),
        ]
        if self.recommended_install:
            lines.append(f"  GPU support: {self.recommended_install}")
        for p in self.problems:
            lines.append(f"  problem: {p}")
        return "\n".join(lines)


def _registry_names() -> tuple[str, ...]:
    try:
        from pytyche.calibrate.calibration import registry_names
    except ImportError:
        return ()
    return tuple(registry_names())


def check_setup() -> SetupReport:
    """Report the pytyche version, JAX devices, CUDA availability, bartz version and calibration registry.

    Returns
    -------
    SetupReport
        Printable (``print(pt.check_setup())``); ``recommended_install`` is set when no GPU is found.

    Examples
    --------
    >>> import pytyche as pt
    >>> report = pt.check_setup()
    >>> isinstance(report.cuda_available, bool)
    True
    """
    from pytyche._version import __version__

    problems: list[str] = []
    try:
        import jax

        jax_version = jax.__version__
        devices = tuple(str(d) for d in jax.devices())
        backend = jax.default_backend()
        cuda = any(d.platform == "gpu" for d in jax.devices())
    except Exception as exc:  # noqa: BLE001 - any failure here is a setup problem to report
        jax_version, devices, backend, cuda = None, (), None, False
        problems.append(f"JAX could not start: {exc}")
    try:
        import bartz

        bartz_version = bartz.__version__
        major_minor = tuple(int(x) for x in bartz_version.split(".")[:2])
        if major_minor != (0, 13):
            problems.append(f"bartz {bartz_version} is outside the tested range >=0.13,<0.14")
    except ImportError:
        bartz_version = None
        problems.append("bartz is not installed: pip install 'bartz>=0.13,<0.14'")
    return SetupReport(
        pytyche_version=__version__,
        python_version=platform.python_version(),
        jax_version=jax_version,
        bartz_version=bartz_version,
        jax_devices=devices,
        default_backend=backend,
        cuda_available=cuda,
        calibration_registry=_registry_names(),
        recommended_install=None if cuda else _CPU_INSTALL,
        problems=tuple(problems),
    )
