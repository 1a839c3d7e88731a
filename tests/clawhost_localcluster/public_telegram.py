"""The Bot API stand-in where a customer's pod may reach it without loosening its NetworkPolicy: HTTPS on port 443 of
a public-looking address, in a network namespace of its own, with a certificate from a test CA the gateway trusts.

The address is 203.0.113.10 (TEST-NET-3: public to the policy, which excepts only private, shared and link-local
ranges, and routed nowhere on the internet). The namespace is joined to the host by a veth pair (203.0.113.9/30 on
the host's end), so pods reach it the way they reach api.telegram.org: routed out of the node. The listening socket
is opened inside the namespace by one short-lived thread that enters it (setns applies per thread); the server
itself runs in this process, so tests use its test API directly.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from clawhost_localcluster.telegram_bot_api import TelegramBotApi

NETNS = "clawhost-telegram"
HOST_LINK, NETNS_LINK = "clawhost-tg0", "tg0"
ADDRESS, HOST_SIDE, PREFIX = "203.0.113.10", "203.0.113.9", 30
CLONE_NEWNET = 0x40000000


@dataclass
class PublicTelegram:
    api: TelegramBotApi
    ca_file: Path  # PEM of the CA that signed the server certificate: what NODE_EXTRA_CA_CERTS names in the pod
    netns: str

    @property
    def api_root(self) -> str:
        return f"https://{ADDRESS}"

    def stop(self) -> None:
        self.api.stop()
        remove_netns(self.netns)


def _ip(*args: str, netns: str | None = None) -> None:
    command = ["ip", *(["-n", netns] if netns else []), *args]
    subprocess.run(command, check=True, capture_output=True, text=True)


def remove_netns(netns: str = NETNS) -> None:
    """Gone with its veth pair; nothing if it is not there. The host end is deleted by name (which deletes both
    ends at once): deleting the namespace alone frees the pair only when nothing holds the namespace any more, and
    a socket the stand-in opened in it may still be closing."""
    if Path(f"/sys/class/net/{HOST_LINK}").exists():
        subprocess.run(["ip", "link", "delete", HOST_LINK], check=False, capture_output=True)
    if Path(f"/run/netns/{netns}").exists():
        subprocess.run(["ip", "netns", "delete", netns], check=False, capture_output=True)


def _make_netns(netns: str) -> None:
    remove_netns(netns)  # a harness killed before it could clean up left it behind
    _ip("netns", "add", netns)
    try:
        _ip("link", "add", HOST_LINK, "type", "veth", "peer", "name", NETNS_LINK, "netns", netns)
        _ip("addr", "add", f"{HOST_SIDE}/{PREFIX}", "dev", HOST_LINK)
        _ip("link", "set", HOST_LINK, "up")
        _ip("link", "set", "lo", "up", netns=netns)
        _ip("addr", "add", f"{ADDRESS}/{PREFIX}", "dev", NETNS_LINK, netns=netns)
        _ip("link", "set", NETNS_LINK, "up", netns=netns)
        _ip("route", "add", "default", "via", HOST_SIDE, netns=netns)
    except subprocess.CalledProcessError:
        remove_netns(netns)
        raise


def _listen_in(netns: str, address: str, port: int) -> socket.socket:
    """A listening socket that belongs to `netns`, opened by a thread that enters it and then ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    opened: list[socket.socket] = []
    failed: list[BaseException] = []

    def enter_and_listen() -> None:
        try:
            with open(f"/run/netns/{netns}") as target:
                if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns}")
            opened.append(socket.create_server((address, port), backlog=128))
        except BaseException as error:  # handed to the caller's thread
            failed.append(error)

    thread = threading.Thread(target=enter_and_listen, name=f"listen-in-{netns}")
    thread.start()
    thread.join(10)
    if failed:
        raise failed[0]
    return opened[0]


def _issue_certificates(directory: Path, address: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `address` (an IP SAN) signed by it: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clawhost test Bot API CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    paths = (directory / "telegram-ca.crt", directory / "telegram.crt", directory / "telegram.key")
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(server.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(paths[2], 0o600)
    return paths


def start_public_telegram(directory: Path, netns: str = NETNS, any_token_is_a_bot: bool = False) -> PublicTelegram:
    """The stand-in on https://203.0.113.10:443 inside `netns` (made afresh); stop() removes the namespace.
    `any_token_is_a_bot`: see `TelegramBotApi`."""
    ca_file, cert_file, key_file = _issue_certificates(directory, ADDRESS)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    _make_netns(netns)
    api = TelegramBotApi(any_token_is_a_bot=any_token_is_a_bot)
    try:
        api.start(sock=_listen_in(netns, ADDRESS, 443), ssl_context=context)
    except BaseException:
        with contextlib.suppress(Exception):
            api.stop()
        remove_netns(netns)
        raise
    return PublicTelegram(api=api, ca_file=ca_file, netns=netns)
