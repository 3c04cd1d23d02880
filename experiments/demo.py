"""The README's demo: what pytyche can do, on this machine, in a few minutes."""

from __future__ import annotations

import pytyche as pt


def main() -> None:
    print(pt.check_setup())


if __name__ == "__main__":
    main()
