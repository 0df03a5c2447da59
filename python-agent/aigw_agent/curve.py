"""CurveZMQ for the agent's sockets: load the certificates once, apply them to each socket.

Certificates are CZMQ zcert files in `fabric/cert_dir` (the `aigw-certs` tool makes them):
`NAME.cert` holds the public key, `NAME.cert_secret` the public and the secret key.
`zmq.auth.load_certificate()` reads both. The agent is a CURVE client towards the broker:
its own keypair from `<agent/cert>.cert_secret`, the broker's public key from
`<broker/cert>.cert`.

Secret keys never leave this module in text form: CurveKeys' repr hides them, and every
error names the file, never its contents.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
import zmq.auth

from .config import ConfigError

if TYPE_CHECKING:
    from .config import AgentConfig

_Z85 = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 b".-:+=^!/*?&<>()[]{}@%$#")
_HOWTO = "create certificates with `aigw-certs init DIR` (or add one with `aigw-certs add NAME`)"


class CurveKeys:
    """This process's CURVE keypair and the broker's public key (all Z85, 40 bytes)."""

    __slots__ = ("public", "_secret", "server", "cert", "server_cert")

    def __init__(self, public: bytes, secret: bytes, server: bytes,
                 cert: str = "", server_cert: str = ""):
        self.public = public
        self._secret = secret
        self.server = server
        self.cert = cert                # path of our .cert_secret (for messages)
        self.server_cert = server_cert  # path of the broker's .cert

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Make `sock` a CURVE client of the broker; call before connect()."""
        sock.setsockopt(zmq.CURVE_SECRETKEY, self._secret)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server)

    def __repr__(self) -> str:
        return (f"CurveKeys(public={self.public.decode()!r}, secret=<hidden>, "
                f"server={self.server.decode()!r})")

    __str__ = __repr__


def apply(sock: zmq.Socket[Any], keys: CurveKeys | None) -> None:
    """The one place sockets get CURVE: no-op when keys is None (fabric/curve = off)."""
    if keys is not None:
        keys.apply(sock)


def load_curve(cfg: "AgentConfig") -> CurveKeys | None:
    """Keys for cfg (None when fabric/curve is off); raises ConfigError naming the file."""
    if not cfg.curve:
        return None
    if cfg.cert_dir is None:
        raise ConfigError("fabric/cert_dir: required when fabric/curve = on")
    return load_keys(cfg.cert_dir, cfg.agent_cert, cfg.broker_cert)


def load_keys(cert_dir: str | os.PathLike[str], cert: str = "agent",
              broker_cert: str = "broker") -> CurveKeys:
    """Load `cert_dir/<cert>.cert_secret` (mode 0600) and `cert_dir/<broker_cert>.cert`."""
    if not zmq.has("curve"):
        raise ConfigError("fabric/curve = on, but this libzmq was built without CURVE "
                          f"(libzmq {zmq.zmq_version()})")
    d = Path(cert_dir)
    secret_path = d / f"{cert}.cert_secret"
    server_path = d / f"{broker_cert}.cert"
    _check_secret_file(secret_path, cert)
    public, secret = _read(secret_path, "agent/cert")
    if secret is None:
        raise ConfigError(f"curve: {secret_path}: no curve/secret-key in it (is it a public "
                          f"certificate? the secret one is written by `aigw-certs add {cert}`)")
    if zmq.curve_public(secret) != public:
        raise ConfigError(f"curve: {secret_path}: its public key does not belong to its "
                          "secret key (the file was edited; recreate it with "
                          f"`aigw-certs add {cert}`)")
    if not server_path.is_file():
        raise ConfigError(f"curve: {server_path}: broker certificate not found (broker/cert = "
                          f"{broker_cert!r}); copy the broker's {broker_cert}.cert into "
                          f"{d}, or {_HOWTO}")
    server, _ = _read(server_path, "broker/cert")
    return CurveKeys(public, secret, server, str(secret_path), str(server_path))


def _check_secret_file(path: Path, cert: str) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"curve: {path}: secret certificate not found (agent/cert = "
                          f"{cert!r}); {_HOWTO.replace('NAME', cert)}") from None
    except OSError as e:
        raise ConfigError(f"curve: {path}: cannot read: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"curve: {path}: not a regular file")
    if st.st_mode & 0o077:
        raise ConfigError(f"curve: {path}: secret certificate is readable by group or others "
                          f"(mode {stat.S_IMODE(st.st_mode):04o}); run `chmod 600 {path}`")


def _read(path: Path, key: str) -> tuple[bytes, bytes | None]:
    """(public, secret or None) from a zcert file; errors never quote the file's contents."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        why = ((e.strerror or "cannot read") if isinstance(e, OSError)
               else "no curve/public-key in it")
        raise ConfigError(f"curve: {path} ({key}): not a usable certificate: {why}") from None
    for name, k in (("public-key", public), ("secret-key", secret)):
        if k is not None and (len(k) != 40 or not set(k) <= _Z85):
            raise ConfigError(f"curve: {path} ({key}): curve/{name} is not a 40-character "
                              "Z85 key")
    return public, secret
