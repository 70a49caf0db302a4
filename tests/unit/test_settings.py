import argparse

import pytest
from pydantic import ValidationError

from askwise.server.settings import Settings, add_arguments, from_arguments


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_arguments(parser.parse_args(argv))


def test_defaults_serve_the_embedded_model_on_loopback():
    settings = parse([])
    assert settings.backend == "embedded" and settings.host == "127.0.0.1"


def test_flags_win_over_environment(monkeypatch):
    monkeypatch.setenv("ASKWISE_PORT", "9001")
    monkeypatch.setenv("ASKWISE_BACKEND_URL", "http://env:1/v1")
    settings = parse(["--port", "9002", "--backend", "openai", "--structured-outputs", "off"])
    assert settings.port == 9002 and settings.backend_url == "http://env:1/v1"
    assert settings.structured_outputs == "off"


def test_bad_values_are_refused():
    with pytest.raises(ValidationError):
        Settings(port=0)
    with pytest.raises(SystemExit):
        parse(["--backend", "tgi"])


def test_embedded_only_settings_are_refused_with_a_remote_backend(tmp_path):
    from askwise.server.app import make_engine

    with pytest.raises(ValueError, match="embedded engine"):
        make_engine(Settings(backend="openai", backend_url="http://127.0.0.1:1/v1", adapter=tmp_path))


def test_the_embedded_engine_serves_the_shipped_policy_unless_told_otherwise(tmp_path):
    from askwise.policy.checkpoints import default_adapter
    from askwise.server.app import policy_adapter

    shipped = default_adapter()
    assert shipped is not None and (shipped / "adapter_model.safetensors").is_file()
    assert policy_adapter(parse([])) == shipped
    assert policy_adapter(parse(["--base-only"])) is None
    assert policy_adapter(parse(["--base-model", str(tmp_path)])) is None  # trained on another base
    assert policy_adapter(parse(["--adapter", str(tmp_path)])) == tmp_path


def test_keys_come_from_the_environment_and_never_show(monkeypatch):
    keys = ("sk-askwise-test-7Hq2", "sk-askwise-test-Zp9v")
    monkeypatch.setenv("ASKWISE_API_keys", " , ".join(keys))
    settings = Settings()
    assert [k.get_secret_value() for k in settings.api_keys] == list(keys)
    assert not any(key in repr(settings) or key in str(settings.model_dump()) for key in keys)

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert "--api-keys" not in parser.format_help()
