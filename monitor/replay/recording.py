"""The recording format: JSON Lines, one record per MQTT message, gzip when the name ends .gz.

Each line is ``{"topic": str, "payload": str, "received_at": float}``; a payload that is not
valid UTF-8 is stored as ``"payload_b64"`` (base64) instead of ``"payload"``. An optional first
line ``{"recording": 1, "created_at": ..., "source": ...}`` is a header. See docs/recordings.md.

The writer flushes every `flush_every` records or `flush_interval_s` seconds (a gzip sync flush),
so a recorder that is killed loses at most that much. The reader tolerates a truncated last line
and a truncated gzip tail: it yields every complete record before the cut.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import json
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import compress
from json.encoder import encode_basestring
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import IO, Annotated, Any, cast, overload

from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, ValidationError, with_config
from pydantic_core import from_json
from typing_extensions import TypedDict

from monitor.core.codec import CodecLimits, SingleFields, SingleFieldsJson
from monitor.engine.ports import IngressBatch
from monitor.errors import DataError
from monitor.transports.mqtt.topics import patient_of

FORMAT_VERSION = 1
_CHUNK = 1 << 16

#: Most bytes one gzip read inflates to at once: a bomb never sits in memory whole.
_INFLATE_STEP = 1 << 20

#: Receive times are unix seconds in [0, RECEIVED_AT_LIMIT): the wire schema's bound on
#: sample times (`monitor.core.schema.SampleTime`, year 5138). Past 2**53 a float no longer
#: holds whole seconds, and nothing recorded can be that late.
RECEIVED_AT_LIMIT = 1e11

#: Bytes a JSON string may take per payload byte: a control character is escaped as
#: ``\u00XX`` (non-UTF-8 payloads are base64, 4 per 3).
_ESCAPED_PER_BYTE = 6

#: A decompressed chunk of more than `_MANY_LINES` lines averaging under `_MEAN_LINE_BYTES`
#: is mostly blank lines: the shortest record, ``{"topic":"","payload":"","received_at":0}``,
#: takes 41 bytes. Refused, so that a bomb of blank lines between records costs no more
#: than a few Python calls per kilobyte.
_MANY_LINES = 1000
_MEAN_LINE_BYTES = 41

#: Bytes of a line besides its payload: keys, time, and a topic (MQTT allows 65,535 bytes).
ENVELOPE_BYTES = 1 << 16


def line_limit(max_payload_bytes: int) -> int:
    """The longest line a recording may hold when payloads are at most `max_payload_bytes`.

    A longer payload would be refused (`too_large`) whatever it holds, so a longer line is
    not a record the daemon could score: reading stops there instead of holding it.
    """
    return _ESCAPED_PER_BYTE * max_payload_bytes + ENVELOPE_BYTES


#: `line_limit` of the codec's default payload limit (`ingest.max_payload_bytes`).
MAX_LINE_BYTES = line_limit(CodecLimits().max_bytes)

#: Lines validated per pydantic call in `read_blocks`. A call holds the GIL throughout: in
#: offline replay the inference thread, back from a forward pass, waits for the call to end,
#: so calls are kept short (a whole 64 KiB gzip chunk is several hundred lines).
VALIDATE_LINES = 128


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded MQTT message.

    Attributes:
        topic: The topic it arrived on.
        payload: The payload bytes, exactly as received.
        received_at: Receive time, unix seconds.
    """

    topic: str
    payload: bytes
    received_at: float


def encode_record(record: Record) -> str:
    """Return the JSON line (without newline) for a record."""
    try:
        payload = ',"payload":' + encode_basestring(record.payload.decode("utf-8"))
    except UnicodeDecodeError:
        payload = ',"payload_b64":"' + base64.b64encode(record.payload).decode("ascii") + '"'
    # Built by hand, 3.5x faster than json.dumps of a dict (a recorder at 10k msg/s); the
    # same bytes: json.dumps(..., separators=(",", ":"), ensure_ascii=False) escapes strings
    # with this function and writes floats with repr (tests/replay/test_recording.py).
    topic = encode_basestring(record.topic)
    return '{"topic":' + topic + payload + ',"received_at":' + repr(record.received_at) + "}"


