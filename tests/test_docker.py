"""Static checks of docker/: no Docker engine runs here, so validate what can be validated."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parent.parent / "docker"


def compose():
    return yaml.safe_load((DOCKER / "compose.yml").read_text())


def test_compose_wires_superlink_nodes_and_volumes():
    spec = compose()
    services = spec["services"]
    assert services["superlink"]["image"] == "flwr/superlink:1.42.0"
    superlink_args = " ".join(services["superlink"]["command"])
    for flag in (
        "--ssl-certfile",
        "--ssl-keyfile",
        "--ssl-ca-certfile",
        "--enable-supernode-auth",
        "--database",
    ):
        assert flag in superlink_args
    assert "--insecure" not in superlink_args
    nodes = [name for name in services if name.startswith("supernode")]
    assert len(nodes) >= 2
    declared = set(spec["volumes"])
    for name in nodes:
        node = services[name]
        args = " ".join(node["command"])
        assert (
            "--root-certificates=/certs/ca.crt" in args and "--auth-supernode-private-key" in args
        )
        assert "data-dir=" in args and "state-dir=" in args
        named = {v.split(":")[0] for v in node["volumes"] if not v.startswith(".")}
        assert named <= declared, f"{name} uses undeclared volumes {named - declared}"
        assert (DOCKER.parent / node["build"]["dockerfile"]).exists()
    gpu = services["supernode-gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["build"]["args"]["TORCH_INDEX"] == "https://pypi.org/simple"
    partitions = [
        " ".join(services[n]["command"]).split("partition-id=")[1].split()[0] for n in nodes
    ]
    assert len(set(partitions)) == len(partitions), "each SuperNode needs its own partition-id"


def host_mounts(service: dict) -> dict[str, str]:
    """Host path (relative to docker/) → container path of each bind mount of a service."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[str(Path(source))] = target
    return mounts


# What each container may read of the secrets folders: the CA certificate for everyone who
# talks to the SuperLink, its own certificate and key for the SuperLink, node K's private key
# for node K. ca.key never leaves the machine that made it.
CERTS_ALLOWED = {"superlink": {"ca.crt", "server.pem", "server.key"}}


def test_each_container_mounts_only_the_secrets_it_needs():
    services = compose()["services"]
    for name, service in services.items():
        mounts = host_mounts(service)
        for source in mounts:
            parts = Path(source).parts
            assert parts[0] not in ("certs", "keys") or len(parts) == 2, (
                f"{name} mounts the whole folder {source}: mount single files"
            )
        certs = {Path(s).name for s in mounts if Path(s).parts[0] == "certs"}
        assert certs <= CERTS_ALLOWED.get(name, {"ca.crt"}), f"{name} gets {sorted(certs)}"
        assert "ca.key" not in certs
        keys = {Path(s).name for s in mounts if Path(s).parts[0] == "keys"}
        args = " ".join(service.get("command", []))
        if "--auth-supernode-private-key" in args:
            own = args.split("--auth-supernode-private-key=/keys/")[1].split()[0]
            assert keys == {own}, f"{name} should get only its own key, gets {sorted(keys)}"
            assert mounts[f"keys/{own}"] == f"/keys/{own}"
        else:
            assert not keys, f"{name} gets node keys {sorted(keys)}"
        for flag in (
            "--root-certificates=",
            "--ssl-ca-certfile=",
            "--ssl-certfile=",
            "--ssl-keyfile=",
        ):
            for path in (
                a.split("=", 1)[1] for a in service.get("command", []) if a.startswith(flag)
            ):
                assert path in mounts.values(), f"{name}: {flag}{path} is not mounted"


def test_the_secrets_check_catches_a_folder_mount(monkeypatch):
    spec = compose()
    spec["services"]["supernode-1"]["volumes"].append("./certs:/certs:ro")
    monkeypatch.setattr(sys.modules[__name__], "compose", lambda: spec)
    with pytest.raises(AssertionError, match="whole folder"):
        test_each_container_mounts_only_the_secrets_it_needs()


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint is not installed")
def test_dockerfile_lints_clean():
    done = subprocess.run(
        ["hadolint", str(DOCKER / "fedntc.Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_scripts_are_valid_bash_and_refuse_missing_arguments(tmp_path):
    for script in ("generate-certs.sh", "generate-node-keys.sh"):
        assert subprocess.run(["bash", "-n", str(DOCKER / script)], timeout=30).returncode == 0
        done = subprocess.run(
            ["bash", str(DOCKER / script)], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 2 and "usage" in done.stderr


def test_certificate_covers_requested_hosts(tmp_path):
    subprocess.run(
        ["bash", str(DOCKER / "generate-certs.sh"), str(tmp_path), "superlink", "10.1.2.3"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    text = subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "server.pem"), "-noout", "-text"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "DNS:superlink" in text and "IP Address:10.1.2.3" in text


def test_image_holds_every_package_and_the_base_weights():
    pyproject = tomllib.loads((DOCKER.parent / "pyproject.toml").read_text())
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    dockerfile = (DOCKER / "fedntc.Dockerfile").read_text()
    for folder in [*packages, "conf", "models"]:
        assert f"COPY {folder} ./{folder}" in dockerfile, folder
    assert "FEDNTC_MODELS=/opt/fedntc/models" in dockerfile
