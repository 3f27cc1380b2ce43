"""The exception family: errors raised on a Dask worker must reach the client intact."""

from __future__ import annotations

import pickle

from pentools.core.errors import (
    AddressError,
    ClusterError,
    ConfigError,
    InputFileError,
    MissingExtraError,
    PentoolsError,
)


def test_errors_survive_pickling_with_their_attributes() -> None:
    errors: list[PentoolsError] = [
        InputFileError("/logs/a.log", "No such file or directory"),
        AddressError("[::1", "unclosed bracket"),
        ConfigError("local:0", "needs a worker"),
        ClusterError("tcp://127.0.0.1:8786", "no answer within 3 s"),
        MissingExtraError("--scheduler", "dask"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert vars(copy) == vars(error)
    assert pickle.loads(pickle.dumps(errors[0])).path == "/logs/a.log"