def decode_record(obj: dict[str, Any], source: str) -> Record:
    """Build a record from a parsed JSON line.

    Raises:
        DataError: A field is missing or has the wrong type.
    """
    try:
        topic = obj["topic"]
        if "payload_b64" in obj:
            payload = base64.b64decode(obj["payload_b64"], validate=True)
        else:
            payload = obj["payload"].encode("utf-8")
        received_at = float(obj["received_at"])
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError, binascii.Error) as exc:
        raise DataError(source, f"bad record {str(obj)[:80]!r}: {exc!r}") from exc
    if not isinstance(topic, str):
        raise DataError(source, f"topic is not a string in {str(obj)[:80]!r}")
    if not 0.0 <= received_at < RECEIVED_AT_LIMIT:
        raise DataError(
            source,
            f"received_at {received_at!r} is not a receive time "
            f"(unix seconds from 0 to {RECEIVED_AT_LIMIT:g})",
        )
    return Record(topic, payload, received_at)


class RecordingWriter:
    """Append records to a recording file; use as a context manager.

    Args:
        path: Output file; gzip-compressed when the name ends in ``.gz``.
        source: Free text for the header (broker URL, importer), or None for no header.
        flush_every: Flush after this many records.
        flush_interval_s: Flush when this long has passed since the last flush.
        compresslevel: gzip level of a ``.gz`` file (9: smallest; 1: about 3 times faster,
            a quarter larger, for a recorder that must keep up with a live stream).
    """

    def __init__(
        self,
        path: Path,
        *,
        source: str | None = None,
        flush_every: int = 1000,
        flush_interval_s: float = 1.0,
        compresslevel: int = 9,
    ) -> None:
        self.path = path
        self.compresslevel = compresslevel
        self.source = source
        self.flush_every = flush_every
        self.flush_interval_s = flush_interval_s
        self.count = 0
        self._file: IO[str] | None = None
        self._pending = 0
        self._last_flush = 0.0

    def __enter__(self) -> RecordingWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.name.endswith(".gz"):
            self._file = gzip.open(
                self.path, "wt", encoding="utf-8", compresslevel=self.compresslevel
            )
        else:
            self._file = self.path.open("w", encoding="utf-8")
        if self.source is not None:
            header = {"recording": FORMAT_VERSION, "created_at": time.time(), "source": self.source}
            self._file.write(json.dumps(header) + "\n")
        self._last_flush = time.monotonic()
        return self

    def write(self, record: Record) -> None:
        """Append one record; flushes when the count or interval is reached."""
        if self._file is None:
            raise RuntimeError("RecordingWriter used outside its `with` block")
        self._file.write(encode_record(record) + "\n")
        self.count += 1
        self._pending += 1
        if (
            self._pending >= self.flush_every
            or time.monotonic() - self._last_flush >= self.flush_interval_s
        ):
            self.flush()

    def write_many(self, records: Sequence[Record]) -> None:
        """Append records in one write (a recorder's batch); flushes as `write` does."""
        if self._file is None:
            raise RuntimeError("RecordingWriter used outside its `with` block")
        if not records:
            return
        self._file.write("".join([encode_record(r) + "\n" for r in records]))
        self.count += len(records)
        self._pending += len(records)
        if (
            self._pending >= self.flush_every
            or time.monotonic() - self._last_flush >= self.flush_interval_s
        ):
            self.flush()

    def flush(self) -> None:
        """Push everything written so far to the file (a gzip sync flush for .gz)."""
        if self._file is not None:
            self._file.flush()
        self._pending = 0
        self._last_flush = time.monotonic()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _CorruptGzip(Exception):
    """The gzip stream is not gzip, fails its check, or has garbage after its end."""


