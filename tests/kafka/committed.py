"""What a ``read_committed`` consumer of a conforming Kafka broker sees, worked out from the log.

Kafka hides the records of aborted transactions from ``read_committed`` consumers: the broker
sends, with each fetch, the list of aborted transactions in the fetched range, and the client
drops their records. Tansu 0.6.0 (the test broker) writes the transaction markers into the log
but always sends that list empty, so librdkafka hands aborted records to ``read_committed``
consumers as if they were committed (``tests/kafka/test_committed.py`` shows it).

:func:`committed_values` therefore reads the partitions' record batches itself, over the Kafka
wire protocol (Fetch v4, record batches v2), control batches included, and keeps what a
conforming broker would show: records outside transactions, and records of transactions whose
producer's next marker in that partition is a COMMIT. Records of aborted transactions, and of
transactions still open, are left out. A row committed twice is therefore still seen twice.

Test code only: uncompressed batches (the sinks' default) or gzip; one broker, which leads
every partition (Tansu).
"""

from __future__ import annotations

import gzip
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient

_FETCH, _FETCH_VERSION = 1, 4
_READ_UNCOMMITTED = 0
_MAX_BYTES = 8 * 1024 * 1024
_TRANSACTIONAL, _CONTROL = 0x10, 0x20
_COMPRESSION = 0x07
_NONE, _GZIP = 0, 1
_ABORT, _COMMIT = 0, 1
#: How long a partition may answer no batch below its high watermark before the read fails.
_EMPTY_ANSWERS_FOR = 20.0


@dataclass(frozen=True)
class Batch:
    """One record batch of a partition's log."""

    base_offset: int
    producer_id: int
    transactional: bool
    #: For a control batch, COMMIT (True) or ABORT (False); None for a data batch.
    commits: bool | None
    values: list[bytes]


class _Reader:
    def __init__(self, data: bytes, at: int = 0) -> None:
        self.data, self.at = data, at

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return int(value)

    def raw(self, size: int) -> bytes:
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self.data[self.at]
            self.at += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)  # zig-zag
            shift += 7

    def string(self) -> str:
        return self.raw(self.take(">h")).decode()

    def bytes_or_none(self) -> bytes | None:
        size = self.varint()
        return None if size < 0 else self.raw(size)


def _fetch(sock: socket.socket, topic: str, partition: int, offset: int) -> tuple[int, bytes]:
    """One Fetch v4 (read_uncommitted: every batch, markers included): (high watermark, record bytes)."""
    name = topic.encode()
    body = struct.pack(">iiiib", -1, 500, 1, _MAX_BYTES, _READ_UNCOMMITTED)
    body += struct.pack(">ih", 1, len(name)) + name + struct.pack(">iiqi", 1, partition, offset, _MAX_BYTES)
    client = b"committed-log"
    request = struct.pack(">hhih", _FETCH, _FETCH_VERSION, 7, len(client)) + client + body
    sock.sendall(struct.pack(">i", len(request)) + request)
    reader = _Reader(_receive(sock, 4))
    reader = _Reader(_receive(sock, reader.take(">i")))
    reader.take(">i")  # correlation id
    reader.take(">i")  # throttle time
    assert reader.take(">i") == 1 and reader.string() == topic and reader.take(">i") == 1
    assert reader.take(">i") == partition
    error = reader.take(">h")
    if error:
        raise RuntimeError(f"fetch of {topic}/{partition} at {offset}: Kafka error code {error}")
    high_watermark = reader.take(">q")
    reader.take(">q")  # last stable offset
    aborted = reader.take(">i")
    reader.raw(max(aborted, 0) * 16)
    return high_watermark, reader.raw(reader.take(">i"))


