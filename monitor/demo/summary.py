"""The live terminal summary: one screen redrawn in place on a TTY, plain lines otherwise."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import TextIO

from monitor.demo.feed import Seen
from monitor.demo.stats import Figures

#: Cursor home and clear to the end of the screen: redraw without scrolling.
_HOME_CLEAR = "\x1b[H\x1b[J"


def ms(seconds: float) -> str:
    """Format a duration in milliseconds ("-" when there is no observation)."""
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}ms"


def figures_line(elapsed_s: float, f: Figures) -> str:
    """One line with every figure of a refresh, prefixed by the seconds since start."""
    return (
        f"[{elapsed_s:6.1f}s] patients={f.patients} msg/s={f.messages_per_s:.0f} "
        f"scored/s={f.scored_per_s:.0f} e2e p50={ms(f.e2e_p50_s)} p99={ms(f.e2e_p99_s)} "
        f"inference p50={ms(f.inference_p50_s)} p99={ms(f.inference_p99_s)} "
        f"alerts={f.alerts} technical={f.technical}"
    )


def alert_line(seen: Seen, started: float) -> str:
    """One alert event: when, patient, vital (or technical reason), state and severity."""
    e = seen.event
    what = e.vital or "-"
    if e.kind == "technical":
        what = f"{e.reason}{f' ({e.vital})' if e.vital else ''}"
    z = "" if e.z is None else f" z={e.z:+.1f}"
    return (
        f"ALERT [{seen.at - started:6.1f}s] {e.state:<9} {e.severity:<6} "
        f"patient={e.patient_id or '-'} {e.kind}={what}{z}"
    )


class Display:
    """Writes refreshes to a stream.

    Args:
        tty: Redraw one screen in place (ANSI) instead of appending lines.
        header: Lines shown at the top of every TTY screen (URLs, model).
        out: The stream (standard output by default).
    """

    def __init__(self, tty: bool, header: Sequence[str], out: TextIO | None = None) -> None:
        self.tty = tty
        self.header = list(header)
        self.out = out or sys.stdout

    def show(
        self,
        elapsed_s: float,
        f: Figures,
        recent: Sequence[Seen],
        new: Sequence[Seen],
        started: float,
    ) -> None:
        """Show one refresh.

        Args:
            elapsed_s: Seconds since the demo started.
            f: The figures of this refresh.
            recent: The most recent alert events (TTY screen).
            new: Events received since the previous refresh (plain lines).
            started: Monotonic time the demo started (alert timestamps are relative to it).
        """
        if not self.tty:
            lines = [alert_line(s, started) for s in new] + [figures_line(elapsed_s, f)]
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
            return
        screen = [
            *self.header,
            "",
            f"running {elapsed_s:.0f}s   patients {f.patients}",
            f"messages/s {f.messages_per_s:8.0f}   scored/s {f.scored_per_s:8.0f}",
            f"end-to-end latency  p50 {ms(f.e2e_p50_s):>9}   p99 {ms(f.e2e_p99_s):>9}",
            f"inference latency   p50 {ms(f.inference_p50_s):>9}   p99 {ms(f.inference_p99_s):>9}",
            f"alerts raised {f.alerts}   technical {f.technical}",
            "",
            "recent alerts:" if recent else "recent alerts: none yet",
            *(f"  {alert_line(s, started)}" for s in reversed(recent)),
            "",
            "Ctrl-C to stop",
        ]
        self.out.write(_HOME_CLEAR + "\n".join(screen) + "\n")
        self.out.flush()

    def say(self, line: str) -> None:
        """Print a line outside the refreshes (startup, shutdown)."""
        self.out.write(line + "\n")
        self.out.flush()
