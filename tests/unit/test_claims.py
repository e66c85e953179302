"""What `serve` takes before it starts: its port and its data dir (`node/claims.py`), and
the record of its store that the tools read (`node/store_record.py`)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from livecount.node import claims, store_record
from livecount.node.journal import JournalBusy
from livecount.node.store_record import StoreRecord


def test_a_port_another_server_listens_on_is_refused_in_words() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        for share in (False, True):  # a lone node; the parent of workers
            with pytest.raises(
                claims.PortBusy,
                match=f"cannot listen on 127.0.0.1 port {port}: Address already in use",
            ):
                claims.claim("127.0.0.1", port, share=share)


def test_a_data_dir_is_held_by_one_process_and_says_so(tmp_path: Path) -> None:
    assert not claims.in_use(tmp_path / "nothing-yet")
    assert not (tmp_path / "nothing-yet").exists()  # asking creates nothing
    held = claims.hold(tmp_path)
    assert claims.in_use(tmp_path)
    with pytest.raises(JournalBusy, match=f"the data dir {tmp_path} is in use"):
        claims.hold(tmp_path)
    held.unlock()
    assert not claims.in_use(tmp_path)


def test_the_store_record_reads_back_and_a_broken_one_is_none(tmp_path: Path) -> None:
    record = StoreRecord("http://127.0.0.1:5", "eu-west-1", "p_", "n", 10.0, 42)
    store_record.write(tmp_path, record)
    assert store_record.read(tmp_path) == record
    assert [p.name for p in tmp_path.iterdir()] == ["store.json"]  # no partial left
    (tmp_path / "store.json").write_text('{"endpoint": 3}')
    assert store_record.read(tmp_path) is None
    store_record.remove(tmp_path)
    assert store_record.read(tmp_path) is None
