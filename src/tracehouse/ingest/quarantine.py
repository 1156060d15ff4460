"""The quarantine: spooled records the store always refuses, kept on disk until an operator
retries or drops them.

The writer moves a record here only when it fails alone, with an error that names its data
(:func:`tracehouse.store.errors.is_data_error`), while the store takes other writes. Each
entry is two files in ``<spool>/quarantine/``: ``<id>.otlp`` holds the raw export request as
it was acknowledged, ``<id>.json`` says whose it is, what it is and why the store refused it.
Both are written to a temporary name, synced and renamed, so an entry is whole or absent.
Retrying an entry appends its request to the spool again (it goes through the writer like any
other) and removes the entry; if the store still refuses it, it comes back with a new id.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime

from tracehouse.ingest.spool import KIND_LOGS, KIND_TRACES, Record, Spool, fsync_directory
from tracehouse.responses import QuarantinedRecord  # what the API and the CLI show of an entry

DIRECTORY = "quarantine"
_SIGNALS = {KIND_TRACES: "traces", KIND_LOGS: "logs"}
_KINDS = {name: kind for kind, name in _SIGNALS.items()}


class NotQuarantined(KeyError):
    """No quarantined record has this id (for this tenant)."""


class Quarantine:
    def __init__(self, spool_directory: str):
        self.directory = os.path.join(spool_directory, DIRECTORY)  # made by the first entry

    def _names(self) -> list[str]:
        try:
            return sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []

    def add(self, record: Record, error: str) -> QuarantinedRecord:
        now = datetime.now(UTC)
        entry = QuarantinedRecord(
            id=f"{now.strftime('%Y%m%dT%H%M%S')}-{record.position:x}",
            tenant=record.tenant,
            signal=_SIGNALS.get(record.kind, str(record.kind)),
            error=error[:2000],
            quarantined_at=now,
            acknowledged_at=datetime.fromtimestamp(record.appended_ns / 1e9, UTC),
            size_bytes=len(record.payload),
        )
        os.makedirs(self.directory, exist_ok=True)
        self._write(f"{entry.id}.otlp", record.payload)  # the payload first: an entry's .json names a whole one
        self._write(f"{entry.id}.json", entry.model_dump_json(indent=1).encode())
        return entry

    def entries(self, tenant: str | None = None) -> list[QuarantinedRecord]:
        """Every entry (of ``tenant``, when given), oldest first."""
        found = []
        for name in self._names():
            if name.endswith(".json"):
                try:
                    with open(os.path.join(self.directory, name), "rb") as f:
                        entry = QuarantinedRecord.model_validate_json(f.read())
                except (OSError, ValueError):
                    continue  # removed meanwhile, or not ours
                if tenant is None or entry.tenant == tenant:
                    found.append(entry)
        return found

    def get(self, entry_id: str, tenant: str | None = None) -> QuarantinedRecord:
        for entry in self.entries(tenant):
            if entry.id == entry_id:
                return entry
        raise NotQuarantined(entry_id)

    def payload(self, entry: QuarantinedRecord) -> tuple[int, bytes]:
        """The spool kind and the raw request of an entry."""
        with open(os.path.join(self.directory, f"{entry.id}.otlp"), "rb") as f:
            return _KINDS[entry.signal], f.read()

    def retry(self, entry: QuarantinedRecord, spool: Spool) -> None:
        """Append the entry's request to the spool again (raises ``SpoolFull``), then remove it."""
        kind, payload = self.payload(entry)
        spool.append(kind, entry.tenant, payload)
        self.remove(entry)

    def remove(self, entry: QuarantinedRecord) -> None:
        for suffix in (".json", ".otlp"):  # the .json first: without it the entry is gone
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.directory, entry.id + suffix))

    def stats(self) -> tuple[int, int]:
        """How many entries there are, and their payload bytes."""
        count = size = 0
        for name in self._names():
            if name.endswith(".json"):
                with contextlib.suppress(OSError):
                    size += os.path.getsize(os.path.join(self.directory, name[:-5] + ".otlp"))
                    count += 1
        return count, size

    def _write(self, name: str, data: bytes) -> None:
        path = os.path.join(self.directory, name)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
        fsync_directory(self.directory)
