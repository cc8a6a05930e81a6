"""``SkipLog``: each bad record counted once, whichever rank or view found it."""

import pytest

from slu_lightning.data.errors import DataError, SkipLog


def test_records_skipped_on_several_ranks_are_counted_once_when_merged():
    first, second = SkipLog("skip"), SkipLog("skip")
    first.handle(DataError("cannot decode", file="a.flac", record="a"))
    first.handle(DataError("cannot decode", file="a.flac", record="a"))  # read again: counted once
    second.handle(DataError("cannot decode", file="a.flac", record="a"))  # another rank, the same clip
    second.handle(DataError("empty audio", file="b.flac", record="b"))
    first.absorb(second.records())
    assert first.counts == {"cannot decode": 1, "empty audio": 1}
    assert first.summary() == "skipped 2 records: 1 x cannot decode, 1 x empty audio"


def test_the_error_policy_raises_the_records_error():
    with pytest.raises(DataError, match="record a: cannot decode"):
        SkipLog("error").handle(DataError("cannot decode", record="a"))
