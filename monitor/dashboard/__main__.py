"""`python -m monitor.dashboard [--out FILE]`: write the dashboard JSON, or print it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from monitor.dashboard import build_dashboard, render


def main(argv: Sequence[str] | None = None) -> None:
    """Write the dashboard JSON to `--out`, or print it."""
    parser = argparse.ArgumentParser(prog="python -m monitor.dashboard", description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    text = render(build_dashboard())
    if args.out is None:
        print(text, end="")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
