"""The Bot API stand-in on a public-looking address's 443, in its own network namespace, trusted through a test CA."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from clawhost_localcluster.public_telegram import NETNS, start_public_telegram


def test_reachable_over_tls_from_the_host_and_gone_after_stop(tmp_path: Path) -> None:
    public = start_public_telegram(tmp_path)
    try:
        bot = public.api.register_bot()
        assert public.api_root == "https://203.0.113.10"
        answer = httpx.get(
            f"{public.api_root}/bot{bot.token}/getMe", verify=ssl.create_default_context(cafile=public.ca_file)
        )
        assert answer.json() == {"ok": True, "result": bot.user()}
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{public.api_root}/bot{bot.token}/getMe")  # only a client that trusts the test CA
        listening = subprocess.run(["ip", "netns", "exec", NETNS, "ss", "-Hltn"], capture_output=True, text=True)
        assert "203.0.113.10:443" in listening.stdout, "the socket lives in the stand-in's own namespace"
    finally:
        public.stop()
    assert NETNS not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "clawhost-tg0" not in subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout


def test_a_leftover_namespace_is_replaced(tmp_path: Path) -> None:
    subprocess.run(["ip", "netns", "add", NETNS], check=True)  # as a SIGKILLed harness would leave it
    public = start_public_telegram(tmp_path)
    public.stop()
    assert NETNS not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
