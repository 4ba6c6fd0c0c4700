"""The model-swap commands as an operator runs them: ``snapshop ingest --new-collection``,
``snapshop status``, ``snapshop collections list|swap|drop``; on a data dir of its own (real
bundles, real ONNX Runtime) and handed to a server that holds the data dir.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.test_live_sync import _env
from tests.fake_serve import fake_serve_cmd, write_fake_bundle
from tests.fakes import NarrowFakeEncoder
from tests.helpers import copy_data_dir, running_server, snapshop_cmd

KEY = "collections-cli-admin-key-0123456789"


def _run(cmd: list[str], *args: str, key: bool = False) -> subprocess.CompletedProcess[str]:
    env = _env(SNAPSHOP_ADMIN_KEY=KEY) if key else _env()
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )


def _renamed_bundle(bundle: Path, root: Path, model_id: str) -> Path:
    """``bundle`` under another model id: its files linked, its manifest rewritten."""
    root.mkdir(parents=True)
    for item in bundle.iterdir():
        if item.name != "manifest.json":
            (root / item.name).symlink_to(item)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["model_id"] = model_id
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_a_new_model_is_built_swapped_in_and_the_old_one_dropped(
    tmp_path: Path, ingested_dir: Path, tiny_bundle: Path, mini_catalog: Path
) -> None:
    data = copy_data_dir(ingested_dir, tmp_path / "data")
    new_model = "snapshop-tiny:retrained"
    bundle = _renamed_bundle(tiny_bundle, tmp_path / "retrained", new_model)
    old_cmd, new_cmd = snapshop_cmd(data, tiny_bundle), snapshop_cmd(data, bundle)

    same = _run(old_cmd, "ingest", str(mini_catalog), "--new-collection")
    assert same.returncode == 2 and "already holds model" in same.stderr

    built = _run(new_cmd, "ingest", str(mini_catalog), "--new-collection")
    assert built.returncode == 0, built.stderr
    assert "ingested 50 products" in built.stdout
    name = next(w for w in built.stderr.split() if w.startswith("snapshop-tiny-retrained-"))
    assert f"`snapshop collections swap {name}`" in built.stderr

    status = _run(old_cmd, "status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    live = next(line for line in lines if line.strip().startswith("* default"))
    other = next(line for line in lines if f"  {name}  " in line)
    assert "collection default" in status.stdout
    assert f"model {new_model}" in other and not other.strip().startswith("*")
    assert "model snapshop-tiny" in live

    swapped = _run(old_cmd, "collections", "swap", name)
    assert swapped.returncode == 0, swapped.stderr
    assert f"live: {name} (model {new_model})" in swapped.stdout
    assert "snapshop collections drop default" in swapped.stderr

    # SNAPSHOP_MODEL still names the old bundle: the live collection's model answers.
    found = _run(old_cmd, "search", "--text", "shirt", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["model"] == new_model

    refused = _run(old_cmd, "collections", "drop", name)
    assert refused.returncode == 2 and "live collection" in refused.stderr
    assert _run(old_cmd, "collections", "drop", "default").stdout.strip() == "dropped default"
    listed = _run(old_cmd, "collections", "list").stdout.splitlines()
    assert len(listed) == 1 and listed[0].startswith(f"* {name}")


def test_the_commands_are_handed_to_a_server_holding_the_data_dir(
    tmp_path: Path, mini_catalog: Path
) -> None:
    data = tmp_path / "data"
    narrow = write_fake_bundle(tmp_path / "narrow", "narrow")
    cli = snapshop_cmd(data, narrow)  # the CLI loads no model: the server does
    with running_server(fake_serve_cmd(data), env=_env(SNAPSHOP_ADMIN_KEY=KEY)) as url:
        first = httpx.post(
            f"{url}/v1/admin/sync", json={"catalog": str(mini_catalog)}, headers={"X-API-Key": KEY}
        )
        assert first.status_code == 202, first.text
        # one sync at a time: the build below waits until this one is done
        job = first.json()["job"]
        while httpx.get(f"{url}/v1/admin/sync/{job}", headers={"X-API-Key": KEY}).json()[
            "state"
        ] in ("queued", "running"):
            time.sleep(0.05)
        built = _run(cli, "ingest", str(mini_catalog), "--new-collection", key=True)
        assert built.returncode == 0, built.stderr
        name = next(w for w in built.stderr.split() if w.startswith("fake-thumbnail-hash-6px"))

        listed = _run(cli, "collections", "list", key=True).stdout.splitlines()
        assert [line.split()[:2] for line in listed] == [["*", "default"], [name, "model"]]
        swapped = _run(cli, "collections", "swap", name, key=True)
        assert swapped.returncode == 0, swapped.stderr
        assert f"live: {name} (model {NarrowFakeEncoder.model_id}); {url} serves it" in (
            swapped.stdout
        )
        assert httpx.get(f"{url}/healthz").json()["model"] == NarrowFakeEncoder.model_id
        assert _run(cli, "collections", "drop", "default", key=True).returncode == 0
        without_key = _run(cli, "collections", "list")
        assert without_key.returncode == 2 and "SNAPSHOP_ADMIN_KEY" in without_key.stderr
