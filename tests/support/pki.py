"""A throw-away PKI made with `openssl` for the TLS tests: a CA, a server certificate
it signed for 127.0.0.1/localhost, one it signed for another host name, and a
self-signed one (EC P-256, valid 2 days), in a directory the caller removes."""

from __future__ import annotations

import os
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args, cwd) -> None:
    cp = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, timeout=30)
    if cp.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: "
                           + cp.stderr.decode(errors="replace")[-1500:])


_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass
class Pki:
    dir: str
    ca: str            # the test CA's certificate (what MAILROOM_SMTP_CA_FILE names)
    server_cert: str   # signed by the CA; SAN IP:127.0.0.1, DNS:localhost
    server_key: str
    wrong_host_cert: str  # signed by the CA, but only for DNS:mail.example.com
    wrong_host_key: str
    self_signed_cert: str  # its own issuer; SAN IP:127.0.0.1, DNS:localhost
    self_signed_key: str


def make_pki(directory: str) -> Pki:
    """A CA, a server certificate it signed for 127.0.0.1/localhost, one it signed for
    another host name, and a self-signed certificate for 127.0.0.1 (EC P-256, 2 days)."""
    d = directory

    def leaf(name: str, san: str) -> None:
        _openssl("req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={san.split(':', 1)[1].split(',')[0]}", cwd=d)
        Path(d, f"{name}.ext").write_text(
            f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
                 "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)

    _openssl("req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=mailroom test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    leaf("server", "IP:127.0.0.1,DNS:localhost")
    leaf("wronghost", "DNS:mail.example.com")
    _openssl("req", "-x509", *_EC, "-keyout", "selfsigned.key", "-out", "selfsigned.pem",
             "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", cwd=d)
    p = lambda n: os.path.join(d, n)  # noqa: E731
    return Pki(d, p("ca.pem"), p("server.pem"), p("server.key"), p("wronghost.pem"),
               p("wronghost.key"), p("selfsigned.pem"), p("selfsigned.key"))


def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx
