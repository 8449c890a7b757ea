"""The topic convention: ``vitals/<patient_id>``, and for a sharded daemon
``vitals/<partition>/<patient_id>``; the patient key is the topic's last level (`patient_of`).

Devices publish plain ``vitals/<patient_id>``; the NATS server's mapping adds the partition
(`monitor.transports.nats.partition`). A shard subscribes to ``vitals/<k>/+`` for each
partition k it owns, and `PartitionGuard` refuses a message whose partition is not its
patient id's hash: the server checks publish permissions after the mapping, so a client
allowed to publish ``vitals.*.*`` can publish straight into any partition, and such a
patient would otherwise be watched by two shards at once (or by the wrong one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from monitor.engine.ports import IngressBatch
from monitor.transports.nats.partition import partition_of

__all__ = ["PartitionGuard", "ingress_batch", "partition_topics", "patient_of"]

#: The message sink a guard feeds: (topic, payload) pairs, in arrival order.
Sink = Callable[[list[tuple[str, bytes]]], None]
#: Told once per refused message, with the reason.
Refused = Callable[[str], None]
#: Patient ids whose partition is remembered (past that, the cache starts again).
_CACHE_MAX = 200_000


def patient_of(topic: str) -> str | None:
    """Return the topic's last level (the patient id by convention), or None."""
    _, sep, last = topic.rpartition("/")
    return last if sep else None


def ingress_batch(messages: Sequence[tuple[str, bytes]], now: float) -> IngressBatch:
    """(topic, payload) pairs received at `now` as the engine's ingress batch, each payload
    keyed by its topic's patient id."""
    return IngressBatch(
        [patient_of(topic) for topic, _ in messages],
        [payload for _, payload in messages],
        [now] * len(messages),
    )


def partition_topics(prefix: str, partitions: Sequence[int]) -> list[str]:
    """The topic filters of the owned `partitions`: ``<prefix>/<k>/+`` each."""
    return [f"{prefix}/{k}/+" for k in partitions]


class PartitionGuard:
    """Pass on the messages whose topic's partition is their patient id's partition.

    A topic that does not read ``<prefix>/<k>/<id>`` with k an owned partition and
    k == FNV-1a-32(id) mod P is refused with the reason ``wrong_partition`` (the daemon counts
    it as an invalid outcome and logs it, rate-limited).

    Args:
        sink: Takes the accepted messages.
        on_refused: Told of each refused message.
        partitions: P, the partition count of the server's mapping.
        owned: The partitions this shard subscribed to.
    """

    def __init__(
        self, sink: Sink, on_refused: Refused, partitions: int, owned: Sequence[int]
    ) -> None:
        self._sink = sink
        self._on_refused = on_refused
        self._p = partitions
        self._owned = frozenset(str(k) for k in owned)
        self._cache: dict[str, str] = {}  # patient id -> its partition, as in topics

    def __call__(self, messages: list[tuple[str, bytes]]) -> None:
        """Check each message; hand the accepted ones to the sink in one call."""
        accepted = [m for m in messages if self.accepts(m[0])]
        if len(accepted) < len(messages):
            for _ in range(len(messages) - len(accepted)):
                self._on_refused("wrong_partition")
        if accepted:
            self._sink(accepted)

    def accepts(self, topic: str) -> bool:
        """Whether `topic` is ``<prefix>/<k>/<id>`` of an owned k that is the id's partition."""
        head, sep, patient = topic.rpartition("/")
        if not sep:
            return False
        k = head.rpartition("/")[2]
        if k not in self._owned:
            return False
        cache = self._cache
        expected = cache.get(patient)
        if expected is None:
            if len(cache) >= _CACHE_MAX:
                cache.clear()  # bounded: ids come and go; recomputing costs ~1 us each
            expected = cache[patient] = str(partition_of(patient, self._p))
        return expected == k
