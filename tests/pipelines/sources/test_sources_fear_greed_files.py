"""Fear & Greed history files (JSON and CSV) -> valid ``market.fear_greed`` messages."""

from __future__ import annotations

import pytest

from pipelines.sources.fear_greed_files import read_fear_greed_file
from warehouse.errors import SourceError
from warehouse.topics import validate_fear_greed

JSON_FILE = "fear_greed_index_daily_2018-02_2023-12.json"
CSV_FILE = "fear_greed_index_daily_2018-02_2023-12.csv"
LABELS = {"Extreme Fear", "Fear", "Neutral", "Greed", "Extreme Greed"}


@pytest.mark.parametrize("name", [JSON_FILE, CSV_FILE])
def test_real_files_give_valid_messages_oldest_first(shared_data_dir, name) -> None:
    messages = read_fear_greed_file(shared_data_dir / name)
    assert len(messages) == 2_157
    for message in messages:
        validate_fear_greed(message)
        assert message["source"] == f"file:{name}"
    times = [m["ts"] for m in messages]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert messages[0] == {
        "value": 30,
        "classification": "Fear",
        "ts": 1_517_443_200_000,  # 2018-02-01 00:00 UTC
        "source": f"file:{name}",
    }
    assert {m["classification"] for m in messages} == LABELS
    assert all(t % 86_400_000 == 0 for t in times)  # daily values at midnight UTC


def test_json_and_csv_agree(shared_data_dir) -> None:
    strip = [
        [
            (m["ts"], m["value"], m["classification"])
            for m in read_fear_greed_file(shared_data_dir / n)
        ]
        for n in (JSON_FILE, CSV_FILE)
    ]
    assert strip[0] == strip[1]


def test_the_api_response_file_reads_too(api_samples) -> None:
    messages = read_fear_greed_file(api_samples / "alternative_me_fng_response_2026-09-25.json")
    assert [m["ts"] for m in messages] == [1_790_208_000_000, 1_790_294_400_000]


def test_a_csv_with_only_dates_uses_midnight_utc(tmp_path) -> None:
    path = tmp_path / "fng.csv"
    path.write_text("date,value,classification\n2018-02-02,15,Extreme Fear\n2018-02-01,30,Fear\n")
    messages = read_fear_greed_file(path)
    assert [(m["ts"], m["value"]) for m in messages] == [
        (1_517_443_200_000, 30),
        (1_517_529_600_000, 15),
    ]


@pytest.mark.parametrize(
    ("suffix", "content", "match"),
    [
        (".csv", "day,score\n2018-02-01,30\n", "unknown fear & greed layout"),  # other columns
        (".csv", "date,value,value_classification\nsoon,30,Fear\n", "line 2"),  # a bad date
        (".csv", "timestamp,value,value_classification\n1517443200,high,Fear\n", "non-numeric"),
        (".json", '{"name": "x"}', "no 'data' array"),  # an object without data
        (".json", "[{", "not a readable JSON"),  # truncated
    ],
)
def test_bad_files_raise_source_errors(tmp_path, suffix, content, match) -> None:
    path = tmp_path / f"fng{suffix}"
    path.write_text(content)
    with pytest.raises(SourceError, match=match):
        read_fear_greed_file(path)
