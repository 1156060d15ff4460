"""The spool: a write-ahead log between the receiver's acknowledgement and ClickHouse.

A request is acknowledged only after its record is appended here and fsync'd. Appends are
group-committed: whichever appender finds no fsync in flight runs one for everything written
so far, and the others wait for it, so many concurrent requests share one fsync.

Records live in segment files named by the absolute byte offset where they start
(``00000000000000000000.spool``). A position is such an offset. The writer reads records from
its committed position, inserts them, then commits the position past them; segments wholly
before the committed position are deleted. After a crash the spool is opened again: a record
torn by the crash (short, or failing its CRC) ends the log and is cut off, and the writer
resumes from the committed position, so every acknowledged record is replayed at least once.

Record layout, little-endian: magic ``b"TH"``, version (1 byte), kind (1 byte), tenant length
(2 bytes), payload length (4 bytes), CRC32 of everything after the header (4 bytes), append
time in nanoseconds since the epoch (8 bytes), tenant (UTF-8), payload.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from tracehouse.dirlock import lock_directory

MAGIC = b"TH"
VERSION = 1
_HEADER = struct.Struct("<2sBBHIIQ")
KIND_TRACES = 1
KIND_LOGS = 2
SUFFIX = ".spool"
CHECKPOINT = "checkpoint"
LOCK_FILE = "spool.lock"


class SpoolFull(Exception):
    """The spool holds as many unwritten bytes as it may, or its disk is full: the client
    should retry later."""


def fsync_directory(directory: str) -> None:
    """Make the names created or removed in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Record:
    position: int  # where the record starts
    end: int  # where the next one starts
    kind: int
    tenant: str
    payload: bytes
    appended_ns: int  # when the record was appended (acknowledged just after)


