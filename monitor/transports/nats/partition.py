"""Partitions of patients: the server's hash, and the partitions a shard owns.

The NATS server maps a device's subject ``vitals.<id>`` to ``vitals.<k>.<id>`` with
``mappings = { "vitals.*": "vitals.{{partition(P,1)}}.{{wildcard(1)}}" }``, where
k = FNV-1a-32(<id>) mod P (nats-server's ``partition()``; a test checks this function
against a running server). Shard K of N owns the partitions k with k mod N == K:
``K, K+N, K+2N, ...`` (P/N of them). With that rule a shard's partitions split evenly when N
doubles (shard K keeps the even half, shard K+N takes the other), and neighbouring
partitions, which a hash fills alike, are spread over all shards.
"""

from __future__ import annotations

__all__ = ["fnv1a_32", "owned_partitions", "partition_of"]

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv1a_32(text: str) -> int:
    """FNV-1a hash, 32 bits, of the UTF-8 bytes of `text` (nats-server's partition hash)."""
    h = _FNV_OFFSET
    for byte in text.encode():
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def partition_of(patient_id: str, partitions: int) -> int:
    """The partition the server maps `patient_id` to, out of `partitions`."""
    return fnv1a_32(patient_id) % partitions


def owned_partitions(index: int, count: int, partitions: int) -> list[int]:
    """The partitions shard `index` of `count` owns: k with k mod count == index.

    Raises:
        ValueError: `count` does not divide `partitions`, or `index` is out of range.
    """
    if count < 1 or partitions % count:
        raise ValueError(f"the shard count {count} must divide the partition count {partitions}")
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is not in 0..{count - 1}")
    return list(range(index, partitions, count))
