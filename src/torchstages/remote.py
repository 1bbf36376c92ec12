"""Does a DVC remote really hold every file this workspace's outputs and data need?

``dvc push`` and ``dvc status -c`` trust two shortcuts. DVC keeps, outside the project (its site
cache, keyed by the project's path), an index of what each remote holds; and once a folder's
manifest (``<hash>.dir``) is on a remote, it takes every file the manifest lists as there too.
When a remote is emptied or replaced behind DVC's back (a wiped bucket, a recreated folder) and
a project at the same path pushes again, the stale index makes the push skip files, the
manifest goes up, and from then on DVC reports "in sync" while another machine's ``dvc pull``
fails. This module asks the remote about every file object itself, and can upload the missing
ones from the local cache (manifests last, as DVC does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchstages.errors import UserError
from torchstages.wording import listed

__all__ = ["RemoteCheck", "check_remote"]


@dataclass(frozen=True)
class RemoteCheck:
    remote: str
    objects: int  # file objects and folder manifests the workspace's outputs name
    missing: list[str]  # workspace paths whose object the remote lacks
    uploaded: int
    named: bool = False  # asked for by name (-r), not DVC's default remote

    def summary(self) -> str:
        if not self.missing:
            return f"remote {self.remote}: holds all {self.objects} objects"
        shown = listed(self.missing, 3)
        if self.uploaded:
            return (
                f"remote {self.remote}: lacked {len(self.missing)} of {self.objects} objects "
                f"({shown}); uploaded them from the local cache"
            )
        return (
            f"remote {self.remote}: lacks {len(self.missing)} of {self.objects} objects ({shown}) "
            "although dvc may say it is in sync; "
            f"`torchstages remote-check{f' -r {self.remote}' if self.named else ''} --repair` "
            "uploads them"
        )


def check_remote(root: Path, remote: str | None = None, repair: bool = False) -> RemoteCheck:
    """Ask ``remote`` (DVC's default when None) for each object of every cached output and
    ``.dvc``-tracked input of the workspace at ``root``; with ``repair``, upload what it lacks."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(str(root))
        odb = repo.cloud.get_remote_odb(remote, hash_name="md5")
    except DvcException as exc:
        raise UserError(f"remote-check: {exc}") from exc
    name = remote or repo.config["core"].get("remote", "default")
    objects = _workspace_objects(repo)
    present = set(odb.oids_exist(list(objects)))
    missing = {oid: spot for oid, spot in objects.items() if oid not in present}
    uploaded = 0
    if repair and missing:
        # file objects first, folder manifests last: a manifest on the remote vouches for its files
        for oid, (cache, path, _) in sorted(missing.items(), key=lambda item: item[1][2]):
            if not cache.exists(oid):
                raise UserError(f"remote-check: {path} is in neither the remote nor the cache")
            odb.add(cache.oid_to_path(oid), cache.fs, oid)
            uploaded += 1
    return RemoteCheck(
        name,
        len(objects),
        sorted(path for _, path, _ in missing.values()),
        uploaded,
        named=remote is not None,
    )


def _workspace_objects(repo: Any) -> dict[str, tuple[Any, str, bool]]:
    """oid -> (the local cache holding it, a workspace path it stands for, is a manifest)."""
    from dvc_data.hashfile.tree import Tree

    objects: dict[str, tuple[Any, str, bool]] = {}
    for out in repo.index.outs:
        info = out.hash_info
        if not out.use_cache or not info or not info.value:
            continue
        if info.isdir:
            try:
                tree = Tree.load(out.cache, info)
            except FileNotFoundError as exc:
                raise UserError(
                    f"remote-check: {out} is not in the local cache (dvc pull or dvc repro first)"
                ) from exc
            for key, _, file_info in tree:
                objects[file_info.value] = (out.cache, f"{out}/{'/'.join(key)}", False)
        objects[info.value] = (out.cache, str(out), info.isdir)
    return objects
