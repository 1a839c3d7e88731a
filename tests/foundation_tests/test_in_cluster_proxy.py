"""Which upstream `make up`'s in-cluster token proxy gets, and proxy/deploy/ as it renders it (no cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawhost_localcluster.fake_kimi import UPSTREAM_KEY
from clawhost_localcluster.in_cluster_proxy import render_token_proxy, shipped_upstream_url, upstream_from_environment
from clawhost_localcluster.processes import StartupError

STAND_IN = "http://192.0.2.2:4000/v1"


def _base_url(documents: list[dict[str, object]]) -> str:
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    [value] = [v["value"] for v in container["env"] if v["name"] == "CLAWHOST_PROXY_UPSTREAM_BASE_URL"]
    return str(value)


def test_without_a_key_the_proxy_uses_the_local_stand_in() -> None:
    upstream = upstream_from_environment({}, STAND_IN)
    assert (upstream.api_key, upstream.base_url) == (UPSTREAM_KEY, STAND_IN)
    assert "stand-in" in upstream.description
    assert _base_url(render_token_proxy(upstream.base_url)) == STAND_IN


def test_a_kimi_key_goes_to_moonshot_as_shipped_or_to_the_given_base_url(tmp_path: Path) -> None:
    kimi = upstream_from_environment({"CLAWHOST_PROXY_UPSTREAM_API_KEY": "sk-real-kimi"}, STAND_IN)
    assert (kimi.api_key, kimi.base_url) == ("sk-real-kimi", None)
    assert _base_url(render_token_proxy(kimi.base_url)) == shipped_upstream_url() == "https://api.moonshot.ai/v1"
    assert "sk-real-kimi" not in kimi.description + repr(kimi), "the key is never shown"
    key_file = tmp_path / "kimi.key"
    key_file.write_text("sk-from-a-file\n")
    given = {"CLAWHOST_PROXY_UPSTREAM_API_KEY_FILE": str(key_file), "CLAWHOST_PROXY_UPSTREAM_BASE_URL": "https://k/v1"}
    from_file = upstream_from_environment(given, STAND_IN)
    assert (from_file.api_key, from_file.base_url) == ("sk-from-a-file", "https://k/v1")


def test_an_unreadable_or_empty_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"CLAWHOST_PROXY_UPSTREAM_API_KEY_FILE=.*cannot read it"):
        upstream_from_environment({"CLAWHOST_PROXY_UPSTREAM_API_KEY_FILE": str(tmp_path / "absent")}, STAND_IN)
    with pytest.raises(StartupError, match="is empty"):
        upstream_from_environment({"CLAWHOST_PROXY_UPSTREAM_API_KEY": ""}, STAND_IN)
