"""The codec: raw payload bytes -> validated samples in model feature order, or a reason.

`decode` takes a batch of payloads (a single payload is a batch of one) and never raises on
any input. Each payload decodes to either `Decoded` (every value finite and physiologically
plausible, in `features` order) or `Rejection` with a reason from a small fixed set
(`monitor.core.types.RejectReason`) and a short, sanitised detail; the common
single-sample payload comes back in columns (`DecodedColumns`).

Block messages are all-or-nothing: one bad sample rejects the whole block, so the window
store never sees half a block. `Rejection.n_samples` tells the shell how many samples the
rejected message carried (1 when it could not be parsed that far), so per-sample
accounting stays exact.
"""

from __future__ import annotations

import functools
import math
import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Annotated, Any, Literal, NamedTuple, cast

import numpy as np
from pydantic import (
    ConfigDict,
    Discriminator,
    Json,
    Tag,
    TypeAdapter,
    ValidationError,
    with_config,
)
from pydantic_core import from_json
from typing_extensions import TypedDict

from monitor.core.schema import (
    PATIENT_ID_PATTERN,
    FiniteFloat,
    PatientId,
    SampleTime,
    SequenceNumber,
    VitalsBlock,
    VitalsMessage,
)
from monitor.core.types import FloatArray, RejectReason
from monitor.core.vitals import BUILTIN, Registry

__all__ = [
    "DEFAULT_LIMITS",
    "REFUSES_PATIENT",
    "CodecLimits",
    "Decoded",
    "DecodedColumns",
    "DecodedSample",
    "Rejection",
    "SingleFields",
    "SingleFieldsJson",
    "clip",
    "decode",
]

_DETAIL_MAX = 160


@dataclass(frozen=True, slots=True)
class CodecLimits:
    """Bounds the codec enforces.

    Attributes:
        max_bytes: Largest payload accepted; checked before any parsing.
        max_future_skew_s: How far a sample time may lie ahead of `now`.
        max_age_s: How far a sample time may lie behind `now`.
        partial: Accept a sample that carries any non-empty subset of the features (a
            model with an observed mask); a feature it lacks is NaN in its values, and so is
            one whose value is implausible (`Decoded.artifacts`: the sample is scored on the
            others, an `artifact` only when none is left). Without it every feature is
            required (`missing_vital`) and an implausible value refuses the sample.
        signals: Where names are resolved and plausibility bounds come from: the built-in
            vitals and the registered signals (a name it lacks is `unknown_vital`).
    """

    max_bytes: int = 64 * 1024
    max_future_skew_s: float = 5.0
    max_age_s: float = 24 * 3600.0
    partial: bool = False
    signals: Registry = BUILTIN


DEFAULT_LIMITS = CodecLimits()


class DecodedSample(NamedTuple):
    """One accepted sample: time, sequence number and values in feature order (float64)."""

    t: float
    seq: int
    values: FloatArray


