"""librdkafka's producer through its C API, fed whole Arrow arrays: one call per thousand messages.

confluent-kafka's ``Producer.produce`` takes one message per Python call, about a microsecond of
the calling thread per message: the limit of a bare Python producer, and most of a Kafka sink's
cost. :class:`BatchProducer` hands librdkafka a thousand messages per call
(``rd_kafka_produce_batch``): their payload and key pointers are computed with numpy from the
offsets and data buffers of Arrow binary arrays, and librdkafka copies the bytes while the GIL is
released. No Python object is made per message.

It drives the very librdkafka that confluent-kafka ships and loads (so configuration names, error
codes and behaviour are confluent-kafka's), and raises what confluent-kafka raises:
:class:`~confluent_kafka.KafkaException` carrying a :class:`~confluent_kafka.KafkaError`, and
``BufferError`` when the local queue stays full. Callbacks (errors, log lines, failed
deliveries) run only inside :meth:`BatchProducer.poll`, :meth:`BatchProducer.flush` and the
transaction calls, on the calling thread: librdkafka's log lines are routed to its main queue.

Not thread-safe for concurrent calls on one instance (the kafka sink makes one call at a time).

Transactional calls are bounded: librdkafka waits without end for the answer to
``send_offsets_to_transaction`` (it relies on its own request timeouts, and a coordinator request
cut by a connection reset can be left without an answer: measured against Tansu behind a proxy
that resets connections). Each transactional call runs in a thread of its own, and a call that
has not returned ``HANG_GRACE`` seconds after its timeout is left behind: the producer refuses
every further call and is destroyed when that call finally returns (destroying it under a
running call would free memory the call still uses). The transactional producer that replaces it
fences it on the broker.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import confluent_kafka
import numpy as np
import pyarrow as pa
from confluent_kafka import KafkaError, KafkaException

_PRODUCER = 0  # rd_kafka_type_t RD_KAFKA_PRODUCER
#: A partition argument for "the configured partitioner chooses, per message".
ANY_PARTITION = -1
_MSG_F_COPY = 0x2  # librdkafka copies the payload: the Arrow buffers may go right after the call
_PURGE_QUEUE, _PURGE_INFLIGHT = 0x1, 0x2
_ERRSTR = 512
#: Seconds a transactional call may run past its own timeout before it counts as hung.
HANG_GRACE = 5.0

# rd_kafka_message_t on 64-bit platforms (rdkafka.h): the array rd_kafka_produce_batch reads.
_MESSAGE = np.dtype(
    {
        "names": ["err", "rkt", "partition", "payload", "len", "key", "key_len", "offset", "private"],
        "formats": ["<i4", "<u8", "<i4", "<u8", "<u8", "<u8", "<u8", "<i8", "<u8"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56, 64],
        "itemsize": 72,
    }
)

_P = ctypes.c_void_p
_ErrorCb = ctypes.CFUNCTYPE(None, _P, ctypes.c_int, ctypes.c_char_p, _P)
_LogCb = ctypes.CFUNCTYPE(None, _P, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p)
_DeliveryCb = ctypes.CFUNCTYPE(None, _P, ctypes.POINTER(ctypes.c_int), _P)  # reads rkmessage->err only


def _library_path() -> str:
    """The librdkafka confluent-kafka loaded: the copy bundled in its wheel, else the system's."""
    bundled = os.path.join(os.path.dirname(os.path.dirname(confluent_kafka.__file__)), "confluent_kafka.libs")
    candidates = sorted(glob.glob(os.path.join(bundled, "librdkafka*.so*")))
    if candidates:
        return candidates[0]
    found = ctypes.util.find_library("rdkafka")
    if found is None:
        raise ImportError("librdkafka not found (neither in confluent-kafka's wheel nor on the system)")
    return found


