import ctypes.util

import pytest

from marketcast.perf import tune_malloc


def test_tune_malloc_applies_on_glibc_and_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("MARKETCAST_TUNE_MALLOC", "0")
    assert tune_malloc.__wrapped__() is False
    monkeypatch.delenv("MARKETCAST_TUNE_MALLOC")
    if ctypes.util.find_library("c") is None:
        pytest.skip("no C library to tune")
    assert tune_malloc.__wrapped__() is True
