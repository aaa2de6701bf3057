"""Fetch the spaCy project's assets: copy from ``../shared/assets`` when present, else download.

Every asset in ``project.yml`` names its public source (``url``) and its md5 ``checksum``.
``python -m medtext.assets`` (the project's ``assets`` command) puts each one at its ``dest``:

1. a copy from the local mirror (``MEDTEXT_SHARED_ASSETS``, default ``../shared/assets``), when
   the file is there and its checksum matches;
2. otherwise a download from ``url`` (only then does medtext touch the network), checksum-verified;
3. an asset already at ``dest`` with the right checksum is left alone.

A checksum mismatch is an error (the file differs from the one the project was built against):
pass ``--no-verify`` to accept a newer upstream file knowingly.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_path
from .errors import ConfigError, MedtextError

log = logging.getLogger(__name__)


class AssetError(MedtextError):
    reason = "asset_error"


@dataclass(frozen=True)
class Asset:
    dest: Path
    url: str | None
    checksum: str | None
    description: str = ""

    @property
    def name(self) -> str:
        return self.dest.name


def md5sum(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - integrity check, the checksum weasel/spaCy projects use
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_assets(project_yml: Path) -> list[Asset]:
    import srsly

    try:
        data = srsly.read_yaml(project_yml)
    except Exception as e:  # noqa: BLE001 - yaml errors have many types
        raise ConfigError(f"{project_yml}: not valid YAML ({e})") from e
    root = project_yml.parent
    assets = []
    for i, a in enumerate(data.get("assets") or []):
        if "dest" not in a:
            raise ConfigError(f"{project_yml}: assets[{i}] has no 'dest'")
        checksum = a.get("checksum")
        if checksum is not None and not isinstance(checksum, str):
            raise ConfigError(f"{project_yml}: assets[{i}].checksum must be a quoted md5 string")
        assets.append(Asset(root / a["dest"], a.get("url"), checksum, a.get("description", "")))
    return assets


def default_mirror(project_dir: Path) -> Path:
    return Path(os.environ.get("MEDTEXT_SHARED_ASSETS", project_dir.parent / "shared" / "assets"))


def fetch(asset: Asset, mirror: Path | None, *, verify: bool = True) -> str:
    """Put ``asset`` at its dest; return how ("present", "copied" or "downloaded")."""
    def ok(path: Path) -> bool:
        return path.is_file() and (not verify or not asset.checksum or md5sum(path) == asset.checksum)

    if ok(asset.dest):
        return "present"
    asset.dest.parent.mkdir(parents=True, exist_ok=True)
    local = mirror / asset.name if mirror else None
    if local is not None and local.is_file():
        if not ok(local):
            raise AssetError(f"{local}: checksum {md5sum(local)} differs from project.yml "
                             f"({asset.checksum}); pass --no-verify to use it anyway")
        with atomic_path(asset.dest) as tmp:
            shutil.copyfile(local, tmp)
        return "copied"
    if not asset.url:
        raise AssetError(f"{asset.name}: not in {mirror} and it has no public url to download "
                         f"from; put the file there (see project.yml: {asset.description})")
    log.info("downloading %s from %s", asset.name, asset.url)
    try:
        with atomic_path(asset.dest) as tmp, urllib.request.urlopen(asset.url, timeout=60) as r, \
                open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
            f.flush()
            if verify and asset.checksum and md5sum(Path(tmp)) != asset.checksum:
                raise AssetError(f"{asset.name}: downloaded file from {asset.url} has another "
                                 f"checksum than project.yml; upstream changed. Pass --no-verify "
                                 "to accept it, or place the pinned file in the mirror")
    except OSError as e:
        raise AssetError(f"{asset.name}: download from {asset.url} failed ({e})") from e
    return "downloaded"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m medtext.assets", description=__doc__.split("\n")[0])
    p.add_argument("--project", type=Path, default=Path("project.yml"))
    p.add_argument("--mirror", type=Path, default=None,
                   help="local folder with the asset files (default ../shared/assets)")
    p.add_argument("--no-verify", action="store_true", help="skip checksum verification")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    project = args.project.resolve()
    mirror = args.mirror or default_mirror(project.parent)
    failed = 0
    for asset in read_assets(project):
        try:
            how = fetch(asset, mirror if mirror.is_dir() else None, verify=not args.no_verify)
            log.info("%-48s %s", asset.name, how)
        except MedtextError as e:
            log.error("%s", e)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
