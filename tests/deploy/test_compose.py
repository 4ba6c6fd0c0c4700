"""docker-compose.yml without a container engine: valid against the Compose Specification's
JSON schema, and wired as the README says (the services, profiles, healthchecks, volumes, the
Qdrant cluster, the GPU reservation), with build targets the Dockerfile has.

The schema is the one check-jsonschema ships (``builtin_schemas/vendor/compose-spec.json``,
from github.com/compose-spec/compose-spec ``schema/compose-spec.json``, Apache-2.0), pinned
with that package in pyproject.toml.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.dockerfile import stages

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
CLUSTER_NODES = ("qdrant-node-1", "qdrant-node-2", "qdrant-node-3")
HEALTHY = {"condition": "service_healthy"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _errors(validator: jsonschema.protocols.Validator, doc: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def test_the_file_follows_the_compose_specification(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    assert _errors(validator, compose) == []


def test_the_schema_check_catches_mistakes(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    """The validation can fail: typical slips are each reported."""
    slips = {
        "a misspelt key": ("api", "helthcheck", {"test": ["CMD", "true"]}),
        "ports as a bare number": ("api", "ports", 8000),
        "a bad restart policy type": ("qdrant", "restart", ["always"]),
        "a device reservation without a list": ("api-gpu", "deploy", {"resources": []}),
    }
    for name, (service, key, value) in slips.items():
        broken = copy.deepcopy(compose)
        broken["services"][service][key] = value
        assert _errors(validator, broken), name


def test_check_jsonschema_accepts_it_too() -> None:
    """The CLI (its own YAML 1.2 loader, as Compose's): what a pre-commit hook would run."""
    check = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    done = subprocess.run(
        [*check, str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_default_stack_qdrant_api_and_the_ingest_job(compose: dict[str, Any]) -> None:
    services = compose["services"]
    default = {name for name, s in services.items() if "profiles" not in s}
    assert default == {"qdrant", "api"}

    qdrant = services["qdrant"]
    assert re.fullmatch(r"qdrant/qdrant:\$\{QDRANT_VERSION:-v\d+\.\d+\.\d+\}", qdrant["image"])
    assert "/readyz" in " ".join(qdrant["healthcheck"]["test"])
    assert any(v.endswith(":/qdrant/storage") for v in qdrant["volumes"])
    assert "ports" not in qdrant  # reachable on the compose network only

    api = services["api"]
    env = api["environment"]
    assert env["SNAPSHOP_QDRANT_URL"] == "http://qdrant:6333"  # the server backend
    assert env["SNAPSHOP_MODEL"] == "/models/default" and env["SNAPSHOP_LOG_FORMAT"] == "json"
    assert env["SNAPSHOP_ENV"] == "production"
    assert env["SNAPSHOP_ADMIN_KEY"].startswith("${SNAPSHOP_ADMIN_KEY:?")  # no default key
    assert api["depends_on"] == {"qdrant": HEALTHY}
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert all(p.startswith("127.0.0.1:") for p in api["ports"])  # loopback unless proxied
    mounts = {v.split(":")[-2 if v.endswith(":ro") else -1]: v for v in api["volumes"]}
    assert mounts["/models"].endswith(":ro") and mounts["/catalog"].endswith(":ro")
    assert mounts["/data"].startswith("api-data:")

    ingest = services["ingest"]
    assert ingest["command"] == ["snapshop", "ingest", "/catalog"]
    assert ingest["restart"] == "no" and ingest["profiles"] == ["ingest"]
    assert ingest["environment"]["SNAPSHOP_QDRANT_URL"] == "http://qdrant:6333"
    assert ingest["depends_on"] == {"qdrant": HEALTHY}
    # not the API's data dir: its server.json would send the CLI to an unreachable loopback
    assert not set(ingest["volumes"]) & {v for v in api["volumes"] if v.startswith("api-data")}


def test_cluster_profile_three_distributed_nodes_and_replicated_collections(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    cluster = {name for name, s in services.items() if "cluster" in s.get("profiles", [])}
    assert cluster == {*CLUSTER_NODES, "api-cluster", "ingest-cluster"}
    storages = set()
    for i, name in enumerate(CLUSTER_NODES, start=1):
        node = services[name]
        assert node["environment"]["QDRANT__CLUSTER__ENABLED"] == "true", name
        command = node["command"]
        assert command[command.index("--uri") + 1] == f"http://{name}:6335", name
        if i == 1:
            assert "--bootstrap" not in command  # it starts the cluster
        else:
            assert command[command.index("--bootstrap") + 1] == "http://qdrant-node-1:6335"
            assert node["depends_on"] == {"qdrant-node-1": HEALTHY}
        assert "/readyz" in " ".join(node["healthcheck"]["test"]), name
        storages |= {v for v in node["volumes"] if v.endswith(":/qdrant/storage")}
    assert len(storages) == 3  # a volume of its own per node

    for name in ("api-cluster", "ingest-cluster"):
        env = services[name]["environment"]
        assert env["SNAPSHOP_QDRANT_URL"] == "http://qdrant-node-1:6333", name
        assert env["SNAPSHOP_QDRANT_REPLICATION_FACTOR"] == "2", name
        assert int(env["SNAPSHOP_QDRANT_SHARD_NUMBER"]) >= 3, name
        assert services[name]["depends_on"] == dict.fromkeys(CLUSTER_NODES, HEALTHY), name


def test_gpu_profile_reserves_a_gpu_for_the_gpu_image(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["api-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["target"] == "gpu" and gpu["image"] == "snapshop:gpu"
    assert gpu["environment"]["SNAPSHOP_DEVICE"] == "cuda"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_build_targets_and_named_volumes_exist(compose: dict[str, Any]) -> None:
    targets = {s["build"]["target"] for s in compose["services"].values() if "build" in s}
    assert targets == {"cpu", "gpu"}
    assert targets <= set(stages((ROOT / "Dockerfile").read_text()))
    declared = set(compose["volumes"])
    used = {
        v.split(":")[0]
        for s in compose["services"].values()
        for v in s.get("volumes", [])
        if not v.startswith(("/", ".", "$"))
    }
    assert used == declared  # every named volume declared, none left over
    for name, service in compose["services"].items():
        if service.get("restart") != "no":  # long-running: must say when it is healthy
            assert not service["healthcheck"].get("disable"), name