def _raw_chunks(path: Path) -> Iterator[bytes]:
    """Yield decompressed bytes, at most `_INFLATE_STEP` at a time; a gzip stream cut short
    ends quietly after its last byte, and zero bytes after a stream are padding (as gzip(1)
    reads them).

    Raises:
        _CorruptGzip: Not gzip data, a failed CRC or length check, or other bytes after
            a stream's end.
    """
    with path.open("rb") as f:
        if not path.name.endswith(".gz"):
            while chunk := f.read(_CHUNK):
                yield chunk
            return
        inflater = zlib.decompressobj(wbits=31)
        between = False  # after a stream's end: padding, or another stream (appended)
        try:
            while data := f.read(_CHUNK):
                while data:
                    if between:
                        data = data.lstrip(b"\0")
                        if not data:
                            break
                        between = False
                    out = inflater.decompress(data, _INFLATE_STEP)
                    if out:
                        yield out
                    if inflater.eof:
                        data = inflater.unused_data
                        inflater = zlib.decompressobj(wbits=31)
                        between = True
                    else:
                        data = inflater.unconsumed_tail
            yield inflater.flush()
        except zlib.error as exc:
            raise _CorruptGzip(
                str(exc).removeprefix("Error -3 while decompressing data: ")
            ) from exc


def _line_blocks(path: Path, max_line_bytes: int) -> Iterator[tuple[int, list[bytes], bool]]:
    """Yield (number of the first line, lines, complete) a decompressed chunk at a time;
    complete means a newline ended each line (only a cut last line is not). The first line
    comes alone: it may be the header. Stretches of blank lines are counted, not split.

    Raises:
        DataError: A line is longer than `max_line_bytes`, or the gzip data is corrupt.
    """
    buffer = b""
    number = 1
    blank = 0  # bytes of the stretch of blank lines read last
    chunks = _raw_chunks(path)
    while True:
        try:
            chunk = next(chunks, None)
        except _CorruptGzip as exc:
            raise DataError(f"{path}:{number}", f"corrupt gzip data: {exc}") from None
        if chunk is None:
            break
        if not chunk.strip() and not buffer.strip():  # blank lines: counted, not split
            newlines = chunk.count(b"\n")
            number += newlines
            buffer = chunk[chunk.rfind(b"\n") + 1 :] if newlines else buffer + chunk
            blank += len(chunk)
            if blank > max_line_bytes:
                raise DataError(
                    f"{path}:{number}",
                    f"more than {max_line_bytes:,} bytes of blank lines: not a recording",
                )
            continue
        blank = 0
        size = len(buffer) + len(chunk)
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        if len(complete) > _MANY_LINES and size < _MEAN_LINE_BYTES * len(complete):
            raise DataError(
                f"{path}:{number}",
                f"{len(complete):,} lines in {size:,} bytes from here: mostly blank lines, "
                "not a recording",
            )
        if complete and max(map(len, complete)) > max_line_bytes:
            for offset, line in enumerate(complete):
                _check_length(path, number + offset, line, max_line_bytes)
        _check_length(path, number + len(complete), buffer, max_line_bytes)
        if number == 1 and complete:
            yield 1, complete[:1], True
            number, complete = 2, complete[1:]
        if complete:
            yield number, complete, True
            number += len(complete)
    if buffer:
        yield number, [buffer], False


def _check_length(path: Path, number: int, line: bytes, max_line_bytes: int) -> None:
    if len(line) > max_line_bytes:
        raise DataError(
            f"{path}:{number}",
            f"line longer than {max_line_bytes:,} bytes, more than a record can hold "
            "(its payload past ingest.max_payload_bytes, escaped, plus the envelope)",
        )


