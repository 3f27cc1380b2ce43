"""TLS termination (-E/-K) and its options (-G/-A/-R/-L/-Z): the server's ssl context.

Every file is read and the protocol tried (a handshake with itself, in
memory) at start, before pen goes to the background, so that each mistake
is a one-line error naming the file or the option.
"""

from __future__ import annotations

import logging
import os
import re
import ssl

from pentools.core.errors import ConfigError
from pentools.pen.config import TLS_PROTOCOLS, PenConfig

log = logging.getLogger("pentools.pen")

#: Hashed CA file names in a -A directory: 8 hex digits, a dot, a number (.r0 are CRLs).
_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")


def server_context(config: PenConfig) -> ssl.SSLContext | None:
    """The server context of -E/-K/-G/-A/-R/-L/-Z, checked by a handshake with itself.

    Every file is read here, before going to the background, so that a typo
    or a permission problem is a one-line error naming the file.
    """
    if config.certfile is None:
        return None
    context = _base_context(config)
    _check_handshake(_base_context(config), config.tls_protocol)
    if config.cacertfile is not None or config.cacertdir is not None:
        _load_cas(context, config.cacertfile, config.cacertdir)
        if not config.require_peer_cert:
            _warn("-G/-A without -R: client certificates are not asked for (like the original)")
    elif config.require_peer_cert:  # the original falls back to the default locations too
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        _warn("-R without -G or -A: client certificates are checked against the system CAs")
    if config.require_peer_cert:
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _base_context(config: PenConfig) -> ssl.SSLContext:
    """Certificate, key, protocol and options: everything but client verification."""
    assert config.certfile is not None
    _check_readable(config.certfile, "-E")
    if config.keyfile is not None:
        _check_readable(config.keyfile, "-K")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if config.tls_compat:
        context.options |= ssl.OP_ALL
    version = TLS_PROTOCOLS[config.tls_protocol]
    if version is not None:
        try:
            context.minimum_version = context.maximum_version = version
        except (ValueError, ssl.SSLError) as exc:
            raise ConfigError(f"-L {config.tls_protocol}", f"not supported here: {exc}") from None
    try:
        context.load_cert_chain(config.certfile, config.keyfile)
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(name for name in (config.certfile, config.keyfile) if name)
        raise ConfigError(files, f"cannot use as PEM certificate and key: {_reason(exc)}") from None
    return context


def _check_handshake(server: ssl.SSLContext, protocol: str) -> None:
    """Shake hands with `server` in memory: OpenSSL refuses old protocols only then."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    sides = [
        client.wrap_bio(incoming=to_client, outgoing=to_server),
        server.wrap_bio(incoming=to_server, outgoing=to_client, server_side=True),
    ]
    try:
        for _ in range(8):  # a handshake is a few flights; more means something is wrong
            waiting = False
            for side in sides:
                try:
                    side.do_handshake()
                except ssl.SSLWantReadError:
                    waiting = True
            if not waiting:
                return
        raise ConfigError(f"-L {protocol}", "the TLS handshake test did not finish")
    except ssl.SSLError as exc:
        raise ConfigError(
            f"-L {protocol}",
            f"the local {ssl.OPENSSL_VERSION} refuses it ({_reason(exc)}); "
            "use ssl23 (the default) or tls1.2",
        ) from None


def _load_cas(context: ssl.SSLContext, cafile: str | None, capath: str | None) -> None:
    if cafile is not None:
        _check_readable(cafile, "-G")
        try:
            context.load_verify_locations(cafile=cafile)
        except ssl.SSLError as exc:
            raise ConfigError(cafile, f"no CA certificate in the -G file: {_reason(exc)}") from None
    if capath is not None:
        try:
            names = os.listdir(capath)
        except OSError as exc:
            raise ConfigError(capath, f"cannot read the -A directory: {exc.strerror}") from None
        if not any(_HASHED_NAME.fullmatch(name) for name in names):
            hint = f"run openssl rehash {capath}"
            raise ConfigError(capath, f"no hashed CA certificates in the -A directory ({hint})")
        context.load_verify_locations(capath=capath)


def _check_readable(path: str, option: str) -> None:
    try:
        with open(path, "rb") as source:
            source.read(1)
    except OSError as exc:
        raise ConfigError(path, f"cannot read the {option} file: {exc.strerror}") from None


def _reason(exc: OSError) -> str:
    """OpenSSL's short reason ("no protocols available") or the system's message."""
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason).replace("_", " ").lower()
    text = str(exc.strerror or exc)  # "[SSL] PEM lib (_ssl.c:3926)": keep "PEM lib"
    return re.sub(r"^\[\w+\] | \(_ssl\.c:\d+\)$", "", text)


def _warn(text: str) -> None:
    log.warning("%s", text)
