"""Onboarding settings, read once from the environment (prefix CLAWHOST_ONBOARDING_)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """The environment does not make valid settings; the message names each variable, never its value."""


class OnboardingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLAWHOST_ONBOARDING_", frozen=True, extra="ignore")

    host: str = "0.0.0.0"  # noqa: S104 - a service in its own pod
    port: int = 8095
    # The control API's credential for the internal WebSocket (Authorization: Bearer ...).
    internal_token: SecretStr | None = None
    internal_token_file: Path | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_key_prefix: str = "clawhost:onboarding"
    session_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    # The language model: Kimi's OpenAI-compatible API.
    llm_base_url: str = "https://api.moonshot.ai/v1"
    llm_api_key: SecretStr | None = None
    llm_api_key_file: Path | None = None
    llm_model: str = "kimi-k2.5"
    # Kimi K2.5 thinks by default; a thinking model wants its reasoning sent back with every tool call, which the
    # OpenAI wire format of langchain-openai does not carry, and onboarding needs quick short answers anyway.
    llm_extra_body: dict[str, Any] = Field(default_factory=lambda: {"thinking": {"type": "disabled"}})
    llm_max_completion_tokens: int = Field(default=800, gt=0)
    llm_timeout_seconds: float = Field(default=45.0, gt=0)  # one model call, first byte to last
    llm_max_retries: int = Field(default=1, ge=0)
    max_model_calls_per_message: int = Field(default=6, gt=0)  # tool round trips of one turn
    # The Telegram Bot API (a token's getMe, the owner's /start through getUpdates).
    telegram_api_base_url: str = "https://api.telegram.org"
    telegram_timeout_seconds: float = Field(default=10.0, gt=0)
    # Abuse limits: the platform pays for every token of these conversations.
    max_messages_per_session: int = Field(default=30, gt=0)
    max_tokens_per_session: int = Field(default=150_000, gt=0)
    max_new_sessions_per_ip_per_hour: int = Field(default=10, gt=0)
    max_message_chars: int = Field(default=4000, gt=0)

    def llm_key(self) -> str:
        if self.llm_api_key_file is not None:
            return self.llm_api_key_file.read_text().strip()
        if self.llm_api_key is not None:
            return self.llm_api_key.get_secret_value()
        raise SettingsError("set CLAWHOST_ONBOARDING_LLM_API_KEY_FILE or CLAWHOST_ONBOARDING_LLM_API_KEY")

    def internal_credential(self) -> str:
        if self.internal_token_file is not None:
            return self.internal_token_file.read_text().strip()
        if self.internal_token is not None:
            return self.internal_token.get_secret_value()
        raise SettingsError(
            "set CLAWHOST_ONBOARDING_INTERNAL_TOKEN_FILE or CLAWHOST_ONBOARDING_INTERNAL_TOKEN "
            "(the control API's credential for the internal WebSocket)"
        )


def load_settings() -> OnboardingSettings:
    """Settings from the environment, or a SettingsError naming each bad variable (never its value)."""
    try:
        settings = OnboardingSettings()
        settings.llm_key()
        settings.internal_credential()
    except ValidationError as error:
        problems = "; ".join(
            f"CLAWHOST_ONBOARDING_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in error.errors()
        )
        raise SettingsError(f"invalid onboarding settings: {problems}") from None
    except OSError as error:
        raise SettingsError(f"cannot read a credential file: {error.strerror} ({error.filename})") from None
    return settings