class Spool:
    def __init__(self, directory: str, *, max_bytes: int = 1 << 30, segment_bytes: int = 64 << 20):
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._dir_lock = lock_directory(directory, LOCK_FILE, "spool")
        self._lock = threading.Lock()
        self._synced = threading.Condition(self._lock)
        self._data = threading.Condition(self._lock)
        self._checkpoint_fd: int | None = None
        self.committed = self._read_checkpoint()
        self._end, self._fd, self._segment_start = self._recover()
        self._synced_upto = self._end
        self._syncing = False
        self._closed = False
        self._pending_records = sum(1 for _ in self._records_from(self.committed, self._end))
        # The checkpoint's blocks, taken now, so that committing later needs no free space (on a
        # disk full at start, the first commit tries again).
        with contextlib.suppress(OSError):
            self._write_checkpoint(self.committed)

    # --- state -----------------------------------------------------------------------------------

    @property
    def end(self) -> int:
        """The position after the last durable record."""
        with self._lock:
            return self._synced_upto

    @property
    def pending_records(self) -> int:
        """Records acknowledged but not yet committed by the writer."""
        with self._lock:
            return self._pending_records

    @property
    def pending_bytes(self) -> int:
        """Bytes acknowledged but not yet committed by the writer."""
        with self._lock:
            return self._end - self.committed

    def _segments(self) -> list[int]:
        return sorted(int(name[: -len(SUFFIX)]) for name in os.listdir(self.directory) if name.endswith(SUFFIX))

    def _path(self, start: int) -> str:
        return os.path.join(self.directory, f"{start:020d}{SUFFIX}")

    def _read_checkpoint(self) -> int:
        """The committed position: ``<position> <crc32 of it>``, written in place (a bare
        number, as older versions wrote, is read too). A checkpoint that fails its check means
        replaying every record kept, which deduplication makes safe."""
        try:
            with open(os.path.join(self.directory, CHECKPOINT)) as f:
                text = f.read().strip()
        except FileNotFoundError:
            return 0
        number, _, check = text.partition(" ")
        if not number.isdigit() or (check and check != f"{zlib.crc32(number.encode()):08x}"):
            return 0
        return int(number)

    def _write_checkpoint(self, position: int) -> None:
        """Overwrite the checkpoint in place, at a fixed width: unlike a new file renamed over
        it, this needs no free space, so the writer can commit (and free segments) on a full
        disk."""
        if self._checkpoint_fd is None:
            self._checkpoint_fd = os.open(os.path.join(self.directory, CHECKPOINT), os.O_RDWR | os.O_CREAT, 0o644)
        number = f"{position:020d}"
        os.pwrite(self._checkpoint_fd, f"{number} {zlib.crc32(number.encode()):08x}\n".encode(), 0)
        os.fdatasync(self._checkpoint_fd)

    def _recover(self) -> tuple[int, int, int]:
        """Find the end of the log, cutting off a torn last record; open the last segment."""
        segments = self._segments()
        if not segments:
            start = self.committed
            fd = os.open(self._path(start), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._fsync_directory()
            return start, fd, start
        last = segments[-1]
        end = last
        for record in self._scan(last, last):
            end = record.end
        path = self._path(last)
        if os.path.getsize(path) != end - last:
            with open(path, "r+b") as f:
                f.truncate(end - last)
                os.fsync(f.fileno())
        # The checkpoint cannot point before the oldest segment (older ones were deleted because
        # they were committed) nor past the end of the log.
        self.committed = min(max(self.committed, segments[0]), end)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        return end, fd, last

    def _fsync_directory(self) -> None:
        fsync_directory(self.directory)

    # --- writing ---------------------------------------------------------------------------------

    def append(self, kind: int, tenant: str, payload: bytes) -> int:
        """Append a record and return once it is durable; its position is returned."""
        tenant_bytes = tenant.encode()
        body = tenant_bytes + payload
        header = _HEADER.pack(MAGIC, VERSION, kind, len(tenant_bytes), len(payload), zlib.crc32(body), time.time_ns())
        with self._lock:
            if self._closed:
                raise SpoolFull("the server is shutting down")  # closed: the client retries elsewhere or later
            size = len(header) + len(body)
            if self._end - self.committed + size > self.max_bytes:
                raise SpoolFull(
                    f"spool holds {self._end - self.committed} bytes not yet stored (limit {self.max_bytes})"
                )
            try:
                if self._end - self._segment_start >= self.segment_bytes:
                    self._rotate()
            except OSError as exc:
                raise SpoolFull(f"the spool's disk refuses a new segment ({exc.strerror or exc})") from None
            position = self._end
            try:
                self._write(header + body)
            except OSError as exc:  # the disk is full (or failing): nothing of this record stays
                if not self._reclaim():
                    raise SpoolFull(f"the spool's disk refuses writes ({exc.strerror or exc})") from None
                try:
                    self._write(header + body)
                except OSError as again:
                    raise SpoolFull(f"the spool's disk refuses writes ({again.strerror or again})") from None
            self._end += size
            self._pending_records += 1
            target = self._end
            while self._synced_upto < target:
                if not self._syncing:
                    self._syncing = True
                    upto, fd = self._end, self._fd
                    self._lock.release()
                    try:
                        os.fdatasync(fd)
                    except OSError as exc:  # not durable, so not acknowledged: the client retries
                        raise SpoolFull(f"the spool's disk cannot sync ({exc.strerror or exc})") from None
                    finally:
                        self._lock.acquire()
                        self._syncing = False
                        self._synced.notify_all()  # after a failed sync, another appender leads
                    self._synced_upto = max(self._synced_upto, upto)
                    self._data.notify_all()
                else:
                    self._synced.wait()
            return position

    def _write(self, data: bytes) -> None:
        """Write at the end of the log, whole or not at all: a short or failed write is cut off
        again (the descriptor appends, so the cut is where the next record goes)."""
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            os.ftruncate(self._fd, self._end - self._segment_start)
            raise

    def _reclaim(self) -> bool:
        """With the disk full, free the space of what is already stored: the open segment is
        kept until the log rotates, so when part of it is committed, rotate and delete the
        segments wholly before the committed position. Whether space was freed."""
        if self.committed <= self._segment_start:
            return False
        try:
            self._rotate()
        except OSError:
            return False
        self._drop_committed_segments()
        return True

    def _rotate(self) -> None:
        while self._syncing:  # never close the descriptor a group-commit leader is syncing
            self._synced.wait()
        os.fdatasync(self._fd)
        fd = os.open(self._path(self._end), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.close(self._fd)
        self._fd, self._segment_start = fd, self._end
        self._fsync_directory()

    # --- reading and committing ------------------------------------------------------------------

    def _scan(self, segment: int, position: int) -> Iterator[Record]:
        """Records of one segment from ``position`` until its end or a torn record."""
        with open(self._path(segment), "rb") as f:
            f.seek(position - segment)
            while True:
                header = f.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    return
                magic, version, kind, tenant_len, payload_len, crc, appended_ns = _HEADER.unpack(header)
                if magic != MAGIC or version != VERSION:
                    return
                body = f.read(tenant_len + payload_len)
                if len(body) < tenant_len + payload_len or zlib.crc32(body) != crc:
                    return
                end = position + _HEADER.size + len(body)
                yield Record(position, end, kind, body[:tenant_len].decode(), body[tenant_len:], appended_ns)
                position = end

    def read(self, position: int, max_bytes: int = 32 << 20, timeout: float = 0.0) -> list[Record]:
        """Durable records from ``position`` on, up to about ``max_bytes``; waits up to
        ``timeout`` seconds for the first one."""
        with self._lock:
            if self._synced_upto <= position and timeout > 0:
                self._data.wait(timeout)
            limit = self._synced_upto
        return self._records_from(position, limit, max_bytes)

    def _records_from(self, position: int, limit: int, max_bytes: int = 1 << 62) -> list[Record]:
        records: list[Record] = []
        taken = 0
        segments = self._segments()
        for i, segment in enumerate(segments):
            following = segments[i + 1] if i + 1 < len(segments) else None
            if following is not None and following <= position:
                continue
            for record in self._scan(segment, max(position, segment)):
                if record.end > limit:
                    return records
                records.append(record)
                taken += record.end - record.position
                if taken >= max_bytes:
                    return records
            position = max(position, following or position)
        return records

    def commit(self, position: int, records: int = 0) -> None:
        """Everything before ``position`` (``records`` more records) is stored: remember it, and
        drop the segments that are wholly before it."""
        self._write_checkpoint(position)  # only the writer commits: no lock needed for the file
        with self._lock:
            self.committed = position
            self._pending_records = max(0, self._pending_records - records)
            self._drop_committed_segments()

    def _drop_committed_segments(self) -> None:
        segments = self._segments()
        for i, segment in enumerate(segments[:-1]):
            if segments[i + 1] <= self.committed and segment != self._segment_start:
                os.remove(self._path(segment))

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.fdatasync(self._fd)
                os.close(self._fd)
                if self._checkpoint_fd is not None:
                    os.close(self._checkpoint_fd)
                os.close(self._dir_lock)
