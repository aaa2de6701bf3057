"""project.yml assets: copied from the local mirror, checksum-verified, clear errors otherwise."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from medtext.assets import AssetError, fetch, main, read_assets

ROOT = Path(__file__).resolve().parents[1]


def _project(tmp: Path, checksum: str, url: str | None = None) -> Path:
    yml = tmp / "project.yml"
    line = f"    url: {url}\n" if url else ""
    yml.write_text(f"assets:\n  - dest: assets/a.tsv\n{line}    checksum: \"{checksum}\"\n")
    return yml


def test_copy_from_mirror_and_verify(tmp_path: Path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "a.tsv").write_text("x\ty\n")
    good = hashlib.md5(b"x\ty\n").hexdigest()
    [asset] = read_assets(_project(tmp_path, good))
    assert fetch(asset, mirror) == "copied" and asset.dest.read_text() == "x\ty\n"
    assert fetch(asset, mirror) == "present"
    asset.dest.unlink()
    [bad] = read_assets(_project(tmp_path, "0" * 32))
    with pytest.raises(AssetError, match="checksum"):
        fetch(bad, mirror)
    assert not bad.dest.exists()
    assert fetch(bad, mirror, verify=False) == "copied"


def test_missing_without_url(tmp_path: Path):
    [asset] = read_assets(_project(tmp_path, "0" * 32))
    with pytest.raises(AssetError, match="no public url"):
        fetch(asset, tmp_path / "nowhere")
    assert main(["--project", str(tmp_path / "project.yml"), "--mirror", str(tmp_path)]) == 1


def test_project_assets_match_shared_mirror():
    """Every asset the project names has a checksum matching the copy in ../shared/assets."""
    mirror = ROOT.parent / "shared" / "assets"
    if not mirror.is_dir():
        pytest.skip("../shared/assets is not beside this checkout")
    from medtext.assets import md5sum

    assets = read_assets(ROOT / "project.yml")
    assert len(assets) >= 6
    for a in assets:
        assert a.checksum and md5sum(mirror / a.name) == a.checksum, a.name
