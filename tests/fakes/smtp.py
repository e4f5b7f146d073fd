"""A fake SMTP server on loopback: aiosmtpd with AUTH, STARTTLS or implicit TLS, and knobs.

It speaks real SMTP (aiosmtpd), so the e-mail adapter is tested over a real socket, TLS
handshake and AUTH exchange included. The TLS certificate is self-signed, made at start with
`cryptography` for 127.0.0.1; point the adapter at `base_url` (``verify=false``) or at
`base_url_with_ca` (trusts the fake's certificate through ``cafile``).

    with FakeSmtp(mode="starttls", username="mailer", password="secret") as fake:
        ...  # sender.base_url = fake.base_url; then inspect fake.messages
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import shutil
import socket
import ssl
import tempfile
import threading
import uuid
import weakref
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fakes.harness import ThreadedFake, take_next

Mode = Literal["plain", "starttls", "tls"]
Stage = Literal["mail", "rcpt", "data"]

_HOST = "127.0.0.1"
_SERVER_NAME = "fake-smtp.test"


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One message the fake accepted with 250."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage
    tls: bool
    login: str | None
    queue_id: str


@dataclass(slots=True)
class _Rejection:
    stage: Stage
    code: int
    text: str
    remaining: int


@dataclass(slots=True)
class _Trouble:
    kind: Literal["drop", "stall"]
    seconds: float
    remaining: int


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1/localhost and its key; return their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Herald fake SMTP")])
    now = datetime.now(UTC)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(_HOST))]
            ),
            critical=False,
        )
        # Marked as its own CA so a client may trust it through cafile, which is how tests
        # prove certificate verification really happens.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Controller(Controller):
    """aiosmtpd's threaded controller on a socket we bound, so port 0 works without races.

    SMTP is no ASGI app, so this fake runs on aiosmtpd's own thread rather than
    `harness.ServerThread`; it shares only `ThreadedFake`'s with-statement.
    """

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        self._sock = sock
        self.servers: weakref.WeakSet[SMTP] = weakref.WeakSet()
        super().__init__(handler, hostname=_HOST, port=sock.getsockname()[1], **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)

    def factory(self) -> SMTP:
        """One aiosmtpd SMTP per connection, remembered so stop() can close it."""
        server = SMTP(self.handler, **self.SMTP_kwargs)
        self.servers.add(server)
        return server


class _Handler:
    """aiosmtpd hooks: enforce AUTH, apply the knobs, record accepted messages."""

    def __init__(self, fake: FakeSmtp) -> None:
        self._fake = fake

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """Accept exactly the configured username and password (PLAIN or LOGIN)."""
        fake = self._fake
        if (
            isinstance(auth_data, LoginPassword)
            and fake.username is not None
            and hmac.compare_digest(auth_data.login, fake.username.encode())
            and hmac.compare_digest(auth_data.password, (fake.password or "").encode())
        ):
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False: aiosmtpd answers 535 5.7.8, as real servers do.
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        """Refuse MAIL before AUTH when the fake has credentials, or as a knob says."""
        # Checked here rather than with aiosmtpd's auth_required, which warns whenever TLS is
        # not also required for AUTH (the plain and implicit-TLS modes).
        if self._fake.username is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        rejection = self._fake._take_rejection("mail")
        if rejection is not None:
            return rejection
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept the recipient unless a knob says otherwise."""
        rejection = self._fake._take_rejection("rcpt")
        if rejection is not None:
            return rejection
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the message and answer 250 with a queue id, unless a knob interferes."""
        fake = self._fake
        rejection = fake._take_rejection("data")
        if rejection is not None:
            return rejection
        trouble = fake._take_trouble()
        if trouble is not None and trouble.kind == "drop":
            # The whole message arrived, but no answer ever will: the client cannot know.
            fake.dropped += 1
            if isinstance(server.transport, asyncio.Transport):
                server.transport.abort()
            return "250 OK"  # written to a closed transport, never seen
        if trouble is not None:
            await asyncio.sleep(trouble.seconds)
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        transport = server.transport
        queue_id = uuid.uuid4().hex[:12].upper()
        auth_data = session.auth_data
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else None
        record = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=content,
            message=parsed,
            tls=transport is not None and transport.get_extra_info("sslcontext") is not None,
            login=login,
            queue_id=queue_id,
        )
        with fake._lock:
            fake.messages.append(record)
        return f"250 2.0.0 Ok: queued as {queue_id}"


class FakeSmtp(ThreadedFake):
    """An SMTP server on 127.0.0.1 in one of three modes.

    - ``plain``: no TLS at all (AUTH allowed in clear, as on a local relay).
    - ``starttls``: STARTTLS offered and required before MAIL and AUTH (submission, 587).
    - ``tls``: implicit TLS from the first byte (submissions, 465).

    With `username` set, MAIL is refused with 530 until the client authenticated.
    """

    def __init__(
        self,
        mode: Mode = "plain",
        *,
        username: str | None = None,
        password: str | None = None,
        port: int = 0,
    ) -> None:
        if mode not in ("plain", "starttls", "tls"):
            raise ValueError(f"mode must be plain, starttls or tls, not {mode!r}")
        self.mode: Mode = mode
        self.username = username
        self.password = password
        self._port = port
        self.port = 0
        self.cert_path: Path | None = None
        self.messages: list[ReceivedMail] = []
        self.dropped = 0
        self._lock = threading.Lock()
        self._rejections: deque[_Rejection] = deque()
        self._troubles: deque[_Trouble] = deque()
        self._controller: _Controller | None = None
        self._tempdir: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Serve on a background thread; returns once the server answers connections."""
        if self._controller is not None:
            raise RuntimeError("FakeSmtp is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((_HOST, self._port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        tls_context: ssl.SSLContext | None = None
        if self.mode != "plain":
            self._tempdir = Path(tempfile.mkdtemp(prefix="herald-fake-smtp-"))
            cert_path, key_path = _self_signed(self._tempdir)
            self.cert_path = cert_path
            tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls_context.load_cert_chain(cert_path, key_path)
        handler = _Handler(self)
        kwargs: dict[str, Any] = {
            "server_hostname": _SERVER_NAME,
            "authenticator": handler.authenticate,
            # Implicit TLS is TLS too, but aiosmtpd only counts STARTTLS as such.
            "auth_require_tls": self.mode == "starttls",
            "ready_timeout": 10.0,
        }
        if self.mode == "starttls":
            kwargs.update(tls_context=tls_context, require_starttls=True)
        elif self.mode == "tls":
            kwargs.update(ssl_context=tls_context)
        controller = _Controller(handler, sock, **kwargs)
        try:
            controller.start()
        except BaseException:
            controller.stop(no_assert=True)
            if not controller.loop.is_running() and not controller.loop.is_closed():
                # The server thread died before it could close its own loop.
                controller.loop.close()
            sock.close()
            self._cleanup_tempdir()
            raise
        self._controller = controller

    def stop(self) -> None:
        """Close open connections, stop the server thread, delete the certificate."""
        controller = self._controller
        if controller is None:
            return
        self._controller = None
        future = asyncio.run_coroutine_threadsafe(
            self._close_connections(controller), controller.loop
        )
        future.result(timeout=10)
        controller.stop()
        self._cleanup_tempdir()

    async def _close_connections(self, controller: _Controller) -> None:
        servers = list(controller.servers)
        for server in servers:
            if server.transport is not None:
                server.transport.close()
        # Let connection_lost and the handlers' cancellations run before the loop stops.
        for _ in range(20):
            await asyncio.sleep(0.01)
            if all(
                server._handler_coroutine is None or server._handler_coroutine.done()
                for server in servers
            ):
                break

    def _cleanup_tempdir(self) -> None:
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def reset(self) -> None:
        """Forget received messages and pending knobs."""
        with self._lock:
            self.messages.clear()
            self._rejections.clear()
            self._troubles.clear()
            self.dropped = 0

    # -- addresses for the adapter -----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The SMTP URL for a sender record; certificate checks off (self-signed)."""
        if self.mode == "tls":
            return f"smtps://{_HOST}:{self.port}?verify=false"
        if self.mode == "starttls":
            return f"smtp://{_HOST}:{self.port}?starttls=required&verify=false"
        return f"smtp://{_HOST}:{self.port}?starttls=off"

    @property
    def base_url_with_ca(self) -> str:
        """The SMTP URL trusting the fake's own certificate through ``cafile``."""
        if self.cert_path is None:
            raise RuntimeError("only the TLS modes have a certificate (and only once started)")
        cafile = quote(str(self.cert_path))
        if self.mode == "tls":
            return f"smtps://{_HOST}:{self.port}?cafile={cafile}"
        return f"smtp://{_HOST}:{self.port}?starttls=required&cafile={cafile}"

    # -- knobs -------------------------------------------------------------------------------

    def reject_next(self, code: int, text: str, *, stage: Stage = "rcpt", count: int = 1) -> None:
        """Answer the next `count` MAIL, RCPT or DATA commands with `code` and `text`."""
        if not 400 <= code < 600:
            raise ValueError("a rejection is a 4xx or 5xx reply")
        with self._lock:
            self._rejections.append(_Rejection(stage, code, text, count))

    def drop_next(self, count: int = 1) -> None:
        """After the next `count` messages' data arrive, close the connection unanswered."""
        with self._lock:
            self._troubles.append(_Trouble("drop", 0.0, count))

    def stall_next(self, seconds: float, count: int = 1) -> None:
        """Wait `seconds` before answering the next `count` messages' data."""
        with self._lock:
            self._troubles.append(_Trouble("stall", seconds, count))

    def _take_rejection(self, stage: Stage) -> str | None:
        with self._lock:
            for rejection in self._rejections:
                if rejection.stage == stage:
                    rejection.remaining -= 1
                    if rejection.remaining <= 0:
                        self._rejections.remove(rejection)
                    return f"{rejection.code} {rejection.text}"
        return None

    def _take_trouble(self) -> _Trouble | None:
        return take_next(self._troubles, self._lock)