def _load() -> ctypes.CDLL:
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        raise ImportError("sinkflow's kafka sink needs a 64-bit platform (rd_kafka_message_t's layout)")
    lib = ctypes.CDLL(_library_path())
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "rd_kafka_version": (ctypes.c_int, []),
        "rd_kafka_conf_new": (_P, []),
        "rd_kafka_conf_destroy": (None, [_P]),
        "rd_kafka_conf_set": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]),
        "rd_kafka_conf_set_error_cb": (None, [_P, _ErrorCb]),
        "rd_kafka_conf_set_log_cb": (None, [_P, _LogCb]),
        "rd_kafka_conf_set_dr_msg_cb": (None, [_P, _DeliveryCb]),
        "rd_kafka_new": (_P, [ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_size_t]),
        "rd_kafka_destroy": (None, [_P]),
        "rd_kafka_set_log_queue": (ctypes.c_int, [_P, _P]),
        "rd_kafka_topic_new": (_P, [_P, ctypes.c_char_p, _P]),
        "rd_kafka_topic_destroy": (None, [_P]),
        "rd_kafka_produce_batch": (ctypes.c_int, [_P, ctypes.c_int32, ctypes.c_int, _P, ctypes.c_int]),
        "rd_kafka_poll": (ctypes.c_int, [_P, ctypes.c_int]),
        "rd_kafka_flush": (ctypes.c_int, [_P, ctypes.c_int]),
        "rd_kafka_outq_len": (ctypes.c_int, [_P]),
        "rd_kafka_purge": (ctypes.c_int, [_P, ctypes.c_int]),
        "rd_kafka_err2str": (ctypes.c_char_p, [ctypes.c_int]),
        "rd_kafka_error_code": (ctypes.c_int, [_P]),
        "rd_kafka_error_string": (ctypes.c_char_p, [_P]),
        "rd_kafka_error_is_fatal": (ctypes.c_int, [_P]),
        "rd_kafka_error_is_retriable": (ctypes.c_int, [_P]),
        "rd_kafka_error_txn_requires_abort": (ctypes.c_int, [_P]),
        "rd_kafka_error_destroy": (None, [_P]),
        "rd_kafka_init_transactions": (_P, [_P, ctypes.c_int]),
        "rd_kafka_begin_transaction": (_P, [_P]),
        "rd_kafka_commit_transaction": (_P, [_P, ctypes.c_int]),
        "rd_kafka_abort_transaction": (_P, [_P, ctypes.c_int]),
        "rd_kafka_send_offsets_to_transaction": (_P, [_P, _P, _P, ctypes.c_int]),
        "rd_kafka_topic_partition_list_new": (_P, [ctypes.c_int]),
        "rd_kafka_topic_partition_list_add": (_P, [_P, ctypes.c_char_p, ctypes.c_int32]),
        "rd_kafka_topic_partition_list_set_offset": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_int32,
                                                                    ctypes.c_int64]),
        "rd_kafka_topic_partition_list_destroy": (None, [_P]),
        "rd_kafka_consumer_group_metadata_new": (_P, [ctypes.c_char_p]),
        "rd_kafka_consumer_group_metadata_destroy": (None, [_P]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    # Another copy than confluent-kafka's would work too, but keep them one and the same.
    if lib.rd_kafka_version() != confluent_kafka.libversion()[1]:
        raise ImportError(f"librdkafka at {_library_path()} is not the version confluent-kafka uses")
    return lib


_lib = _load()


def _text(value: Any) -> bytes:
    """A configuration value as librdkafka spells it (booleans lower case)."""
    if isinstance(value, bool):
        return b"true" if value else b"false"
    return str(value).encode()


def _decoded(text: bytes | None) -> str:
    return (text or b"").decode(errors="replace")


def _raise_error(error: int | None) -> None:
    """Raise an ``rd_kafka_error_t`` (NULL: success) as KafkaException, and free it."""
    if not error:
        return
    try:
        code = _lib.rd_kafka_error_code(error)
        reason = _decoded(_lib.rd_kafka_error_string(error))
        kafka_error = KafkaError(
            code, reason, fatal=bool(_lib.rd_kafka_error_is_fatal(error)),
            retriable=bool(_lib.rd_kafka_error_is_retriable(error)),
            txn_requires_abort=bool(_lib.rd_kafka_error_txn_requires_abort(error)),
        )
    finally:
        _lib.rd_kafka_error_destroy(error)
    raise KafkaException(kafka_error)


def _buffer_pointers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Start addresses and lengths of each value of a binary or string array (0, 0 for a null)."""
    if pa.types.is_large_binary(array.type) or pa.types.is_large_string(array.type):
        offset_type: type[np.signedinteger[Any]] = np.int64
    elif pa.types.is_binary(array.type) or pa.types.is_string(array.type):
        offset_type = np.int32
    else:
        raise TypeError(f"messages must be binary or string values, not {array.type}")
    validity, offsets_buffer, data = array.buffers()[:3]
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type, count=len(array) + 1,
                            offset=array.offset * np.dtype(offset_type).itemsize).astype(np.uint64)
    lengths = np.diff(offsets)
    starts = offsets[:-1] + np.uint64(data.address if data is not None else 0)
    if validity is not None and array.null_count:
        nulls = array.is_null().to_numpy(zero_copy_only=False)
        starts[nulls] = 0
        lengths[nulls] = 0
    return starts, lengths


class BatchProducer:
    """A librdkafka producer (see the module docstring); ``config`` as for confluent-kafka's
    ``Producer``, without its Python callbacks, which are the constructor's arguments.

    ``on_error(error)``: a client-level error (broker down, TLS, authentication, fatal state).
    ``on_log(level, facility, message)``: a librdkafka log line (syslog level).
    ``on_delivery_error(error)``: a message that failed; successful deliveries are not reported
    (``delivery.report.only.error`` is set), :meth:`flush` waiting for them is the acknowledgement.

    Raises KafkaException (code ``_INVALID_ARG``) for a configuration librdkafka refuses.
    """

    def __init__(self, config: Mapping[str, Any], on_error: Callable[[KafkaError], None],
                 on_log: Callable[[int, str, str], None], on_delivery_error: Callable[[KafkaError], None]) -> None:
        self._topics: dict[str, int] = {}
        self._handle: int | None = None
        #: Whether a transactional call did not return in time (the producer is given up), whether
        #: a transactional call is running, and whether close() was asked for while one runs.
        self._hung = False
        self._in_call = False
        self._close_when_done = False
        self._lock = threading.Lock()

        # A given-up producer's hung call may still serve callbacks later, beside its successor:
        # they are dropped then.
        def error(_rk: Any, code: int, reason: bytes | None, _opaque: Any) -> None:
            if not self._hung:
                on_error(KafkaError(code, _decoded(reason)))

        def log_line(_rk: Any, level: int, facility: bytes | None, message: bytes | None) -> None:
            if not self._hung:
                on_log(level, _decoded(facility), _decoded(message))

        def delivery(_rk: Any, message: Any, _opaque: Any) -> None:
            if message[0] and not self._hung:  # rkmessage->err; with delivery.report.only.error, always set
                on_delivery_error(KafkaError(message[0]))

        # The callbacks must outlive the handle: ctypes frees a function pointer with its object.
        self._callbacks = (_ErrorCb(error), _LogCb(log_line), _DeliveryCb(delivery))
        conf = _lib.rd_kafka_conf_new()
        settings = {**config, "delivery.report.only.error": True, "log.queue": True}
        errstr = ctypes.create_string_buffer(_ERRSTR)
        for name, value in settings.items():
            if _lib.rd_kafka_conf_set(conf, name.encode(), _text(value), errstr, _ERRSTR) != 0:
                _lib.rd_kafka_conf_destroy(conf)
                # The name as given (librdkafka may say an alias's); never the value: it may be a secret.
                raise KafkaException(KafkaError(KafkaError._INVALID_ARG, f"{name}: {_decoded(errstr.value)}"))
        error_cb, log_cb, delivery_cb = self._callbacks
        _lib.rd_kafka_conf_set_error_cb(conf, error_cb)
        _lib.rd_kafka_conf_set_log_cb(conf, log_cb)
        _lib.rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb)
        handle = _lib.rd_kafka_new(_PRODUCER, conf, errstr, _ERRSTR)
        if not handle:  # the configuration stays ours on failure
            _lib.rd_kafka_conf_destroy(conf)
            raise KafkaException(KafkaError(KafkaError._INVALID_ARG, _decoded(errstr.value)))
        self._handle = handle
        _lib.rd_kafka_set_log_queue(handle, None)  # log lines wait for poll(), on the caller's thread

    def produce(self, topic: str, values: pa.Array, keys: pa.Array | None, partition: int = ANY_PARTITION) -> int:
        """Enqueue one message per value of ``values`` (binary or string), keyed by ``keys``
        (same length; None, or a null key: no key), in order, without waiting, to ``partition``
        (ANY_PARTITION: the partitioner chooses per message).

        Returns how many of the first values were enqueued: a full local queue refuses the
        rest. Raises KafkaException for any other refusal (e.g. a message too large, a fatal
        producer); the call's other messages may be enqueued then, and the caller purges them.
        """
        messages = np.zeros(len(values), dtype=_MESSAGE)
        messages["payload"], messages["len"] = _buffer_pointers(values)
        if keys is not None:
            messages["key"], messages["key_len"] = _buffer_pointers(keys)
        enqueued = _lib.rd_kafka_produce_batch(self._topic(topic), partition, _MSG_F_COPY,
                                               messages.ctypes.data, len(messages))
        _lib.rd_kafka_poll(self._live(), 0)  # serve callbacks without waiting
        if enqueued == len(messages):
            return enqueued
        errors = messages["err"]
        first_failed = int(np.flatnonzero(errors)[0])
        code = int(errors[first_failed])
        # librdkafka refuses every message after a full queue's first refusal as well.
        if code != KafkaError._QUEUE_FULL:
            raise KafkaException(KafkaError(code))
        return first_failed

    def produce_all(self, topic: str, values: pa.Array, keys: pa.Array | None, room_timeout: float,
                    partition: int = ANY_PARTITION) -> None:
        """:meth:`produce` every value, serving callbacks while the local queue is full, for up
        to ``room_timeout`` seconds; then raises ``BufferError`` (the values before stay enqueued)."""
        deadline = time.monotonic() + room_timeout
        while True:
            enqueued = self.produce(topic, values, keys, partition)
            if enqueued == len(values):
                return
            values = values.slice(enqueued)
            keys = None if keys is None else keys.slice(enqueued)
            if time.monotonic() >= deadline:
                raise BufferError(f"librdkafka's local queue stayed full for {room_timeout:.0f} s")
            # Short: successful deliveries raise no event, so a poll waits its whole timeout.
            self.poll(0.005)

    def poll(self, timeout: float) -> int:
        """Serve queued callbacks, waiting up to ``timeout`` seconds for one; returns how many."""
        return int(_lib.rd_kafka_poll(self._live(), int(timeout * 1000)))

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every enqueued message's delivery (or failure);
        returns how many messages and events are still outstanding."""
        handle = self._live()
        _lib.rd_kafka_flush(handle, int(timeout * 1000))
        return int(_lib.rd_kafka_outq_len(handle))

    def __len__(self) -> int:
        return int(_lib.rd_kafka_outq_len(self._live()))

    def purge(self) -> None:
        """Drop every message not yet delivered: each fails with ``_PURGE_QUEUE`` or ``_PURGE_INFLIGHT``."""
        _lib.rd_kafka_purge(self._live(), _PURGE_QUEUE | _PURGE_INFLIGHT)

    def init_transactions(self, timeout: float) -> None:
        """Register the ``transactional.id``, fencing an earlier producer that used it."""
        self._bounded("init_transactions", lambda handle: _lib.rd_kafka_init_transactions(handle, int(timeout * 1000)),
                      timeout)

    def begin_transaction(self) -> None:
        _raise_error(_lib.rd_kafka_begin_transaction(self._live()))

    def send_offsets_to_transaction(self, topic: str, partition: int, offset: int, group_id: str,
                                    timeout: float) -> None:
        """Commit ``offset`` on ``topic``/``partition`` for consumer group ``group_id`` with the
        current transaction (visible once the transaction commits)."""
        offsets = _lib.rd_kafka_topic_partition_list_new(1)
        metadata = _lib.rd_kafka_consumer_group_metadata_new(group_id.encode())
        _lib.rd_kafka_topic_partition_list_add(offsets, topic.encode(), partition)
        _lib.rd_kafka_topic_partition_list_set_offset(offsets, topic.encode(), partition, offset)

        def send(handle: int) -> int | None:
            try:
                return _lib.rd_kafka_send_offsets_to_transaction(handle, offsets, metadata, int(timeout * 1000))
            finally:  # freed by the thread that used them, also when the call returns late
                _lib.rd_kafka_consumer_group_metadata_destroy(metadata)
                _lib.rd_kafka_topic_partition_list_destroy(offsets)

        self._bounded("send_offsets_to_transaction", send, timeout)

    def commit_transaction(self, timeout: float) -> None:
        self._bounded("commit_transaction", lambda handle: _lib.rd_kafka_commit_transaction(handle, int(timeout * 1000)),
                      timeout)

    def abort_transaction(self, timeout: float) -> None:
        self._bounded("abort_transaction", lambda handle: _lib.rd_kafka_abort_transaction(handle, int(timeout * 1000)),
                      timeout)

    @property
    def hung(self) -> bool:
        """Whether a transactional call never returned: the producer refuses every call."""
        return self._hung

    def _bounded(self, name: str, call: Callable[[int], int | None], timeout: float) -> None:
        """Run ``call(handle)``, a transactional call given ``timeout``, in a thread of its own,
        and raise its error. Raises KafkaException (fatal, ``_TIMED_OUT``) when it is still
        running HANG_GRACE seconds after ``timeout``: the producer is then given up."""
        handle = self._live()
        raised: list[KafkaException] = []
        self._in_call = True

        def run() -> None:
            try:
                _raise_error(call(handle))
            except KafkaException as exc:
                raised.append(exc)
            finally:
                with self._lock:
                    self._in_call = False
                    late = self._close_when_done
                if late:
                    self._destroy()

        worker = threading.Thread(target=run, name=f"rdkafka-{name}", daemon=True)
        worker.start()
        worker.join(timeout + HANG_GRACE)
        if worker.is_alive():
            self._hung = True
            raise KafkaException(KafkaError(
                KafkaError._TIMED_OUT, f"{name} did not return within {timeout + HANG_GRACE:.0f} s", fatal=True))
        if raised:
            raise raised[0]

    def close(self) -> None:
        """Release the producer: undelivered messages are lost (purge and flush first to see them
        fail). A hung producer is released when its hung call returns."""
        with self._lock:
            if self._in_call:
                self._close_when_done = True
                return
        self._destroy()

    def _destroy(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        for topic_handle in self._topics.values():
            _lib.rd_kafka_topic_destroy(topic_handle)
        self._topics.clear()
        _lib.rd_kafka_destroy(handle)

    def _topic(self, topic: str) -> int:
        handle = self._topics.get(topic)
        if handle is None:
            handle = _lib.rd_kafka_topic_new(self._live(), topic.encode(), None)
            if not handle:
                raise KafkaException(KafkaError(KafkaError._INVALID_ARG, f"topic '{topic}' refused"))
            self._topics[topic] = handle
        return handle

    def _live(self) -> int:
        if self._hung:
            raise KafkaException(KafkaError(KafkaError._STATE, "the producer was given up: a transactional call hung",
                                            fatal=True))
        if self._handle is None:
            raise KafkaException(KafkaError(KafkaError._STATE, "the producer is closed"))
        return self._handle

    def __del__(self) -> None:
        self.close()
