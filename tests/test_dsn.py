"""Store DSNs: the embedded engine and ClickHouse servers."""

from __future__ import annotations

import os

import pytest

from tracehouse.store.dsn import DEFAULT_DSN, DSNError, parse_dsn


def test_default_dsn_is_an_embedded_store_in_the_working_directory():
    address = parse_dsn(DEFAULT_DSN)
    assert address.embedded
    assert address.path == os.path.abspath("tracehouse-data")
    assert address.database == "tracehouse"


@pytest.mark.parametrize(
    ("dsn", "path", "database"),
    [
        ("chdb:///var/lib/th", "/var/lib/th", "tracehouse"),
        ("chdb://./data?database=agents", os.path.abspath("data"), "agents"),
        ("chdb://rel/dir", os.path.abspath("rel/dir"), "tracehouse"),
        ("chdb://:memory:", None, "tracehouse"),
        ("CHDB:///x%20y", "/x y", "tracehouse"),
    ],
)
def test_embedded_dsns(dsn, path, database):
    address = parse_dsn(dsn)
    assert (address.kind, address.path, address.database) == ("chdb", path, database)


def test_server_dsns_keep_credentials_in_the_url_but_not_in_descriptions():
    address = parse_dsn("https://ingest:s3cret@ch.example:8443/agents?secure=true")
    assert address.kind == "http" and address.database == "agents"
    assert address.url == "https://ingest:s3cret@ch.example:8443?secure=true"
    assert "s3cret" not in address.describe()
    assert address.describe() == "https://ch.example:8443/agents"
    assert parse_dsn("http://localhost:8123").database == "tracehouse"
    assert parse_dsn("http://localhost:8123/?database=x").database == "x"


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("", "empty"),
        ("/just/a/path", "no scheme"),
        ("postgres://x/y", "unsupported"),
        ("http:///nohost", "no host"),
        ("chdb:///x?database=drop table", "identifier"),
        ("chdb:///x?colour=red", "unknown option"),
        ("http://u:pw@h:8123/bad-name", "identifier"),
    ],
)
def test_bad_dsns_say_what_is_wrong(dsn, message):
    with pytest.raises(DSNError, match=message):
        parse_dsn(dsn)


def test_errors_never_echo_passwords():
    with pytest.raises(DSNError) as info:
        parse_dsn("http://user:hunter2@/db")
    assert "hunter2" not in str(info.value)