def _lines(path: Path, max_line_bytes: int) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (line number, line, complete) where complete means a newline ended it."""
    for number, lines, complete in _line_blocks(path, max_line_bytes):
        for offset, line in enumerate(lines):
            yield number + offset, line, complete


def _parse(line: bytes) -> Any:
    """Parse one JSON line as `json.loads` does, faster on recorded lines.

    pydantic-core's parser accepts a subset of what `json.loads` accepts and gives the same
    values for it (checked on whole recordings); whatever it refuses (a lone surrogate
    escape, a byte-order mark, UTF-16, broken JSON) goes to `json.loads`, which then parses
    it or raises its own error.
    """
    try:
        return from_json(line)
    except ValueError:
        return json.loads(line)


def _plain_record(obj: dict[str, Any]) -> Record | None:
    """The common line (text payload, string topic, numeric time) without `decode_record`'s
    per-line source string; None for anything else, which `decode_record` then handles."""
    topic, payload = obj.get("topic"), obj.get("payload")
    if type(topic) is not str or type(payload) is not str or "payload_b64" in obj:
        return None
    try:
        received_at = float(obj["received_at"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if not 0.0 <= received_at < RECEIVED_AT_LIMIT:
        return None
    try:
        return Record(topic, payload.encode("utf-8"), received_at)
    except UnicodeEncodeError:
        return None


def _object_record(path: Path, number: int, obj: Any) -> Record | None:
    """The record of a parsed line; None for the header."""
    if not isinstance(obj, dict):
        raise DataError(f"{path}:{number}", "a record must be a JSON object")
    if number == 1 and "recording" in obj and "topic" not in obj:
        return None
    # The common line, inline: decode_record costs a call and a source string per line.
    record = _plain_record(obj)
    return decode_record(obj, f"{path}:{number}") if record is None else record


def _line_record(path: Path, number: int, line: bytes, complete: bool) -> Record | None:
    """The record of one line; None for a blank line, the header, or a cut last line that
    does not parse (the writer was killed mid-line)."""
    if not line.strip():
        return None
    try:
        obj = _parse(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        if not complete:
            return None
        if isinstance(exc, RecursionError):
            raise DataError(f"{path}:{number}", "not JSON: nested too deeply") from None
        raise DataError(f"{path}:{number}", f"not JSON: {exc}") from exc
    return _object_record(path, number, obj)


def read_recording(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Record]:
    """Yield the records of a recording in file order, skipping the header.

    A last line that does not parse (the writer was killed mid-line) is dropped.

    Args:
        path: The recording.
        max_line_bytes: Longest line accepted (`line_limit` of the payload limit).

    Raises:
        DataError: A line other than the last does not parse as a record, a line is too
            long, a receive time is out of range, or the gzip data is corrupt.
    """
    for number, line, complete in _lines(path, max_line_bytes):
        record = _line_record(path, number, line, complete)
        if record is not None:
            yield record


@with_config(ConfigDict(extra="forbid", strict=True))
class _PlainLine(TypedDict):
    """The common line: a text payload, validated with the line when it is a plain
    single-sample message (else kept as text), a string topic and a numeric time."""

    topic: str
    payload: Annotated[SingleFieldsJson | str, Field(union_mode="left_to_right")]
    received_at: Annotated[float, Field(allow_inf_nan=False, ge=0.0, lt=RECEIVED_AT_LIMIT)]


class _OtherLine:
    """Any other JSON object line (binary payload, extra keys, odd types): handled as
    `read_recording` handles it."""

    __slots__ = ("obj",)

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj


# Each line validates as a _PlainLine, else as any JSON object (wrapped in _OtherLine).
_BLOCK = cast(
    TypeAdapter[list[_PlainLine | _OtherLine]],
    TypeAdapter(
        list[
            Annotated[
                _PlainLine | Annotated[dict[str, Any], AfterValidator(_OtherLine)],
                Field(union_mode="left_to_right"),
            ]
        ]
    ),
)
_TOPIC, _PAYLOAD, _RECEIVED_AT = (itemgetter(key) for key in ("topic", "payload", "received_at"))


class _Payloads(Sequence[bytes]):
    """The payload bytes of a block's records. A payload validated with its line is
    parsed out of the line again only when asked for: the codec's `decode` asks only for a
    message it refuses after validation (an artifact, a clock skew: rare)."""

    __slots__ = ("_items", "_lines")

    def __init__(self, items: list[SingleFields | str | bytes], lines: list[bytes]) -> None:
        self._items = items
        self._lines = lines

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        item = self._items[index]
        if type(item) is bytes:
            return item
        if type(item) is str:
            return item.encode("utf-8")
        payload: str = _parse(self._lines[index])["payload"]
        return payload.encode("utf-8")


@dataclass(frozen=True, slots=True)
class RecordBlock:
    """Consecutive records of a recording, in columns (`read_blocks`).

    Attributes:
        topics: Topic of each record.
        received_at: Receive time of each, unix seconds.
        payloads: Payload bytes of each (as `Record.payload`).
        validated: Per record, None or its payload as `SingleFieldsJson` validated it with
            the line (codec `decode`); None for the whole block when none was.
        longest: Bytes of the block's longest line, a bound on each validated payload's size.
    """

    topics: list[str]
    received_at: list[float]
    payloads: Sequence[bytes]
    validated: list[SingleFields | None] | None = None
    longest: int = 0

    @classmethod
    def of(cls, records: Sequence[Record]) -> RecordBlock:
        """The block of these records, none validated."""
        return cls(
            [r.topic for r in records],
            [r.received_at for r in records],
            [r.payload for r in records],
        )

    def __len__(self) -> int:
        return len(self.topics)

    def batch(self) -> IngressBatch:
        """The block as the engine's ingress batch: a recording holds MQTT topics, so the
        patient key of each record is its topic's, by the MQTT transport's convention."""
        keys = [patient_of(topic) for topic in self.topics]
        return IngressBatch(keys, self.payloads, self.received_at, self.validated, self.longest)


def _validated(lines: list[bytes]) -> list[_PlainLine | _OtherLine]:
    """`_BLOCK` of the lines, `VALIDATE_LINES` at a time.

    Raises:
        ValidationError: A line is not a JSON object.
    """
    items: list[_PlainLine | _OtherLine] = []
    for start in range(0, len(lines), VALIDATE_LINES):
        items += _BLOCK.validate_json(
            b"[" + b",".join(lines[start : start + VALIDATE_LINES]) + b"]"
        )
    return items


def read_blocks(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[RecordBlock]:
    """`read_recording`'s records, in the same order, a block (a decompressed chunk) at a time.

    A block's lines are validated `VALIDATE_LINES` per call, each plain single-sample
    payload with its line (`SingleFieldsJson`): about half of what parsing each line and
    then validating its payload costs. A block where a call fails (a line that is not a
    JSON object, a blank line, a cut last line) is read line by line, as `read_recording`
    reads it; so is the first line (the header, if any).

    Args:
        path: The recording.
        max_line_bytes: Longest line accepted (`line_limit` of the payload limit).

    Raises:
        DataError: As `read_recording`.
    """
    for number, lines, complete in _line_blocks(path, max_line_bytes):
        items: list[_PlainLine | _OtherLine] | None = None
        if complete and number > 1:
            with contextlib.suppress(ValidationError):  # read line by line instead
                items = _validated(lines)
        if items is None:
            # Blank lines are passed over in C (`compress`): only the others cost a call.
            records = [
                record
                for offset in compress(range(len(lines)), map(bytes.strip, lines))
                if (record := _line_record(path, number + offset, lines[offset], complete))
                is not None
            ]
            if records:
                yield RecordBlock.of(records)
            continue
        yield _block(path, number, lines, items)


def _block(
    path: Path, number: int, lines: list[bytes], items: list[_PlainLine | _OtherLine]
) -> RecordBlock:
    plain = cast(list[_PlainLine], items)
    if not any(type(item) is _OtherLine for item in items):
        topics, received_at = list(map(_TOPIC, plain)), list(map(_RECEIVED_AT, plain))
        payloads: list[SingleFields | str | bytes] = list(map(_PAYLOAD, plain))
    else:
        topics, received_at, payloads = [], [], []
        for offset, item in enumerate(items):
            if isinstance(item, _OtherLine):
                record = _object_record(path, number + offset, item.obj)
                assert record is not None  # only the first line can be a header
                topics.append(record.topic)
                received_at.append(record.received_at)
                payloads.append(record.payload)
            else:
                topics.append(item["topic"])
                received_at.append(item["received_at"])
                payloads.append(item["payload"])
    validated: list[SingleFields | None] = [p if isinstance(p, dict) else None for p in payloads]
    return RecordBlock(
        topics, received_at, _Payloads(payloads, lines), validated, max(map(len, lines))
    )


def read_header(path: Path) -> dict[str, Any] | None:
    """Return the header of a recording, or None when it has none."""
    for _number, line, _complete in _lines(path, MAX_LINE_BYTES):
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            return None
        if isinstance(obj, dict) and "recording" in obj and "topic" not in obj:
            return obj
        return None
    return None
