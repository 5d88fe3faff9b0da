"""Topic ranges: the `name:partition:start:end` text round-trips and bad text is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkaml.protocol import TopicRange, TopicRangeError, format_ranges, is_bare_topic, parse_ranges

topic_ranges = st.builds(
    lambda topic, partition, start, size: TopicRange(topic, partition, start, start + size),
    st.from_regex(r"[a-zA-Z0-9._-]{1,60}", fullmatch=True),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=2**62),
    st.integers(min_value=0, max_value=2**40),
)


@given(st.lists(topic_ranges, min_size=1, max_size=8))
def test_ranges_round_trip_through_their_text(ranges: list[TopicRange]) -> None:
    text = format_ranges(ranges)
    assert parse_ranges(text) == ranges
    assert format_ranges(parse_ranges(text)) == text
    assert not is_bare_topic(text)


def test_kafka_ml_text_lists_one_range_per_partition_with_an_exclusive_end() -> None:
    ranges = parse_ranges("automl:0:0:70000,automl:1:5:5")
    assert ranges == [TopicRange("automl", 0, 0, 70000), TopicRange("automl", 1, 5, 5)]
    assert [r.size for r in ranges] == [70000, 0]


def test_a_bare_topic_name_is_an_online_stream() -> None:
    assert is_bare_topic("mnist-stream")


@pytest.mark.parametrize(
    "text",
    ["", "automl", "automl:0:0", "automl:0:0:10:3", "automl:a:0:10", "automl:0:10:5",
     "automl:-1:0:5", "automl:0:+1:5", "bad name:0:0:1", "automl:0:0:10,", ":0:0:1"],
)  # fmt: skip
def test_text_that_is_not_a_range_list_raises_a_named_error(text: str) -> None:
    with pytest.raises(TopicRangeError):
        parse_ranges(text)


def test_announcing_no_ranges_is_refused() -> None:
    with pytest.raises(TopicRangeError, match="no topic ranges"):
        format_ranges([])
