"""Where dataset files come from: explicit folder, $SHARPEN_DATA, user cache, system
locations, then the official mirrors (md5-checked, atomic rename, resumable)."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

from tqdm import tqdm

from sharpen.errors import SharpenError

ENV_VAR = "SHARPEN_DATA"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sharpen"


def md5_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def candidate_dirs(name: str, root: str | os.PathLike[str] | None,
                   system_dirs: Sequence[str] = ()) -> list[Path]:
    """Folders searched, in order, for a dataset's files."""
    if root is not None:
        return [Path(root).expanduser()]
    dirs: list[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        dirs += [Path(env).expanduser() / name, Path(env).expanduser()]
    dirs.append(cache_dir() / name)
    dirs += [Path(d) for d in system_dirs]
    return dirs


def find_files(dirs: Iterable[Path], needed: Sequence[str]) -> Path | None:
    """The first folder holding every one of ``needed``."""
    for d in dirs:
        if all((d / f).is_file() for f in needed):
            return d
    return None


def download(url: str, dest: Path, md5s: Iterable[str] = (), progress: bool = True,
             timeout: float = 30.0) -> Path:
    """Fetch ``url`` into ``dest``: resumes a ``.part`` file, checks md5, renames atomically.

    A cut transfer leaves only ``dest.part`` behind (never a partial file under the final
    name); the next call resumes it with an HTTP Range request or restarts it cleanly.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "sharpen"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # already complete on disk
            resp = None
        else:
            raise SharpenError(f"download of {url} failed: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise SharpenError(f"download of {url} failed: {getattr(exc, 'reason', exc)}") from exc
    if resp is not None:
        with resp:
            resumed = have and resp.status == 206
            mode = "ab" if resumed else "wb"
            total = resp.headers.get("Content-Length")
            total_n = int(total) + (have if resumed else 0) if total else None
            bar = _bar(total_n, have if resumed else 0, dest.name, progress)
            try:
                with open(part, mode) as f:
                    while chunk := resp.read(1 << 16):
                        f.write(chunk)
                        bar.update(len(chunk))
            except (OSError, urllib.error.URLError) as exc:
                raise SharpenError(
                    f"download of {url} was cut off ({exc}); run again to resume"
                ) from exc
            finally:
                bar.close()
            if total_n is not None and part.stat().st_size < total_n:
                raise SharpenError(f"download of {url} was cut off; run again to resume")
    md5s = set(md5s)
    if md5s:
        got = md5_file(part)
        if got not in md5s:
            part.unlink()
            raise SharpenError(
                f"checksum mismatch for {dest.name} from {url}: expected md5 "
                f"{' or '.join(sorted(md5s))}, got {got}; the partial file was removed"
            )
    os.replace(part, dest)
    return dest


def _bar(total: int | None, initial: int, desc: str, enabled: bool):  # noqa: ANN202
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=desc,
                disable=not enabled, leave=False)
