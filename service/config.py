"""Server settings: `MT_*` environment variables over an optional YAML file named by `MT_CONFIG_FILE`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

ENV_PREFIX = "MT_"
CONFIG_FILE_VAR = "MT_CONFIG_FILE"
PROVIDERS = ("CPUExecutionProvider", "CUDAExecutionProvider")

Port = Annotated[int, Field(ge=0, le=65535, description="0 picks a free port")]
Positive = Annotated[int, Field(ge=1)]
StrList = Annotated[list[str], NoDecode]


class ConfigError(Exception):
    """The settings are invalid; the message names each bad setting."""


class PortBusy(ConfigError):
    """A port the server is told to bind is taken (by another server, or this one running twice)."""

    def __init__(self, setting: str, host: str, port: int) -> None:
        super().__init__(
            f"{setting} {port}: the address {host}:{port} is in use; stop what holds it or pick another port"
        )


class Settings(BaseSettings):
    """Everything the server can be told; see each field's description."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    models_root: Path = Field(Path("models"), description="folder whose subfolders with a manifest.json are served")
    default_model: str = Field("", description="model for requests that name none; empty: the first by name")
    host: str = Field("0.0.0.0", description="address the gRPC, HTTP and metrics servers bind")
    grpc_port: Port = 50051
    metrics_port: Port = 9400
    metrics_read_timeout_s: float = Field(5.0, gt=0, description="a /metrics connection idle this long is closed")
    metrics_max_connections: Positive = Field(16, description="/metrics connections open at once; more are closed")
    http_port: Port | None = Field(8080, description="HTTP/JSON API and web page port; 0 picks a free one; empty: off")
    providers: StrList = Field(["CPUExecutionProvider"], description="onnxruntime execution providers, in order")
    intra_op_threads: int = Field(0, ge=0, description="onnxruntime threads, one pool for all models; 0 = automatic")
    decoder_interface: Literal["auto", "inplace", "concat"] = Field(
        "auto",
        description="auto: where a model has the in-place graph, it for beam search (the continuous scheduler's"
        " cohorts of one beam size merge into one buffer) and the concatenating one for greedy; inplace or concat:"
        " that graph for every search",
    )
    max_batch_size: Positive = Field(32, description="sentences in one model call")
    max_batch_tokens: Positive = Field(4096, description="padded source tokens in one model call")
    max_queue_delay_ms: float = Field(5.0, ge=0, description="longest wait for a fuller batch, under load")
    max_queue_size: Positive = Field(
        4096, description="sentences waiting per model before refusing work; also the most sentences of one request"
    )
    scheduler: Literal["continuous", "batch"] = Field(
        "continuous", description="continuous: sentences join and leave at every decoder step; batch: per request"
    )
    workers: int = Field(0, ge=0, description="decoder threads per model (continuous); 0 = cores / intra_op_threads")
    max_rows: Positive = Field(256, description="decoder rows (sentences x beams) in flight per model (continuous)")
    max_request_share: float = Field(
        0.5, gt=0, le=1, description="share of max_rows one request may hold at a time (continuous)"
    )
    max_request_work: Positive = Field(
        16_000_000, description="source tokens x beams x maximum length a request may need (continuous)"
    )
    max_texts_per_request: Positive = 64
    max_request_chars: Positive = Field(100_000, description="characters of all the texts of one request")
    max_text_tokens: int = Field(
        256, ge=8, description="source tokens of one sentence, eos included; longer ones are cut; a model may take less"
    )
    no_repeat_ngram_size: int = Field(
        3, ge=0, le=16, description="default n-gram size of the repeat guard (0: off); a request may set its own"
    )
    max_beam_size: Positive = 8
    max_n_best: Positive = 8
    max_length_limit: Positive = Field(512, description="largest max_length a request may ask for")
    max_id_bytes: Positive = Field(256, description="largest id (UTF-8 bytes) a request may carry")
    max_stream_inflight: Positive = Field(
        64, description="requests of one TranslateStream read and not yet answered; reading waits beyond"
    )
    max_connection_streams: Positive = Field(
        100, description="calls open at once on one client connection (HTTP/2 streams); more wait at the client"
    )
    language_mismatch_confidence: float = Field(
        0.8, gt=0, le=1, description="identifier confidence above which a text in another language gets a warning"
    )
    grace_period_s: float = Field(10.0, ge=0, description="time to finish accepted work on shutdown")
    auth_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        [], description="accepted bearer tokens; empty = no authentication"
    )
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    log_json: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="largest gRPC message, either way")

    @field_validator("providers", "auth_tokens", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """Lists come from the environment as JSON (`["a", "b"]`) or comma-separated (`a,b`)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("http_port", mode="before")
    @classmethod
    def _empty_is_off(cls, value: Any) -> Any:
        """`MT_HTTP_PORT=` (empty) turns the HTTP server off."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"at least one provider is needed; known: {', '.join(PROVIDERS)}")
        for name in value:
            if name not in PROVIDERS:
                raise ValueError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be given together")
        for path in (self.tls_cert_file, self.tls_key_file):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {path} does not exist")
        if self.no_repeat_ngram_size == 1:
            raise ValueError("no_repeat_ngram_size is 1: it must be 0 (no guard) or between 2 and 16")
        if self.max_n_best > self.max_beam_size:
            raise ValueError(f"max_n_best ({self.max_n_best}) exceeds max_beam_size ({self.max_beam_size})")
        if self.max_text_tokens > self.max_batch_tokens:
            raise ValueError(
                f"max_text_tokens ({self.max_text_tokens}) exceeds max_batch_tokens ({self.max_batch_tokens})"
                ": a long text would never fit a batch"
            )
        if self.max_beam_size > self.max_rows:
            raise ValueError(f"max_beam_size ({self.max_beam_size}) exceeds max_rows ({self.max_rows})")
        if self.max_texts_per_request > self.max_queue_size:
            raise ValueError(
                f"max_texts_per_request ({self.max_texts_per_request}) exceeds max_queue_size"
                f" ({self.max_queue_size}): a full request would always be refused"
            )
        return self

    @property
    def worker_threads(self) -> int:
        """Decoder threads per model: `workers`, else one per `intra_op_threads` of the cores this process may use
        (one if that is automatic). A CPU quota (a container's limit) is not seen: set `workers` there."""
        if self.workers:
            return self.workers
        return max(1, len(os.sched_getaffinity(0)) // self.intra_op_threads) if self.intra_op_threads else 1

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Priority: arguments, then `MT_*` variables, then the YAML file of `MT_CONFIG_FILE`."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_VAR)
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Reads the settings; raises ConfigError naming every bad setting and its variable."""
    config_file = os.environ.get(CONFIG_FILE_VAR)
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"{CONFIG_FILE_VAR}={config_file}: no such file")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            where = f"{field} ({ENV_PREFIX}{field.upper()})" if field else "settings"
            lines.append(f"{where}: {error['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
