"""Settings from the environment and a YAML file, and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MT_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load_settings()
    assert (s.models_root, s.host, s.grpc_port, s.metrics_port) == (Path("models"), "0.0.0.0", 50051, 9400)
    assert s.providers == ["CPUExecutionProvider"] and s.intra_op_threads == 0
    assert (s.max_batch_size, s.max_batch_tokens, s.max_queue_delay_ms) == (32, 4096, 5.0)
    assert s.max_queue_size == 4096
    assert (s.max_texts_per_request, s.max_request_chars, s.max_text_tokens) == (64, 100_000, 256)
    assert s.no_repeat_ngram_size == 3
    assert (s.max_beam_size, s.max_n_best, s.max_length_limit) == (8, 8, 512)
    assert s.grace_period_s == 10 and s.auth_tokens == [] and not s.tls
    assert (s.log_json, s.log_level, s.max_message_bytes) == (False, "INFO", 4 * 1024 * 1024)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("grpc_port: 6000\nmax_batch_size: 16\nproviders: [CUDAExecutionProvider]\nlog_level: debug\n")
    monkeypatch.setenv("MT_CONFIG_FILE", str(config))
    monkeypatch.setenv("MT_GRPC_PORT", "7000")
    monkeypatch.setenv("MT_AUTH_TOKENS", "a,b")
    s = load_settings()
    assert (s.grpc_port, s.max_batch_size, s.log_level) == (7000, 16, "DEBUG")
    assert s.providers == ["CUDAExecutionProvider"]
    assert [t.get_secret_value() for t in s.auth_tokens] == ["a", "b"]
    monkeypatch.setenv("MT_PROVIDERS", '["CUDAExecutionProvider", "CPUExecutionProvider"]')
    assert load_settings().providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MT_GRPC_PORT", "70000", "grpc_port (MT_GRPC_PORT): Input should be less than or equal to 65535"),
        ("MT_METRICS_PORT", "-1", "metrics_port (MT_METRICS_PORT)"),
        ("MT_PROVIDERS", "TPUExecutionProvider", "unknown provider 'TPUExecutionProvider'; known: CPU"),
        ("MT_MAX_BATCH_SIZE", "0", "max_batch_size (MT_MAX_BATCH_SIZE)"),
        ("MT_LOG_LEVEL", "LOUD", "log_level (MT_LOG_LEVEL)"),
        ("MT_TLS_CERT_FILE", __file__, "tls_cert_file and tls_key_file must be given together"),
        ("MT_MAX_N_BEST", "9", "max_n_best (9) exceeds max_beam_size (8)"),
        ("MT_MAX_TEXT_TOKENS", "5000", "max_text_tokens (5000) exceeds max_batch_tokens (4096)"),
    ],
)
def test_bad_settings_are_named(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match="invalid settings") as error:
        load_settings()
    assert message in str(error.value)


def test_unknown_keys_and_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("grpc_prot: 1\n")
    monkeypatch.setenv("MT_CONFIG_FILE", str(config))
    with pytest.raises(ConfigError, match="grpc_prot"):
        load_settings()
    monkeypatch.setenv("MT_CONFIG_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()
