"""The one exception family of pentools.

Library code raises these; only the command-line layers turn them into
one-line messages and exit codes.
"""


class PentoolsError(Exception):
    """Base class of every error pentools reports to a user."""

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take other arguments than their message: rebuild them from the
        # message and attributes, so that an error raised on a Dask worker reaches
        # the client as itself (pickle would call __init__ with the message alone).
        return (_rebuild, (type(self), str(self), self.__dict__))


def _rebuild(
    cls: type[PentoolsError], message: str, attributes: dict[str, object]
) -> PentoolsError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(attributes)
    return error


class AddressError(PentoolsError, ValueError):
    """A host, address or host:port that cannot be used."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"bad address {text!r}: {reason}")
        self.text = text
        self.reason = reason


class ListenError(PentoolsError, OSError):
    """A socket that cannot be bound to listen (address in use, not local, no permission)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"cannot listen on {where}: {reason}")
        self.where = where
        self.reason = reason


class LogFormatError(PentoolsError, ValueError):
    """An Apache LogFormat string that pentools cannot use."""

    def __init__(self, log_format: str, reason: str) -> None:
        super().__init__(f"unusable log format {log_format!r}: {reason}")
        self.log_format = log_format
        self.reason = reason


class RecordError(PentoolsError, ValueError):
    """A balancer record that does not follow the local or UDP format."""

    def __init__(self, data: bytes, reason: str) -> None:
        super().__init__(f"bad balancer record {data[:80]!r}: {reason}")
        self.data = data
        self.reason = reason


class InputFileError(PentoolsError, OSError):
    """An input file that cannot be opened or read."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.path = path
        self.reason = reason


class ConfigError(PentoolsError, ValueError):
    """A command-line option or configuration value that cannot be used."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"bad value {text!r}: {reason}")
        self.text = text


class OutputFileError(PentoolsError, OSError):
    """An output file (log, PID file) that cannot be created or written."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path
        self.reason = reason


class PrivilegeError(PentoolsError):
    """A user (-u) or chroot directory (-j) that a daemon cannot switch to."""


class StartupError(PentoolsError):
    """A daemon that could not start; the message is its own one-line reason,
    passed to the command that started it (`pentools.core.process.detach`)."""


class UnparsedInputError(PentoolsError, ValueError):
    """An input of which too few lines parse in the log format tried.

    The lines were still passed through; this says the result is worth little
    (a wrong ``--log-format``, a pen.log given as an access log, binary junk).
    """

    def __init__(self, path: str, log_format: str, lines: int, parsed: int, sample: str) -> None:
        share = 100 * parsed / lines if lines else 0.0
        super().__init__(
            f"{path}: {parsed} of {lines} lines ({share:.1f}%) parse as {log_format}; "
            f"one that does not: {sample[:160]!r}"
        )
        self.path = path
        self.log_format = log_format
        self.lines = lines
        self.parsed = parsed
        self.sample = sample

    @classmethod
    def if_too_few(
        cls, path: str, log_format: str, lines: int, parsed: int, sample: str, min_parsed: float
    ) -> "UnparsedInputError | None":
        """The error when nothing of a non-empty input parses, or less than `min_parsed`
        of it: the one rule of every tool that reads access logs."""
        if lines and (parsed == 0 or parsed < min_parsed * lines):
            return cls(path, log_format, lines, parsed, sample)
        return None


class MissingExtraError(PentoolsError, ImportError):
    """An optional part of pentools that is not installed."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the {extra!r} extra: pip install 'pentools[{extra}]'")
        self.feature = feature
        self.extra = extra


class ClusterError(PentoolsError, ConnectionError):
    """A Dask scheduler or cluster that cannot be reached or started."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"Dask scheduler {address}: {reason}")
        self.address = address
        self.reason = reason
