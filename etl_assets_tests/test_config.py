"""The one configuration: read from the environment once, overridable, immutable, carried whole."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from etl_assets.defs.resources import PostgresResource, resources_from_config
from etl_assets.etl.config import ETLConfig, PipelineOptions, load_config, settings_table, variable_name
from etl_assets.etl.errors import InvalidSettingError

from .helpers import run_cli

README = Path(__file__).resolve().parents[1] / "README.md"


def _non_default(name: str, info) -> str:
    """An environment value for a field that differs from its default."""
    annotation = str(info.annotation)
    if "bool" in annotation:
        return "False"
    if "float" in annotation:
        return "7.5"
    if "int" in annotation:
        return "7"
    return f"/tmp/value-of-{name}" if name in ("home", "inbox", "artifacts") else f"value_{name}"


def test_every_field_is_read_from_its_variable_and_reaches_the_dagster_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = ETLConfig.model_fields
    for name, info in fields.items():
        if name not in ("database_url",):
            monkeypatch.setenv(variable_name(name), _non_default(name, info))
    monkeypatch.setenv("ETL_DATABASE_URL", "postgresql://u@example.invalid/db")
    config = load_config()
    for name, info in fields.items():
        value = getattr(config, name)
        expected = _non_default(name, info) if name != "database_url" else "postgresql://u@example.invalid/db"
        assert str(value).rstrip("0").rstrip(".") == expected.rstrip("0").rstrip("."), name
    resources = resources_from_config(config)
    carried = resources["pipeline_settings"].config(PostgresResource(database_url=config.database_url, schema_name=config.schema_name))
    assert carried == config  # every run-settable field travels to the run, none by hand
    # the rest are the warehouse's and the instance's (its run queue), not a run's
    assert set(PipelineOptions.model_fields) == set(fields) - {"database_url", "schema_name", "concurrent_runs"}


def test_keywords_override_the_environment_and_the_config_is_frozen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ETL_WORKERS", "3")
    monkeypatch.setenv("ETL_SCHEMA", "from_env")
    monkeypatch.setenv("ETL_HOME", str(tmp_path / "h"))
    config = load_config(workers=1, schema_name="given", batch_size=None)
    assert (config.workers, config.schema_name, config.batch_size) == (1, "given", 2000)
    assert config.artifacts_dir == tmp_path / "h" / "artifacts" and config.inbox_dir == tmp_path / "h" / "inbox"
    assert config.handles_url == str(tmp_path / "h" / "artifacts" / "handles")
    with pytest.raises(pydantic.ValidationError):
        config.workers = 2  # type: ignore[misc]
    assert "database_url" not in repr(load_config(database_url="postgresql://u:Pw-secret@h/db"))


@pytest.mark.parametrize(
    "variable, value, reason",
    [("ETL_WORKERS", "many", "valid integer"), ("ETL_BATCH_SIZE", "0", "greater than 0"),
     ("ETL_LOCK_TIMEOUT_SECONDS", "-1", "greater than or equal to 0")],
)
def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidSettingError, match=f"^{variable}: .*{reason}"):
        load_config()


def test_the_command_exits_2_naming_a_bad_variable_or_option(tmp_path: Path) -> None:
    done = run_cli("load", "missing.tar", home=tmp_path / "home", env={"ETL_WORKERS": "many"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["skype-etl: ETL_WORKERS: input should be a valid integer, unable to parse string as an integer"]
    done = run_cli("load", "missing.tar", "--workers", "0", home=tmp_path / "home")
    assert done.returncode == 2 and done.stderr.startswith("skype-etl: --workers: ")


def test_the_readme_lists_every_setting_as_the_configuration_defines_it(tmp_path: Path) -> None:
    table = settings_table()
    assert table in README.read_text()
    assert all(f"`{variable_name(name)}`" in table for name in ETLConfig.model_fields)
    printed = run_cli("settings", home=tmp_path / "home")
    assert printed.returncode == 0 and printed.stdout == table
