"""scripts/setup.sh on machines it cannot serve: it says why, before changing anything."""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def setup_check(tmp_path, version):
    env = {"PATH": "/usr/bin:/bin"}
    if version is not None:
        (tmp_path / "debian_version").write_text(version + "\n")
    env["RC_DEBIAN_VERSION_FILE"] = str(tmp_path / "debian_version")
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "setup.sh"), "--check"], env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize("version", ["12.11", "13.1", "trixie/sid"])
def test_debian_12_and_13_are_supported(tmp_path, version):
    r = setup_check(tmp_path, version)
    assert r.returncode == 0 and f"Debian {version}: supported" in r.stderr, r.stdout + r.stderr


@pytest.mark.parametrize(
    "version, message",
    [
        ("11.9", "this setup needs Debian 12 or 13; this machine runs Debian 11.9"),
        ("bullseye/sid", "this setup needs Debian 12 or 13; this machine runs Debian bullseye/sid"),
        (None, "this setup needs Debian 12 or 13; this machine has no /etc/debian_version (not Debian)"),
    ],
)
def test_other_releases_are_refused_by_name(tmp_path, version, message):
    r = setup_check(tmp_path, version)
    assert r.returncode == 1 and r.stderr.strip() == f"error: {message}", r.stdout + r.stderr


def test_packages_missing_from_the_apt_sources_are_named_before_any_install():
    r = subprocess.run(
        ["bash", "-c", 'source scripts/lib.sh && require_apt_packages no-such-package-xyz bash && echo "installed"'],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "installed" not in r.stdout
    assert "has no package no-such-package-xyz in its apt sources" in r.stderr, r.stderr
    assert " bash" not in r.stderr.split("package", 1)[1].split("in its")[0]
