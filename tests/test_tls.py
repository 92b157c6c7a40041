"""Inbound STARTTLS for direct use as an MX: a self-signed certificate made here, a client that
upgrades (smtplib, swaks --tls) and one that does not, the Received field recording the TLS
version, no AUTH ever offered or accepted, and a renewed certificate taken on SIGHUP."""

from __future__ import annotations

import datetime
import shutil
import signal
import smtplib
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from serverutil import Server, wait_for
from test_smtp_receive import admin

LIST = "team@example.org"


def certificate(directory: Path, name: str) -> tuple[Path, Path, int]:
    """(cert file, key file, serial) of a new self-signed certificate for `name`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    return cert_file, key_file, cert.serial_number


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed: the test checks the serial instead
    return context


def post(mid: str) -> bytes:
    return (
        f"From: anne@example.org\r\nTo: {LIST}\r\nSubject: over TLS?\r\nMessage-ID: <{mid}>\r\n"
        "\r\nHello.\r\n"
    ).encode()


def served_serial(port: int) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=client_context())
        sock = client.sock
        assert isinstance(sock, ssl.SSLSocket)
        der = sock.getpeercert(binary_form=True)
        assert der is not None
        return int(x509.load_der_x509_certificate(der).serial_number)


@pytest.fixture
def certs(tmp_path: Path) -> tuple[Path, Path, int]:
    return certificate(tmp_path, "mx.example.org")


def test_starttls_is_offered_used_and_recorded(
    tmp_path: Path, certs: tuple[Path, Path, int]
) -> None:
    db = tmp_path / "t.db"
    assert admin(db, "lists", "create", LIST, "--posting", "open").returncode == 0
    cert, key, serial = certs
    srv = Server(db, "--tls-cert", str(cert), "--tls-key", str(key), "--hostname", "mx.example.org")
    try:
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:
            code, features = client.ehlo("client.example.net")
            assert code == 250 and b"STARTTLS" in features and b"AUTH" not in features
            client.starttls(context=client_context())
            code, features = client.ehlo("client.example.net")
            assert b"STARTTLS" not in features and b"AUTH" not in features  # never a password
            code, reply = client.docmd("AUTH", "PLAIN AGFub25lAHNlY3JldA==")
            assert code >= 500, reply
            client.sendmail("anne@example.org", [LIST], post("tls1@example.org"))
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:  # a client that does not
            client.sendmail("anne@example.org", [LIST], post("plain1@example.org"))
        assert served_serial(srv.port) == serial
        if shutil.which("swaks"):
            swaks = subprocess.run(
                ["swaks", "--server", f"127.0.0.1:{srv.port}", "--tls", "--from",
                 "anne@example.org", "--to", LIST, "--header", "Message-Id: <swaks1@example.org>",
                 "--timeout", "20"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert swaks.returncode == 0, swaks.stdout[-2000:]
            assert "TLS started" in swaks.stdout
        rows: dict[object, object] = {
            m: r for m, r in srv.rows("SELECT message_id, raw FROM messages")
        }
    finally:
        assert srv.stop() == 0
    over_tls = rows["tls1@example.org"]
    assert isinstance(over_tls, bytes)
    head = over_tls.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("Received: from client.example.net ([127.0.0.1])")
    assert "by mx.example.org (maillist) with ESMTPS (TLSv1.3 with cipher TLS_" in head
    plain = rows["plain1@example.org"]
    assert isinstance(plain, bytes)
    assert b"with ESMTP;" in plain and b"ESMTPS" not in plain.split(b"\r\n\r\n", 1)[0]


def test_a_renewed_certificate_is_taken_on_sighup(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    assert admin(db, "lists", "create", LIST).returncode == 0
    first = tmp_path / "first"
    first.mkdir()
    cert, key, serial = certificate(first, "mx.example.org")
    srv = Server(db, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert served_serial(srv.port) == serial
        renewed = tmp_path / "renewed"
        renewed.mkdir()
        new_cert, new_key, new_serial = certificate(renewed, "mx.example.org")
        shutil.copy(new_cert, cert)
        shutil.copy(new_key, key)
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: served_serial(srv.port) == new_serial, "the renewed certificate")
        cert.write_text("not a certificate\n")  # a broken renewal: the working one stays
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "not reloaded" in srv.log.read_text(), "the reload to be refused")
        assert served_serial(srv.port) == new_serial and srv.proc.poll() is None
    finally:
        assert srv.stop() == 0


def test_bad_tls_options_are_one_line_errors(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    assert admin(db, "lists", "create", LIST).returncode == 0
    missing = admin(db, "serve", "--port", "0", "--tls-cert", str(tmp_path / "none.pem"),
                    "--tls-key", str(tmp_path / "none.key"))  # fmt: skip
    assert missing.returncode != 0 and "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr
    alone = admin(db, "serve", "--port", "0", "--tls-cert", str(tmp_path / "x.pem"))
    assert alone.returncode != 0 and "go together" in alone.stderr
