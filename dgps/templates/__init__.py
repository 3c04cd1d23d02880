"""DGP templates, one per module; each exposes ``make(**params) -> SimGenerator``."""
