"""A minimal Linux inotify binding (ctypes): enough to learn that *something* changed in a set of
directories. Events are drained, not decoded: the directory store rescans and compares content, so
which file changed, or a queue overflow, makes no difference to it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

# Every way a file's content or a directory's entries can change, including symlink swaps (a rename
# of ``..data`` onto itself shows as MOVED_TO) and a directory being replaced.
DIR_CHANGES = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
               | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF)

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class Inotify:
    """A non-blocking inotify descriptor watching a changing set of directories."""

    def __init__(self) -> None:
        self.fd: int = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            _raise(os.strerror(ctypes.get_errno()), "inotify_init1")
        self._watches: dict[str, tuple[int, int]] = {}  # path -> (watch descriptor, inode)

    def watch_exactly(self, directories: set[str]) -> None:
        """Watch these directories and no others; a directory that is gone is simply skipped.

        A path whose inode changed (directory deleted and re-created) gets a fresh watch.
        """
        inodes = {}
        for path in directories:
            try:
                inodes[path] = os.stat(path).st_ino
            except OSError:
                continue
        for path, (wd, inode) in list(self._watches.items()):
            if inodes.get(path) != inode:
                _libc.inotify_rm_watch(self.fd, wd)  # fails harmlessly when the kernel dropped it
                del self._watches[path]
        for path, inode in inodes.items():
            if path not in self._watches:
                wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), DIR_CHANGES)
                if wd >= 0:
                    self._watches[path] = (wd, inode)

    def drain(self) -> bool:
        """Read every pending event; True when there was at least one."""
        seen = False
        while True:
            try:
                if not os.read(self.fd, 65536):
                    return seen
            except BlockingIOError:
                return seen
            seen = True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _raise(message: str, call: str) -> None:
    raise OSError(f"{call}: {message}")
