import time

import pytest

from chalicelib.pins.timestamps import format_ms, now_ms, parse_rfc3339

# 2020-07-27T17:32:28Z, cross-checked with `date -u -d 2020-07-27T17:32:28Z +%s`.
_SECONDS_2020_07_27T17_32_28 = 1_595_871_148
_NS = 1_000_000_000


def test_given_utc_timestamp_when_parsed_then_nanoseconds_since_epoch() -> None:
    assert parse_rfc3339("2020-07-27T17:32:28Z") == _SECONDS_2020_07_27T17_32_28 * _NS


def test_given_the_epoch_when_parsed_then_zero() -> None:
    assert parse_rfc3339("1970-01-01T00:00:00Z") == 0


@pytest.mark.parametrize(
    "value",
    [
        "2020-07-27T23:02:28+05:30",
        "2020-07-27T09:32:28-08:00",
        "2020-07-27T17:32:28+00:00",
        "2020-07-27T17:32:28-00:00",
        "2020-07-28T17:31:28+23:59",
    ],
)
def test_given_an_offset_when_parsed_then_same_instant_as_utc(value: str) -> None:
    assert parse_rfc3339(value) == _SECONDS_2020_07_27T17_32_28 * _NS


def test_given_nine_fraction_digits_when_parsed_then_exact_nanoseconds() -> None:
    # A float would round this (1672531200.123456789 is not representable).
    assert parse_rfc3339("2023-01-01T00:00:00.123456789Z") == 1_672_531_200_123_456_789


@pytest.mark.parametrize(
    ("fraction", "nanos"),
    [
        (".1", 100_000_000),
        (".276", 276_000_000),
        (".000001", 1_000),
        (".1234567891", 123_456_789),
        (".9999999999", 999_999_999),
    ],
)
def test_given_any_fraction_length_when_parsed_then_truncated_to_nanoseconds(fraction: str, nanos: int) -> None:
    assert parse_rfc3339(f"1970-01-01T00:00:00{fraction}Z") == nanos


@pytest.mark.parametrize("value", ["2020-07-27t17:32:28z", "2020-07-27 17:32:28Z", "2020-07-27T17:32:28z"])
def test_given_lowercase_or_space_separators_when_parsed_then_accepted(value: str) -> None:
    assert parse_rfc3339(value) == _SECONDS_2020_07_27T17_32_28 * _NS


def test_given_a_leap_second_when_parsed_then_counts_as_the_next_second() -> None:
    assert parse_rfc3339("2016-12-31T23:59:60Z") == parse_rfc3339("2017-01-01T00:00:00Z")


def test_given_february_29_in_a_leap_year_when_parsed_then_accepted() -> None:
    assert parse_rfc3339("2024-02-29T00:00:00Z") + 86400 * _NS == parse_rfc3339("2024-03-01T00:00:00Z")


def test_given_the_edges_of_the_year_range_when_parsed_then_accepted() -> None:
    assert parse_rfc3339("0001-01-01T00:00:00Z") == -62_135_596_800 * _NS
    assert parse_rfc3339("9999-12-31T23:59:59.999999999Z") == 253_402_300_799_999_999_999


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "2023-01-01",
        "2023-01-01T00:00:00",
        "2023-01-01T00:00",
        "2023-01-01T00:00Z",
        "2023-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2023-13-01T00:00:00Z",
        "2023-00-10T00:00:00Z",
        "2023-01-00T00:00:00Z",
        "2023-01-32T00:00:00Z",
        "2023-01-01T24:00:00Z",
        "2023-01-01T00:60:00Z",
        "2023-01-01T00:00:61Z",
        "2023-01-01T00:00:00+24:00",
        "2023-01-01T00:00:00+05:60",
        "2023-01-01T00:00:00+0530",
        "2023-01-01T00:00:00+05",
        "2023-01-01T00:00:00.Z",
        "2023-01-01T00:00:00ZZ",
        "2023-01-01T00:00:00Z junk",
        "2023-01-01T00:00:00Z\n",
        " 2023-01-01T00:00:00Z",
        "2023-01-01X00:00:00Z",
        "2023-01-01T00:00:00UTC",
        "2023-1-01T00:00:00Z",
        "23-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "10000-01-01T00:00:00Z",
        "+2023-01-01T00:00:00Z",
        "２０２３-01-01T00:00:00Z",
        "2023-01-01T00:00:00.١Z",
    ],
)
def test_given_an_invalid_timestamp_when_parsed_then_value_error_with_a_message(value: str) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        parse_rfc3339(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2023-02-30T00:00:00Z", "no such date"),
        ("2023-01-01T24:00:00Z", "time of day"),
        ("2023-01-01T00:00:00-24:00", "UTC offset"),
        ("2023-01-01 00:00:00", "time zone"),
    ],
)
def test_given_an_invalid_timestamp_when_parsed_then_the_message_says_what_is_wrong(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_rfc3339(value)


def test_given_milliseconds_when_formatted_then_three_fraction_digits_and_z() -> None:
    assert format_ms(_SECONDS_2020_07_27T17_32_28 * 1000 + 276) == "2020-07-27T17:32:28.276Z"
    assert format_ms(_SECONDS_2020_07_27T17_32_28 * 1000) == "2020-07-27T17:32:28.000Z"
    assert format_ms(0) == "1970-01-01T00:00:00.000Z"


@pytest.mark.parametrize("ms", [0, 1, 999, 1_595_871_148_276, 253_402_300_799_999, -1])
def test_given_milliseconds_when_formatted_and_parsed_back_then_same_instant(ms: int) -> None:
    assert parse_rfc3339(format_ms(ms)) == ms * 1_000_000


def test_given_the_clock_when_read_then_milliseconds_of_the_current_time() -> None:
    before = time.time_ns() // 1_000_000
    reading = now_ms()
    after = time.time_ns() // 1_000_000

    assert before <= reading <= after