@dataclass(frozen=True, slots=True)
class Decoded:
    """An accepted message: the patient and its samples in message order.

    `artifacts` (partial models only): the vitals with a value outside their plausible
    bounds in some sample, dropped from it (NaN, as a vital the sample lacks), in feature
    order; the sample is scored on the others.
    """

    patient_id: str
    samples: list[DecodedSample]
    artifacts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused message.

    Attributes:
        reason: Stable reason name, usable as a metric label.
        detail: Short human text; never more than 160 characters of escaped input.
        patient_id: The patient the message is from, when that can be told and the id
            passes the allowlist, else None: the payload's own id for an artifact or
            clock skew; for the reasons of `REFUSES_PATIENT` the topic's (which the
            alerts go to), or the payload's own where there is no topic. It lets the
            shell raise a technical alert.
        vital: The vital concerned (artifact, missing_vital; unknown_vital: the first
            signal name the receiver does not know, when its form is valid), else None.
        n_samples: Samples the message carried, 1 when unknown.
    """

    reason: RejectReason
    detail: str
    patient_id: str | None = None
    vital: str | None = None
    n_samples: int = 1


#: Refusals of what a patient's device sends (or of how it addresses it): a patient not
#: being monitored whose every message is refused for one of them is not monitored at all,
#: so its `Rejection` names the patient (`_refused_patient`) and the engine raises
#: `patient_refused` (docs/alerts.md).
REFUSES_PATIENT: frozenset[RejectReason] = frozenset(
    {
        "too_large",
        "bad_json",
        "bad_schema",
        "bad_patient_id",
        "topic_mismatch",
        "non_finite",
        "unknown_vital",
        "missing_vital",
    }
)

_PATIENT_ID = re.compile(PATIENT_ID_PATTERN)


def _refused_patient(payload: bytes, topic_patient_id: str | None) -> str | None:
    """The patient a refused payload is from: its topic's (the address the device account
    publishes to, and the one its alerts go to), else the payload's own `patient_id` when
    it is JSON; None when there is none or it fails the allowlist. Call it only for a
    payload within the size limit, or with a topic."""
    claimed: object = topic_patient_id
    if claimed is None:
        try:
            parsed = from_json(payload)
        except ValueError:  # not JSON, or nested too deeply
            return None
        claimed = parsed.get("patient_id") if isinstance(parsed, dict) else None
    return claimed if isinstance(claimed, str) and _PATIENT_ID.fullmatch(claimed) else None


def _form(value: Any) -> str:
    return "block" if isinstance(value, dict) and "samples" in value else "single"


# Fast path: a byte hint picks one plain model adapter (a discriminated union costs more
# per message: docs/benchmarks.md). Any failure is re-validated by the exact discriminated
# union, which decides on the parsed keys, so hint mistakes cost time, never correctness.
_SINGLE: TypeAdapter[VitalsMessage] = TypeAdapter(VitalsMessage)


@with_config(ConfigDict(extra="forbid", strict=True))
class SingleFields(TypedDict):
    """`VitalsMessage`'s fields and constraints as a plain dict, for `decode`'s columns: no
    model instance is built. The vitals' names are checked by `decode`. A value is finite
    (`FiniteFloat`, stricter than the schema's `VitalValue`: in columns a NaN is a vital the
    sample lacks, so a payload carrying NaN or Infinity is left to `_decode_one`, which
    names the vital's artifact) or null: a vital not measured, NaN in the columns, as the
    schema's `_drop_nulls` makes it a vital left out."""

    v: Literal[1]
    patient_id: PatientId
    t: SampleTime
    seq: SequenceNumber
    vitals: dict[str, FiniteFloat | None]


#: A payload held as JSON text inside another JSON document (a recording's line) that
#: validates as `SingleFields`: for a pydantic schema of that document, so that the line and
#: its payload are validated in one call (`monitor.replay.recording.read_blocks`).
SingleFieldsJson = Json[SingleFields]

_SINGLE_FIELDS: TypeAdapter[SingleFields] = TypeAdapter(SingleFields)
_BLOCK: TypeAdapter[VitalsBlock] = TypeAdapter(VitalsBlock)
_EXACT: TypeAdapter[VitalsMessage | VitalsBlock] = TypeAdapter(
    Annotated[
        Annotated[VitalsMessage, Tag("single")] | Annotated[VitalsBlock, Tag("block")],
        Discriminator(_form),
    ]
)

# When several errors are present the most specific one names the message.
_PRIORITY: tuple[RejectReason, ...] = (
    "bad_json",
    "bad_patient_id",
    "non_finite",
    "unknown_vital",
    "missing_vital",
    "bad_schema",
)


def clip(text: str, limit: int = _DETAIL_MAX) -> str:
    """Make untrusted text safe for a log line: escape control characters, bound the length.

    Args:
        text: Any text, possibly derived from input.
        limit: Largest length of the result.

    Returns:
        Printable ASCII of at most `limit` characters.
    """
    safe = text[: limit + 1].encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


@functools.lru_cache(maxsize=16)
def _spec(features: tuple[str, ...], signals: Registry) -> tuple[tuple[str, float, float], ...]:
    # Features come from the model card and rarely change: resolve bounds once per tuple.
    return tuple((name, signals[name].low, signals[name].high) for name in features)


def _reason_of(kind: str, loc: tuple[int | str, ...]) -> RejectReason:
    if kind == "json_invalid":
        return "bad_json"
    if kind == "finite_number":
        return "non_finite"
    if kind == "unknown_vital":
        return "unknown_vital"
    if kind == "no_vitals":
        return "missing_vital"
    if loc == ("patient_id",):
        return "bad_patient_id"
    return "bad_schema"


def _from_errors(exc: ValidationError) -> Rejection:
    ranked: list[tuple[int, RejectReason, str]] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        # The first location part is the union tag ("single" or "block"): not the input's.
        loc = error["loc"][1:]
        reason = _reason_of(error["type"], loc)
        where = ".".join(str(part)[:32] for part in loc)
        text = f"{where}: {error['msg']}" if where else error["msg"]
        ranked.append((_PRIORITY.index(reason), reason, text))
    _, reason, text = min(ranked)
    return Rejection(reason, clip(text))


def _validate(payload: bytes) -> VitalsMessage | VitalsBlock | Rejection:
    fast = _BLOCK if b"samples" in payload else _SINGLE
    try:
        return fast.validate_json(payload)
    except ValidationError:
        pass
    try:
        return _EXACT.validate_json(payload)
    except ValidationError as exc:
        return _from_errors(exc)


def _decode_one(
    payload: bytes,
    *,
    topic_patient_id: str | None,
    features: Sequence[str],
    now: float,
    limits: CodecLimits = DEFAULT_LIMITS,
) -> Decoded | Rejection:
    """`decode`'s path for a payload its columns do not take: validate it and extract its
    samples in model feature order, or name the first reason to refuse it.

    Args:
        payload: The raw message body.
        topic_patient_id: The topic's last level, or None when the topic carries no id.
        features: Vital names in model order; other known vitals in the message are ignored.
            Each must be known to `limits.signals`.
        now: Receive time, unix seconds, used for the clock-skew check.
        limits: Size and timestamp bounds.

    Returns:
        `Decoded` when every sample is valid, else `Rejection` (all-or-nothing for blocks).
    """
    if len(payload) > limits.max_bytes:
        detail = f"{len(payload)} bytes > limit {limits.max_bytes}"
        # Never parsed (its bytes are not handed on): only a topic can name its patient.
        return Rejection("too_large", detail, _refused_patient(b"", topic_patient_id))
    message = _validate(payload)
    if isinstance(message, Rejection):
        if message.reason in REFUSES_PATIENT:
            message = replace(message, patient_id=_refused_patient(payload, topic_patient_id))
        return message
    pid = message.patient_id
    if topic_patient_id is not None and topic_patient_id != pid:
        # No id in the detail: it is logged, and ids must never reach a log line.
        detail = "topic patient id != payload patient_id"
        return Rejection("topic_mismatch", detail, _refused_patient(payload, topic_patient_id))
    # Plain tuples: VitalsMessage.samples() would build and validate a model per sample.
    samples: list[tuple[float, int, dict[str, float]]]
    if isinstance(message, VitalsMessage):
        samples = [(message.t, message.seq, message.vitals)]
    else:
        samples = [(s.t, s.seq, s.vitals) for s in message.samples_]
    n = len(samples)
    earliest, latest = now - limits.max_age_s, now + limits.max_future_skew_s
    signals = limits.signals
    spec = _spec(features if isinstance(features, tuple) else tuple(features), signals)
    rows: list[list[float]] = []
    partial = limits.partial
    known = signals.known
    dropped: set[str] = set()  # partial: the vitals dropped as implausible
    for t, seq, vitals in samples:
        if not vitals.keys() <= known:
            unknown = sorted(n[:32] for n in vitals if n not in known)
            detail = f"vitals: unknown vital(s): {', '.join(unknown[:5])}"
            first = min(name for name in vitals if name not in known)
            return Rejection("unknown_vital", clip(detail), pid, first, n)
        if not earliest <= t <= latest:
            detail = f"sample time {t:.3f} is {t - now:+.3f} s from receive time"
            return Rejection("clock_skew", detail, pid, None, n)
        row: list[float] = []
        first_drop: tuple[str, str] | None = None
        for name, low, high in spec:
            value = vitals.get(name)
            if value is None:
                if partial:
                    row.append(math.nan)
                    continue
                return Rejection("missing_vital", f"{name} missing (seq {seq})", pid, name, n)
            # Outside the signal's plausible bounds (NaN and +-Infinity are outside every
            # bound: a failed reading): a sensor artifact, not a patient.
            if not low <= value <= high:
                unit = signals[name].unit
                detail = (
                    f"{name}={value:.6g} outside [{low:g}, {high:g}] {unit} (seq {seq})"
                    if math.isfinite(value)
                    else f"{name}={value} is not a finite number (seq {seq})"
                )
                if not partial:
                    return Rejection("artifact", detail, pid, name, n)
                # The vital is dropped; the sample is still scored on the others.
                dropped.add(name)
                first_drop = first_drop or (name, detail)
                row.append(math.nan)
                continue
            row.append(value)
        if partial and all(map(math.isnan, row)):
            if first_drop is not None:  # nothing plausible left: an artifact refuses it
                return Rejection("artifact", first_drop[1], pid, first_drop[0], n)
            detail = f"none of the model's vitals {list(features)} (seq {seq})"
            return Rejection("missing_vital", clip(detail), pid, spec[0][0], n)
        rows.append(row)
    artifacts = tuple(name for name, _, _ in spec if name in dropped)
    if n == 1:
        t, seq, _ = samples[0]
        sample = DecodedSample(t, seq, np.array(rows[0], dtype=np.float64))
        return Decoded(pid, [sample], artifacts)
    values = np.array(rows, dtype=np.float64).reshape(n, len(spec))
    decoded = [DecodedSample(s[0], s[1], values[i]) for i, s in enumerate(samples)]
    return Decoded(pid, decoded, artifacts)


@functools.lru_cache(maxsize=16)
def _bounds(features: tuple[str, ...], signals: Registry) -> tuple[FloatArray, FloatArray]:
    spec = _spec(features, signals)
    low = np.array([s[1] for s in spec], dtype=np.float64)
    high = np.array([s[2] for s in spec], dtype=np.float64)
    return low, high


#: A message's model vitals in feature order; None where the message gave null (NaN once
#: the rows become an array).
Row = tuple[float | None, ...]
Gather = Callable[[dict[str, float | None]], Row]


def _gatherer(features: tuple[str, ...]) -> Gather:
    if len(features) == 1:
        name = features[0]
        return lambda vitals: (vitals[name],)
    gather: Gather = itemgetter(*features)
    return gather


@dataclass(frozen=True, slots=True)
class DecodedColumns:
    """What `decode` decides, with its common case in columns.

    Attributes:
        index: Positions, ascending, of the accepted single-sample payloads that took the
            vectorised path; position ``index[j]`` decodes to ``Decoded(patient_ids[j],
            [DecodedSample(t[j], seq[j], values[j])])``.
        patient_ids: Patient of each.
        t: Sample time of each.
        seq: Sequence number of each.
        values: ``(len(index), F)`` float64, feature order.
        rest: Position -> the `Decoded` or `Rejection` of every other payload.
    """

    index: list[int]
    patient_ids: list[str]
    t: list[float]
    seq: list[int]
    values: FloatArray
    rest: dict[int, Decoded | Rejection]

    def results(self) -> list[Decoded | Rejection]:
        """One `Decoded` or `Rejection` per payload, in payload order."""
        out: list[Decoded | Rejection | None] = [None] * (len(self.index) + len(self.rest))
        for i, result in self.rest.items():
            out[i] = result
        for i, pid, t, seq, row in zip(
            self.index, self.patient_ids, self.t, self.seq, self.values, strict=True
        ):
            out[i] = Decoded(pid, [DecodedSample(t, seq, row)])
        return [d for d in out if d is not None]

    def __len__(self) -> int:
        return len(self.index) + len(self.rest)

    def slice(self, start: int, stop: int) -> DecodedColumns:
        """The payloads at positions ``start`` to ``stop`` (exclusive), renumbered from 0."""
        index = self.index
        lo, hi = bisect_left(index, start), bisect_left(index, stop)
        rest = self.rest
        if rest:
            rest = {i - start: r for i, r in rest.items() if start <= i < stop}
        # Without a rest, every payload of the slice is in columns.
        index = [i - start for i in index[lo:hi]] if rest else list(range(hi - lo))
        return DecodedColumns(
            index,
            self.patient_ids[lo:hi],
            self.t[lo:hi],
            self.seq[lo:hi],
            self.values[lo:hi],
            rest,
        )


_VITALS_OF, _PATIENT_OF, _TIME_OF, _SEQ_OF = map(itemgetter, ("vitals", "patient_id", "t", "seq"))


def _all_plain(
    validated: Sequence[SingleFields | None],
    topic_patient_ids: Sequence[str | None],
    gather: Gather,
    known: frozenset[str],
) -> tuple[list[SingleFields], list[Row]] | None:
    """`_plain_one_by_one` for the common block, in C-level calls: every message validated,
    naming every feature and only known vitals, on its own patient's topic. Returns
    (messages, rows), or None when any message is not such (the loop then decides)."""
    if None in validated:
        return None
    messages = cast(list[SingleFields], list(validated))
    vitals = list(map(_VITALS_OF, messages))
    try:
        rows = list(map(gather, vitals))
    except KeyError:  # a feature missing
        return None
    if not all(map(known.issuperset, vitals)):
        return None
    if list(map(_PATIENT_OF, messages)) != list(topic_patient_ids):
        return None
    return messages, rows


def decode(
    payloads: Sequence[bytes],
    topic_patient_ids: Sequence[str | None],
    nows: Sequence[float],
    *,
    features: Sequence[str],
    limits: CodecLimits = DEFAULT_LIMITS,
    validated: Sequence[SingleFields | None] | None = None,
) -> DecodedColumns:
    """Validate a batch of payloads and extract their samples in model feature order.

    A single-sample message that validates and names every feature (with `limits.partial`,
    at least one) takes a vectorised path: its values join one array (a null value, a vital
    not measured, as NaN), and the plausibility, presence and clock checks run on arrays.
    Every other payload, and every one that a vectorised check refuses, is decoded on its
    own (a block, a rejection with its exact reason and detail: all-or-nothing per
    payload). `DecodedColumns.results` gives one `Decoded` or `Rejection` per payload.

    Args:
        payloads: Raw message bodies. Where `validated` holds a message, its payload is
            read only if a later check refuses it (so a lazy sequence can parse it then).
        topic_patient_ids: The topic's last level of each, or None.
        nows: Receive time of each, unix seconds.
        features: Vital names in model order.
        limits: Size and timestamp bounds.
        validated: Per payload, None or what `SingleFieldsJson` gave for it (its text
            validated in a larger document). The caller vouches that such a payload is at
            most `limits.max_bytes` long: its size is not checked again.
    """
    names = features if isinstance(features, tuple) else tuple(features)
    gather = _gatherer(names)
    known = limits.signals.known
    plain = None if validated is None else _all_plain(validated, topic_patient_ids, gather, known)
    if plain is None:
        index, messages, rows = _plain_one_by_one(
            payloads, validated, topic_patient_ids, gather, limits.max_bytes, known,
            names if limits.partial else None,
        )  # fmt: skip
    else:
        index, (messages, rows) = list(range(len(payloads))), plain
    values = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    t = list(map(_TIME_OF, messages))
    if rows:
        t_a = np.array(t, dtype=np.float64)
        now = np.array(nows if plain is not None else [nows[i] for i in index], np.float64)
        low, high = _bounds(names, limits.signals)
        # A missing vital of a partial sample (NaN) is out of no bound.
        ok = (
            (t_a >= now - limits.max_age_s)
            & (t_a <= now + limits.max_future_skew_s)
            & ~((values < low) | (values > high)).any(axis=1)
        )
        # A null (NaN here): with `partial` a vital not measured, but a sample needs one of
        # the model's vitals; without it every vital is needed. `_decode_one` names why.
        absent = np.isnan(values)
        if absent.any():
            ok &= ~(absent.all(axis=1) if limits.partial else absent.any(axis=1))
        if not ok.all():
            keep = np.flatnonzero(ok).tolist()
            index = [index[j] for j in keep]
            messages = [messages[j] for j in keep]
            t = [t[j] for j in keep]
            values = values[keep]
    rest: dict[int, Decoded | Rejection] = {}
    if len(index) < len(payloads):
        fast = set(index)
        rest = {
            i: _decode_one(
                payloads[i],
                topic_patient_id=topic_patient_ids[i],
                features=names,
                now=nows[i],
                limits=limits,
            )
            for i in range(len(payloads))
            if i not in fast
        }
    return DecodedColumns(
        index,
        list(map(_PATIENT_OF, messages)),
        t,
        list(map(_SEQ_OF, messages)),
        values,
        rest,
    )


def _plain_one_by_one(
    payloads: Sequence[bytes],
    validated: Sequence[SingleFields | None] | None,
    topic_patient_ids: Sequence[str | None],
    gather: Gather,
    max_bytes: int,
    known: frozenset[str],
    partial: tuple[str, ...] | None = None,
) -> tuple[list[int], list[SingleFields], list[Row]]:
    """`decode`'s single-sample messages that name every feature (with `partial`,
    any of them, None for the others) and only known vitals, on their own patient's topic
    (or a topic without one): their positions, the messages and their feature rows (None
    for a vital given as null or, with `partial`, left out; `decode` checks that a row has
    what its model needs)."""
    index: list[int] = []
    messages: list[SingleFields] = []
    rows: list[Row] = []
    validate = _SINGLE_FIELDS.validate_json
    for i, given in enumerate(validated or [None] * len(payloads)):
        try:
            if given is not None:
                message = given
            else:
                payload = payloads[i]
                if len(payload) > max_bytes or b"samples" in payload:
                    continue
                message = validate(payload)
            vitals = message["vitals"]
            row = gather(vitals)
        except KeyError:
            if partial is None:
                continue
            row = tuple(map(vitals.get, partial))
        except ValidationError:
            continue
        topic_pid = topic_patient_ids[i]
        if not vitals.keys() <= known or (
            topic_pid is not None and topic_pid != message["patient_id"]
        ):
            continue
        index.append(i)
        messages.append(message)
        rows.append(row)
    return index, messages, rows
