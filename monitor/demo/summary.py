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


def legend(window: int) -> list[str]:
    """What the figures mean, for a daemon serving a model with this `window` (samples)."""
    return [
        "t+S: seconds since the demo started. Rates are per second over the last 5 s.",
        "msg/s: messages the daemon received; each sample in them is scored, warming_up "
        f"(a patient's first {window} samples fill the model's window and are not scored) "
        "or other (refused, late, duplicate, shed).",
        "e2e: from receipt to verdict; inference: one batched model call.",
        "raised: alert episodes raised since the start (a physiological alert on a vital, or "
        "a technical one such as signal_lost); each is published as events (raised, "
        "escalated, cleared), the ALERT lines.",
    ]


def figures_line(elapsed_s: float, f: Figures) -> str:
    """One line with every figure of a refresh, labelled, prefixed by t+seconds since start."""
    return (
        f"[t+{elapsed_s:.1f}s] patients={f.patients} msg/s={f.messages_per_s:.0f} "
        f"(scored={f.scored_per_s:.0f} warming_up={f.warming_per_s:.0f} "
        f"other={f.other_per_s:.0f}) e2e p50={ms(f.e2e_p50_s)} p99={ms(f.e2e_p99_s)} "
        f"inference p50={ms(f.inference_p50_s)} p99={ms(f.inference_p99_s)} "
        f"raised: physiological={f.alerts} technical={f.technical}"
    )


def shard_line(label: str, f: Figures) -> str:
    """One shard's share of a refresh (`monitor demo --shards`): its patients, messages and
    alerts, from its own metrics."""
    return (
        f"  shard {label}: patients={f.patients} msg/s={f.messages_per_s:.0f} "
        f"scored/s={f.scored_per_s:.0f} e2e p99={ms(f.e2e_p99_s)} "
        f"raised: physiological={f.alerts} technical={f.technical}"
    )


def alert_line(seen: Seen, started: float) -> str:
    """One alert event: when, patient, vital (or technical reason), state and severity."""
    e = seen.event
    what = e.vital or "-"
    if e.kind == "technical":
        what = f"{e.reason}{f' ({e.vital})' if e.vital else ''}"
    z = "" if e.z is None else f" z={e.z:+.1f}"
    return (
        f"ALERT [t+{seen.at - started:.1f}s] {e.state:<9} {e.severity:<6} "
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
        #: What the figures mean (`legend`): under the figures on a TTY, once before the
        #: first line otherwise (the demo prints it).
        self.legend: list[str] = []
        self.out = out or sys.stdout

    def show(
        self,
        elapsed_s: float,
        f: Figures,
        recent: Sequence[Seen],
        new: Sequence[Seen],
        started: float,
        shards: Sequence[tuple[str, Figures]] = (),
        open_now: str = "",
    ) -> None:
        """Show one refresh.

        Args:
            elapsed_s: Seconds since the demo started.
            f: The figures of this refresh.
            recent: The most recent alert events (TTY screen).
            new: Events received since the previous refresh (plain lines).
            started: Monotonic time the demo started (alert timestamps are relative to it).
            shards: Each shard's label ("0/2") and figures, shown under the totals `f`.
            open_now: The open alerts the state messages show (`AlertFeed.open_now`).
        """
        if not self.tty:
            lines = [alert_line(s, started) for s in new] + [figures_line(elapsed_s, f)]
            lines += [shard_line(label, sf) for label, sf in shards]
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
            return
        screen = [
            *self.header,
            "",
            f"running {elapsed_s:.0f}s   patients {f.patients}",
            f"messages received/s {f.messages_per_s:6.0f}   samples: scored/s "
            f"{f.scored_per_s:.0f}, warming up/s {f.warming_per_s:.0f}, other/s "
            f"{f.other_per_s:.0f}",
            f"end-to-end latency  p50 {ms(f.e2e_p50_s):>9}   p99 {ms(f.e2e_p99_s):>9}",
            f"inference latency   p50 {ms(f.inference_p50_s):>9}   p99 {ms(f.inference_p99_s):>9}",
            f"alerts raised since start: physiological {f.alerts}, technical {f.technical}"
            + (f"; {open_now}" if open_now else ""),
            *(shard_line(label, sf) for label, sf in shards),
            "",
            *self.legend,
            "",
            "recent alert events:" if recent else "recent alert events: none yet",
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
