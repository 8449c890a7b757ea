"""The topic convention: ``vitals/<patient_id>``, and for a sharded daemon
``vitals/<partition>/<patient_id>``; the patient key is the topic's last level (`patient_of`);
alerts go to ``alerts/<patient_id>`` (`ingress.MqttIngress.alert_address`).

Devices publish plain ``vitals/<patient_id>``; the NATS server's mapping adds the partition
(`monitor.transports.nats.partition`). A shard subscribes to ``vitals/<k>/+`` for each
partition k it owns, and `PartitionCheck` refuses a message whose partition is not its
patient id's hash: the server checks publish permissions after the mapping, so a client
allowed to publish ``vitals.*.*`` can publish straight into any partition, and such a
patient would otherwise be watched by two shards at once (or by the wrong one).
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.transports.nats.partition import partition_of

__all__ = ["SYSTEM_TOPIC_ID", "PartitionCheck", "partition_topics", "patient_of"]

#: The last level of the system-wide alerts' topic (``alerts/_system``; a shard K's is
#: ``_system/<K>``: shards must not share it).
SYSTEM_TOPIC_ID = "_system"
#: Patient ids whose partition is remembered (past that, the cache starts again).
_CACHE_MAX = 200_000


def patient_of(topic: str) -> str | None:
    """Return the topic's last level (the patient id by convention), or None."""
    _, sep, last = topic.rpartition("/")
    return last if sep else None


def partition_topics(prefix: str, partitions: Sequence[int]) -> list[str]:
    """The topic filters of the owned `partitions`: ``<prefix>/<k>/+`` each."""
    return [f"{prefix}/{k}/+" for k in partitions]


class PartitionCheck:
    """Whether a topic's partition is its patient id's partition (a shard's intake and
    stream recovery refuse the others as ``wrong_partition``).

    A topic that does not read ``<prefix>/<k>/<id>`` with k an owned partition and
    k == FNV-1a-32(id) mod P is refused.

    Args:
        partitions: P, the partition count of the server's mapping.
        owned: The partitions this shard subscribed to.
    """

    def __init__(self, partitions: int, owned: Sequence[int]) -> None:
        self._p = partitions
        self._owned = frozenset(str(k) for k in owned)
        self._cache: dict[str, str] = {}  # patient id -> its partition, as in topics

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
