"""The container image and the deployment guide, checked without a container.

The Dockerfile's install command runs on a copy of exactly what the image copies, and its
entry point then serves the code location from that install (not from this checkout), so a
file missing from the image or a wrong module name fails here. The guide's ``dagster.yaml``
is validated by Dagster itself, and its Helm values start what the image starts.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from etl_assets_tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (keyword, argument), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _one(keyword: str) -> list[str]:
    return [argument for k, argument in _instructions() if k == keyword]


def _build_context(into: Path) -> None:
    """What the image's ``COPY`` instructions put in its work directory."""
    ignored = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for argument in _one("COPY"):
        *sources, target = shlex.split(argument)
        for source in sources:
            path = ROOT / source
            destination = into / target / path.name if target.endswith("/") else into / target
            if path.is_dir():
                shutil.copytree(path, destination, ignore=ignored)
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)


def _guide_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (ROOT / "docs" / "deployment.md").read_text(), re.S)


def test_the_image_installs_and_serves_the_code_location_outside_a_container(tmp_path: Path) -> None:
    context, target = tmp_path / "image", tmp_path / "site"
    _build_context(context)
    installs = [shlex.split(a) for a in _one("RUN") if "pip" in a and "install" in a]
    assert len(installs) == 1, installs
    install = installs[0]
    assert install[:4] == ["python", "-m", "pip", "install"], install
    # the image's command line (its build requirements fetched as in the image); only the
    # destination differs, and the dependencies are this venv's
    built = subprocess.run(
        [sys.executable, *install[1:], "--no-deps", "--target", str(target)],
        cwd=context, capture_output=True, text=True,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    assert (target / "etl_assets" / "definitions.py").is_file()

    env = {**os.environ, "PYTHONPATH": str(target)}
    for assignment in shlex.split(_one("ENV")[0]):
        name, _, value = assignment.partition("=")
        env[name] = str(tmp_path / value.strip("/")) if value.startswith("/") else value
    (tmp_path / "run").mkdir()
    where = subprocess.run(
        [sys.executable, "-c", "import etl_assets; print(etl_assets.__file__)"],
        cwd=tmp_path / "run", env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(target), where  # the installed copy, not this checkout

    command = json.loads(_one("CMD")[0])
    assert command[0] == "dagster" and "--port" in command
    port = free_port()
    command[command.index("--port") + 1] = str(port)
    assert _one("EXPOSE") == ["4000"]
    server = subprocess.Popen(
        [str(BIN / "dagster"), *command[1:]], cwd=tmp_path / "run", env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.communicate()[0][-3000:]
            check = subprocess.run(
                [str(BIN / "dagster"), "api", "grpc-health-check", "--port", str(port)],
                capture_output=True, env=env,
            )
            if check.returncode == 0:
                break
            assert time.monotonic() < deadline, "the code location did not start serving in 90 s"
            time.sleep(1)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "etl_assets.definitions" in output


def test_the_guides_dagster_yaml_is_valid_for_dagster(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    blocks = [b for b in _guide_blocks("yaml") if b.startswith("# dagster.yaml")]
    assert len(blocks) == 1
    (tmp_path / "dagster.yaml").write_text(blocks[0])
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}


def test_the_guides_helm_values_start_what_the_image_starts() -> None:
    values = [yaml.safe_load(b) for b in _guide_blocks("yaml") if "dagster-user-deployments" in b]
    assert len(values) == 1
    deployment = values[0]["dagster-user-deployments"]["deployments"][0]
    command = json.loads(_one("CMD")[0])
    assert command[:3] == ["dagster", "api", "grpc"]
    module = command[command.index("--module-name") : command.index("--module-name") + 2]
    assert deployment["dagsterApiGrpcArgs"] == module
    assert str(deployment["port"]) == _one("EXPOSE")[0]


def test_the_publishing_step_is_in_the_pool_the_guide_limits() -> None:
    from etl_assets.definitions import defs

    job = defs.resolve_implicit_global_asset_job_def()
    pools = {node.name: node.definition.pool for node in job.graph.nodes}
    assert pools["skype_tables"] == "skype_warehouse"
    assert {name for name, pool in pools.items() if pool} == {"skype_tables"}
    assert "skype_warehouse" in (ROOT / "docs" / "deployment.md").read_text()
