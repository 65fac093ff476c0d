"""A measurement is a finite number: the one rule every numeric check asks of collector.numbers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.numbers import finite_number, is_non_finite, non_finite_paths, non_finite_text


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_a_number_is_a_measurement_exactly_when_it_is_finite(value: float) -> None:
    number = finite_number(value)
    assert (number is not None) == math.isfinite(value)
    assert is_non_finite(value) == (not math.isfinite(value))


@pytest.mark.parametrize("value", [None, True, False, "0.5", "NaN", [1.0], {"v": 1.0}])
def test_anything_but_a_json_number_is_not_a_measurement(value: object) -> None:
    assert finite_number(value) is None


@pytest.mark.parametrize(
    ("text", "shown"),
    [("NaN", "NaN"), ("nan", "NaN"), ("+Inf", "+Inf"), ("Infinity", "+Inf"), ("-Inf", "-Inf"), ("-Infinity", "-Inf")],
)
def test_the_words_sources_write_for_non_finite_values(text: str, shown: str) -> None:
    assert is_non_finite(text)
    assert non_finite_text(text) == shown
    assert not is_non_finite("0.1") and not is_non_finite("information")


def test_non_finite_paths_name_each_place_and_read_text_only_when_asked() -> None:
    payload = {"a": [1.0, {"b": math.nan}], "c": "NaN", "d": -math.inf, "e": True}
    assert non_finite_paths(payload) == ["a[1].b", "d"]
    assert non_finite_paths(payload, text=True) == ["a[1].b", "c", "d"]
    assert non_finite_paths({"ok": [0.1, 2, "x"]}, text=True) == []
