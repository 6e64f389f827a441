"""The lake on S3: MARKETLAKE_LAKE_URI=s3://bucket/prefix, end to end against a moto server.

moto_server runs as a real HTTP endpoint on a free loopback port; deltalake talks to it with
the storage options built from the AWS_* variables, s3fs lists the tables.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from kafka import KafkaProducer

from pipelines.broker import free_port, port_open
from pipelines.cli import main
from warehouse.lake import Lake, list_tables, read_table
from warehouse.maintenance import compact, table_health
from warehouse.settings import load_settings

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
BUCKET = "marketlake-test"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    if not MOTO_SERVER.exists():
        pytest.skip(f"{MOTO_SERVER} is not installed (moto[server])")
    port = free_port()
    process = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port):
            assert process.poll() is None and time.monotonic() < deadline, "moto did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3_env(moto_endpoint: str, broker: str, monkeypatch: pytest.MonkeyPatch) -> str:
    variables = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket=BUCKET
    )
    uri = f"s3://{BUCKET}/lake{time.monotonic_ns()}"
    monkeypatch.setenv("MARKETLAKE_LAKE_URI", uri)
    monkeypatch.setenv("MARKETLAKE_KAFKA_BOOTSTRAP", broker)
    return uri


def test_produce_and_ingest_into_an_s3_lake(
    s3_env: str, broker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings()
    assert settings.storage_options["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    # the real topic names on the shared broker: count what this test adds, not the total
    lake = Lake(settings.lake_uri, settings.storage_options)
    args = ["produce", "candles", "--simulate", "--symbols", "BTCUSDT,ETHUSDT", "--hours", "200"]
    assert main(args) == 0
    raw = KafkaProducer(bootstrap_servers=broker)
    raw.send("market.candles", key=b"BTCUSDT", value=b"{broken")
    raw.flush()
    raw.close()
    assert main(["ingest", "--topic", "market.candles"]) == 0
    bronze = read_table(lake.location("bronze/candles"))
    rejects = read_table(lake.location("bronze/_rejects"))
    assert bronze.height >= 400 and rejects.height >= 1
    assert any("invalid JSON" in error for error in rejects["error"].to_list())
    assert list_tables(lake) == ["bronze/_rejects", "bronze/candles"]
    # a rerun lands nothing: the offsets in the S3 Delta log are honoured
    capsys.readouterr()
    assert main(["ingest", "--topic", "market.candles", "--json"]) == 0
    assert '"records": 0' in capsys.readouterr().out
    # hygiene works on S3 too
    compact(lake.location("bronze/candles"))
    assert table_health(lake.location("bronze/candles")).files >= 1