def _receive(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        chunks += chunk
    return bytes(chunks)


def _batches(data: bytes) -> list[tuple[Batch, int]]:
    """The complete record batches in ``data``, each with the offset after it."""
    found: list[tuple[Batch, int]] = []
    at = 0
    while at + 12 <= len(data):
        head = _Reader(data, at)
        base_offset, length = head.take(">q"), head.take(">i")
        if at + 12 + length > len(data):
            break  # cut by max_bytes: fetched again from its offset
        head.take(">i")  # partition leader epoch
        if head.take(">b") != 2:
            raise RuntimeError("only record batches v2 are read")
        head.take(">I")  # crc
        attributes, last_delta = head.take(">h"), head.take(">i")
        head.raw(16)  # timestamps
        producer_id = head.take(">q")
        head.raw(6)  # producer epoch, base sequence
        count = head.take(">i")
        records = data[head.at:at + 12 + length]
        codec = attributes & _COMPRESSION
        if codec == _GZIP:
            records = gzip.decompress(records)
        elif codec != _NONE:
            raise RuntimeError(f"compression codec {codec} is not read here")
        values: list[bytes] = []
        commits: bool | None = None
        reader = _Reader(records)
        for _ in range(count):
            reader.varint()  # length
            reader.take(">b")  # attributes
            reader.varint()  # timestamp delta
            reader.varint()  # offset delta
            key = reader.bytes_or_none()
            value = reader.bytes_or_none()
            for _header in range(reader.varint()):
                reader.raw(reader.varint())
                reader.bytes_or_none()
            if attributes & _CONTROL:
                assert key is not None
                commits = struct.unpack(">hh", key)[1] == _COMMIT
            else:
                values.append(value or b"")
        batch = Batch(base_offset, producer_id, bool(attributes & _TRANSACTIONAL),
                      commits if attributes & _CONTROL else None, values)
        found.append((batch, base_offset + last_delta + 1))
        at += 12 + length
    return found


def partition_log(bootstrap: str, topic: str, partition: int) -> list[Batch]:
    """Every record batch of ``topic``/``partition`` up to its high watermark, markers included."""
    host, _, port = bootstrap.rpartition(":")
    batches: list[Batch] = []
    offset = 0
    # A fetch may answer nothing below the high watermark (the broker's wait ran out first).
    deadline = time.monotonic() + _EMPTY_ANSWERS_FOR
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        while True:
            high_watermark, data = _fetch(sock, topic, partition, offset)
            if offset >= high_watermark:
                return batches
            found = _batches(data)
            if not found and time.monotonic() > deadline:
                raise RuntimeError(f"{topic}/{partition}: no batch at offset {offset} below {high_watermark}")
            if found:
                deadline = time.monotonic() + _EMPTY_ANSWERS_FOR
            for batch, after in found:
                if after > offset:
                    batches.append(batch)
                    offset = after


def committed_in(batches: list[Batch]) -> list[bytes]:
    """The values a conforming broker shows a read_committed consumer of this log (in the order
    their transactions ended: counting, not ordering, is what this is for)."""
    # Each transactional batch waits for its producer's next marker.
    visible: list[bytes] = []
    waiting: dict[int, list[Batch]] = {}
    for batch in batches:
        if batch.commits is not None:
            ended = waiting.pop(batch.producer_id, [])
            if batch.commits:
                visible.extend(value for data in ended for value in data.values)
        elif batch.transactional:
            waiting.setdefault(batch.producer_id, []).append(batch)
        else:
            visible.extend(batch.values)
    return visible


def topic_log(bootstrap: str, topic: str) -> dict[int, list[Batch]]:
    """Every record batch of each partition of ``topic``, markers included."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(topic=topic, timeout=10).topics[topic]
    if metadata.error is not None:
        raise RuntimeError(f"topic {topic}: {metadata.error}")
    return {partition: partition_log(bootstrap, topic, partition) for partition in sorted(metadata.partitions)}


def committed_values(bootstrap: str, topic: str) -> list[bytes]:
    """The values of ``topic``'s committed (or non-transactional) records, every partition."""
    return [value for batches in topic_log(bootstrap, topic).values() for value in committed_in(batches)]


def uncommitted_count(bootstrap: str, topic: str) -> int:
    """How many records of ``topic`` belong to transactions aborted (or still open): what a
    conforming broker hides from read_committed consumers, and Tansu 0.6.0 shows them."""
    log = topic_log(bootstrap, topic).values()
    return sum(len(b.values) for batches in log for b in batches) - sum(len(committed_in(batches)) for batches in log)


def settled_committed_values(bootstrap: str, topic: str, complete: Callable[[list[bytes]], bool],
                             timeout: float = 60.0, settle: float = 2.0) -> list[bytes]:
    """:func:`committed_values` once ``complete`` holds for them (or ``timeout`` passed), read
    again ``settle`` seconds later, so that a duplicate committed just after is counted too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not complete(committed_values(bootstrap, topic)):
        time.sleep(0.5)
    time.sleep(settle)
    return committed_values(bootstrap, topic)
