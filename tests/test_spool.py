"""The spool: durable appends, group commit, recovery from torn writes, commit and cleanup."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest

from tracehouse.ingest.spool import KIND_LOGS, KIND_TRACES, Spool, SpoolFull


def test_records_come_back_in_order_with_their_tenant_and_kind(tmp_path):
    spool = Spool(str(tmp_path))
    p1 = spool.append(KIND_TRACES, "acme", b"first")
    p2 = spool.append(KIND_LOGS, "", b"second" * 100)
    records = spool.read(0)
    assert [(r.position, r.kind, r.tenant, r.payload) for r in records] == [
        (p1, KIND_TRACES, "acme", b"first"),
        (p2, KIND_LOGS, "", b"second" * 100),
    ]
    assert records[0].end == records[1].position and records[1].end == spool.end
    assert spool.read(records[0].end)[0].payload == b"second" * 100
    assert spool.read(spool.end) == []


def test_concurrent_appends_are_all_durable_and_distinct(tmp_path):
    spool = Spool(str(tmp_path))
    positions: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(50):
            position = spool.append(KIND_TRACES, f"t{n}", f"{n}:{i}".encode())
            with lock:
                positions.append(position)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = spool.read(0, max_bytes=1 << 30)
    assert len(records) == 400 == len(set(positions))
    assert sorted(positions) == [r.position for r in records]
    for n in range(8):  # each writer's records keep their order
        mine = [int(r.payload.split(b":")[1]) for r in records if r.tenant == f"t{n}"]
        assert mine == list(range(50))


def test_commit_drops_finished_segments_and_survives_reopening(tmp_path):
    spool = Spool(str(tmp_path), segment_bytes=200)
    for i in range(20):
        spool.append(KIND_TRACES, "", bytes([i]) * 50)
    segments = sorted(f for f in os.listdir(tmp_path) if f.endswith(".spool"))
    assert len(segments) == 7  # 72-byte records, three to a 200-byte segment
    records = spool.read(0, max_bytes=1 << 30)
    assert [r.payload[0] for r in records] == list(range(20))
    spool.commit(records[12].position)
    assert len(sorted(f for f in os.listdir(tmp_path) if f.endswith(".spool"))) < len(segments)
    spool.close()
    reopened = Spool(str(tmp_path), segment_bytes=200)
    assert reopened.committed == records[12].position
    again = reopened.read(reopened.committed, max_bytes=1 << 30)
    assert [r.payload[0] for r in again] == list(range(12, 20))
    position = reopened.append(KIND_TRACES, "", b"after")
    assert position == records[-1].end and reopened.read(position)[0].payload == b"after"


def test_a_torn_last_record_is_cut_off_and_the_log_goes_on(tmp_path):
    spool = Spool(str(tmp_path))
    spool.append(KIND_TRACES, "", b"kept")
    torn_at = spool.append(KIND_TRACES, "", b"torn-by-a-crash" * 10)
    spool.close()
    segment = os.path.join(tmp_path, sorted(f for f in os.listdir(tmp_path) if f.endswith(".spool"))[-1])
    with open(segment, "r+b") as f:  # the crash wrote only part of the second record
        f.truncate(torn_at + 20)
    reopened = Spool(str(tmp_path))
    assert [r.payload for r in reopened.read(0)] == [b"kept"]
    assert reopened.end == torn_at
    reopened.append(KIND_TRACES, "", b"next")
    assert [r.payload for r in reopened.read(0)] == [b"kept", b"next"]


def test_a_corrupted_record_ends_the_log(tmp_path):
    spool = Spool(str(tmp_path))
    spool.append(KIND_TRACES, "", b"good")
    bad = spool.append(KIND_TRACES, "", b"flipped")
    spool.close()
    segment = os.path.join(tmp_path, sorted(f for f in os.listdir(tmp_path) if f.endswith(".spool"))[-1])
    with open(segment, "r+b") as f:
        f.seek(bad + 24)
        f.write(b"X")
    assert [r.payload for r in Spool(str(tmp_path)).read(0)] == [b"good"]


def test_a_full_spool_refuses_until_the_writer_commits(tmp_path):
    spool = Spool(str(tmp_path), max_bytes=1000)
    first = spool.append(KIND_TRACES, "", b"x" * 400)
    spool.append(KIND_TRACES, "", b"x" * 400)
    with pytest.raises(SpoolFull, match="limit 1000"):
        spool.append(KIND_TRACES, "", b"x" * 400)
    spool.commit(spool.read(first)[0].end)
    spool.append(KIND_TRACES, "", b"x" * 400)  # room again
    assert spool.pending_bytes < 1000


def test_acknowledged_records_survive_sigkill(tmp_path):
    # A child appends and prints each acknowledged position, and is killed mid-stream.
    script = textwrap.dedent(f"""
        import sys
        from tracehouse.ingest.spool import Spool, KIND_TRACES
        spool = Spool({str(tmp_path)!r})
        i = 0
        while True:
            spool.append(KIND_TRACES, "t", str(i).encode() * 100)
            print(i, flush=True)
            i += 1
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    acked = []
    for line in child.stdout:
        acked.append(int(line))
        if len(acked) == 300:
            break
    child.kill()
    child.wait()
    payloads = [r.payload for r in Spool(str(tmp_path)).read(0, max_bytes=1 << 30)]
    stored = [int(p[: len(p) // 100]) for p in payloads]
    assert stored[: len(acked)] == acked  # everything acknowledged is there, in order
    assert stored == list(range(len(stored)))  # and nothing torn or out of place


def test_a_full_disk_refuses_appends_whole_and_recovers_by_itself(small_disk):
    from conftest import fill

    spool = Spool(str(small_disk / "spool"), segment_bytes=1 << 20)
    stored = [spool.append(KIND_TRACES, "t", b"a" * 1000) for _ in range(3)]
    filler = fill(small_disk, leave=1500)  # room for one more record, not for two
    spool.append(KIND_TRACES, "t", b"b" * 1000)
    with pytest.raises(SpoolFull, match="disk refuses writes"):
        spool.append(KIND_TRACES, "t", b"c" * 1000)
    # Nothing torn: the log holds exactly the acknowledged records, and reopens cleanly.
    assert [r.payload[:1] for r in spool.read(0)] == [b"a", b"a", b"a", b"b"] and stored[0] == 0
    size = os.path.getsize(small_disk / "spool" / "00000000000000000000.spool")
    assert size == spool.end
    # Space returns: appends go on, with nothing lost.
    os.remove(filler)
    spool.append(KIND_TRACES, "t", b"d" * 1000)
    assert [r.payload[:1] for r in spool.read(0)] == [b"a", b"a", b"a", b"b", b"d"]
    spool.close()
    assert [r.payload[:1] for r in Spool(str(small_disk / "spool")).read(0)] == [b"a", b"a", b"a", b"b", b"d"]


def test_on_a_full_disk_the_space_of_stored_records_is_reclaimed(small_disk):
    from conftest import fill

    spool = Spool(str(small_disk / "spool"))  # one large segment: it is never rotated by size here
    for _ in range(1000):
        spool.append(KIND_TRACES, "t", b"x" * 1000)
    fill(small_disk)
    with pytest.raises(SpoolFull):
        spool.append(KIND_TRACES, "t", b"y" * 1000)
    spool.commit(spool.end, 1000)  # the writer stored everything: its segment may go
    position = spool.append(KIND_TRACES, "t", b"z" * 1000)
    assert [r.payload[:1] for r in spool.read(spool.committed)] == [b"z"] and position == spool.committed
    assert spool.pending_records == 1


def test_a_closed_spool_asks_clients_to_retry(tmp_path):
    spool = Spool(str(tmp_path))
    spool.close()
    with pytest.raises(SpoolFull, match="shutting down"):  # 503 / UNAVAILABLE, not a 500
        spool.append(KIND_TRACES, "t", b"late")
