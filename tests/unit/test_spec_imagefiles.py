"""Reading /etc/passwd and /etc/group out of a rootfs: symlinks never lead outside it, big files and
non-regular files are refused (CVE-2024-5154, CVE-2025-4437)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from crio.core.errors import InvalidArgument
from crio.core.spec.imagefiles import read_image_file

INSIDE = "root:x:0:0:root:/root:/bin/sh\n"
SECRET = "secret:x:0:0:host:/:/bin/sh\n"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A rootfs with /etc/passwd, and a host directory beside it holding a "secret" passwd."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text(INSIDE)
    host = tmp_path / "host"
    (host / "etc").mkdir(parents=True)
    (host / "etc" / "passwd").write_text(SECRET)
    return rootfs, host


def relink(path: Path, target: str) -> None:
    """Replace whatever is at ``path`` by a symlink to ``target``."""
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target)


def etc_to_parent(root: Path, host: Path) -> None:
    relink(root / "etc", "../../../../../../host/etc")


def etc_absolute(root: Path, host: Path) -> None:
    relink(root / "etc", str(host / "etc"))


def passwd_to_parent(root: Path, host: Path) -> None:
    relink(root / "etc" / "passwd", "../../host/etc/passwd")


def passwd_absolute(root: Path, host: Path) -> None:
    relink(root / "etc" / "passwd", str(host / "etc" / "passwd"))


def passwd_to_inside(root: Path, host: Path) -> None:
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "passwd").write_text("lib:x:1:1::/:\n")
    relink(root / "etc" / "passwd", "/usr/./lib/../lib/passwd")


def etc_to_inside_relative(root: Path, host: Path) -> None:
    (root / "private" / "etc").mkdir(parents=True)
    (root / "private" / "etc" / "passwd").write_text("priv:x:2:2::/:\n")
    relink(root / "etc", "../private/etc")


def dotdot_chain(root: Path, host: Path) -> None:
    (root / "a").mkdir()
    relink(root / "a" / "up", "../../../..")
    relink(root / "etc" / "passwd", "/a/up/host/etc/passwd")  # resolves to <root>/host/etc/passwd: absent


def nothing(root: Path, host: Path) -> None:
    pass


# (how the image is laid out, expected text)
READS: list[tuple[Callable[[Path, Path], None], str]] = [
    (nothing, INSIDE),
    (etc_to_parent, ""),
    (etc_absolute, ""),
    (passwd_to_parent, ""),
    (passwd_absolute, ""),
    (passwd_to_inside, "lib:x:1:1::/:\n"),
    (etc_to_inside_relative, "priv:x:2:2::/:\n"),
    (dotdot_chain, ""),
]


@pytest.mark.parametrize(("arrange", "expected"), READS, ids=[f.__name__ for f, _ in READS])
def test_reads_stay_inside_the_rootfs(
    layout: tuple[Path, Path], arrange: Callable[[Path, Path], None], expected: str
) -> None:
    rootfs, host = layout
    arrange(rootfs, host)
    text = read_image_file(str(rootfs), "/etc/passwd")
    assert text == expected
    assert "secret" not in text


def test_an_escaping_link_resolves_to_the_rootfs_copy(layout: tuple[Path, Path]) -> None:
    rootfs, host = layout
    (rootfs / "host" / "etc").mkdir(parents=True)
    (rootfs / "host" / "etc" / "passwd").write_text("decoy:x:3:3::/:\n")
    etc_to_parent(rootfs, host)
    assert read_image_file(str(rootfs), "/etc/passwd") == "decoy:x:3:3::/:\n"


def test_absent_files(layout: tuple[Path, Path]) -> None:
    rootfs, _ = layout
    assert read_image_file(str(rootfs), "/etc/group") == ""
    assert read_image_file(str(rootfs), "/etc/passwd/group") == ""  # a file used as a directory
    assert read_image_file(str(rootfs), "/nonexistent/etc/group") == ""
    relink(rootfs / "etc" / "group", "/nowhere")
    assert read_image_file(str(rootfs), "/etc/group") == ""


def loop(root: Path) -> None:
    relink(root / "etc" / "passwd", "passwd2")
    relink(root / "etc" / "passwd2", "/etc/passwd")


def fifo(root: Path) -> None:
    (root / "etc" / "passwd").unlink()
    os.mkfifo(root / "etc" / "passwd")


def directory(root: Path) -> None:
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").mkdir()


def too_big(root: Path) -> None:
    (root / "etc" / "passwd").write_bytes(b"x" * 1025)


# (how the image is laid out, message)
REFUSED: list[tuple[Callable[[Path], None], str]] = [
    (loop, "too many levels of symbolic links"),
    (fifo, "not a regular file"),  # opening a FIFO would block: it is never opened
    (directory, "not a regular file"),
    (too_big, "larger than 1024 bytes"),
]


@pytest.mark.parametrize(("arrange", "message"), REFUSED, ids=[f.__name__ for f, _ in REFUSED])
@pytest.mark.timeout(10)
def test_refused(layout: tuple[Path, Path], arrange: Callable[[Path], None], message: str) -> None:
    rootfs, _ = layout
    arrange(rootfs)
    with pytest.raises(InvalidArgument, match=message):
        read_image_file(str(rootfs), "/etc/passwd", limit=1024)


def test_limit_is_inclusive_and_bad_utf8_is_replaced(layout: tuple[Path, Path]) -> None:
    rootfs, _ = layout
    (rootfs / "etc" / "passwd").write_bytes(b"a" * 1023 + b"\xff")
    assert read_image_file(str(rootfs), "/etc/passwd", limit=1024) == "a" * 1023 + "\ufffd"


def test_no_file_descriptors_leak(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for number, (arrange, _) in enumerate(READS):
        rootfs, host = tmp_path / str(number) / "rootfs", tmp_path / str(number) / "host"
        (rootfs / "etc").mkdir(parents=True)
        (rootfs / "etc" / "passwd").write_text(INSIDE)
        arrange(rootfs, host)
        read_image_file(str(rootfs), "/etc/passwd")
    for number, (refuse, _) in enumerate(REFUSED):
        rootfs = tmp_path / f"refused{number}"
        (rootfs / "etc").mkdir(parents=True)
        (rootfs / "etc" / "passwd").write_text(INSIDE)
        refuse(rootfs)
        with pytest.raises(InvalidArgument):
            read_image_file(str(rootfs), "/etc/passwd", limit=1024)
    assert len(os.listdir("/proc/self/fd")) == before
