#!/usr/bin/env python3
"""lazyfs: a FUSE passthrough filesystem that loses what was not synced.

    python3 lazyfs.py BACKING_DIR MOUNTPOINT --control SOCKET

Everything under MOUNTPOINT is BACKING_DIR, except that the *contents* written
to a file stay in this process's memory, like dirty pages in a page cache,
until that file is synced: `fsync` or `fdatasync` of it (the FUSE `fsync`
callback, both forms) writes its pending bytes and its pending size to the
backing file and syncs the backing file. Reads see the backing file with the
pending bytes over it, so the programs on the mount see their own writes.
Truncation (`truncate`, `ftruncate`, `O_TRUNC`) is pending in the same way.

A power cut is the command `cut` on the control socket (a Unix socket outside
the mount; one line in, one line out): every pending byte and size is thrown
away at once, and from then on the filesystem is off: every change and every
sync is refused with EIO, so nothing that happens after the cut reaches the
backing directory. The caller then kills the programs using the mount,
unmounts it (this process exits when it is unmounted) and mounts a new lazyfs
over the same backing directory, which shows exactly what was synced.

The simplification: metadata operations (create, mknod, mkdir, unlink, rmdir,
rename, link, symlink, chmod, chown, utimens) go to the backing directory at
once and are never lost. This models a journaling filesystem that keeps its
metadata (ext4 with data=ordered, after its journal commit), and it is kinder
than a real one in that respect: a file created and never synced is still
there after the cut, empty, and a rename is never undone. What this layer
tests is the contents: a byte that was written but not synced is gone after
the cut. Synced data also never tears: a sync is applied whole or not at all
(it holds the one lock the cut takes too), and nothing is reordered.

Other limits: extended attributes and fallocate are not supported (ENOTSUP /
EOPNOTSUPP, which programs fall back from); file locks (flock, fcntl) are left
to the kernel, which keeps them for the mount (there is no `lock` callback);
one lock serialises every operation, which is slow but simple.

Mounted with libfuse2 through fusepy: multithreaded, in the foreground,
`hard_remove` (an unlinked open file is really unlinked, as on a local
filesystem, not renamed to .fuse_hidden*), `use_ino` (inode numbers are the
backing ones, which SQLite uses to tell files apart), `kernel_cache` (the
kernel's page cache is kept across opens: every change goes through this
mount, so it is never stale; programs sharing a file, such as SQLite's mmapped
`-shm` index, see one copy) and without `direct_io`, so shared writable mmap
works: dirty mmapped pages reach this layer as writes, which are pending like
any other.

The `status` command answers the pending files and bytes; `cut` answers what
it threw away. Exit status: 0 once unmounted, 2 when FUSE cannot be used here
(no /dev/fuse, the mount refused), 1 on any other error.
"""

import argparse
import errno
import os
import socket
import stat
import sys
import threading

PAGE = 4096


def log(message):
    print("lazyfs: %s" % message, file=sys.stderr, flush=True)


try:
    from fuse import FUSE, FuseOSError, Operations
except ImportError as err:  # fusepy missing
    log("cannot import fusepy (pip install fusepy): %s" % err)
    sys.exit(1)
except OSError as err:  # fusepy raises this when libfuse2 is missing
    log("fusepy cannot load libfuse2 (libfuse2 / libfuse2t64): %s" % err)
    sys.exit(1)


class Pending:
    """The unsynced state of one file (one backing inode).

    `pages` holds whole pages of the file as the programs last wrote them
    (a page is copied from the backing file the first time it is written);
    `size` is the file's size as the programs see it; `floor` is the smallest
    size the file had since its last sync: backing bytes at or past it were
    cut off by a truncation and read as zeros. Pages past `size` are zeros.
    """

    def __init__(self, backing_size):
        self.pages = {}
        self.size = backing_size
        self.floor = backing_size

    def _base(self, fd, offset, length):
        """`length` bytes of the backing file from `offset`, zeros past the
        floor or the backing file's end."""
        data = b""
        if offset < self.floor:
            data = os.pread(fd, min(length, self.floor - offset), offset)
        return data + bytes(length - len(data))

    def _page(self, fd, index):
        page = self.pages.get(index)
        if page is None:
            page = bytearray(self._base(fd, index * PAGE, PAGE))
            self.pages[index] = page
        return page

    def write(self, fd, offset, data):
        end = offset + len(data)
        position = offset
        while position < end:
            index, start = divmod(position, PAGE)
            n = min(PAGE - start, end - position)
            page = self._page(fd, index)
            page[start : start + n] = data[position - offset : position - offset + n]
            position += n
        self.size = max(self.size, end)

    def truncate(self, fd, length):
        if length < self.size:
            for index in [i for i in self.pages if i * PAGE >= length]:
                del self.pages[index]
            index, start = divmod(length, PAGE)
            if start:
                page = self._page(fd, index)
                page[start:] = bytes(PAGE - start)
            self.floor = min(self.floor, length)
        self.size = length

    def read(self, fd, offset, length):
        if offset >= self.size:
            return b""
        end = min(offset + length, self.size)
        parts = []
        position = offset
        while position < end:
            index, start = divmod(position, PAGE)
            n = min(PAGE - start, end - position)
            page = self.pages.get(index)
            if page is not None:
                parts.append(bytes(page[start : start + n]))
            else:
                parts.append(self._base(fd, position, n))
            position += n
        return b"".join(parts)

    def pending_bytes(self):
        return len(self.pages) * PAGE

    def apply(self, fd, datasync):
        """Writes the pending state to the backing file and syncs it."""
        if os.fstat(fd).st_size > self.floor:
            os.ftruncate(fd, self.floor)
        for index in sorted(self.pages):
            start = index * PAGE
            if start >= self.size:
                continue
            data = self.pages[index][: min(PAGE, self.size - start)]
            written = 0
            while written < len(data):
                written += os.pwrite(fd, data[written:], start + written)
        if os.fstat(fd).st_size != self.size:
            os.ftruncate(fd, self.size)
        if datasync:
            os.fdatasync(fd)
        else:
            os.fsync(fd)


class LazyFs(Operations):
    use_ns = True

    def __init__(self, backing, control):
        self.backing = os.path.realpath(backing)
        self.control = control
        # Not `self.lock`: fusepy would take that for the FUSE `lock` callback.
        self._mutex = threading.RLock()
        self.pending = {}  # (st_dev, st_ino) -> Pending
        self.handles = {}  # fd -> (st_dev, st_ino)
        self.opened = {}  # (st_dev, st_ino) -> open handles
        self.writable = {}  # fd -> opened for writing
        self.off = False
        self.cut_report = None
        self.mounted = False

    # -- helpers ---------------------------------------------------------

    def _path(self, path):
        return os.path.join(self.backing, path.lstrip("/"))

    def _live(self):
        if self.off:
            raise FuseOSError(errno.EIO)

    @staticmethod
    def _key(st):
        return (st.st_dev, st.st_ino)

    def _forget_if_gone(self, key):
        """Drops the pending state of an inode nothing names or holds open
        any more (its number may be reused by a new file)."""
        if self.opened.get(key, 0) == 0:
            self.pending.pop(key, None)

    def _unlinking(self, backing_path):
        """Before a name goes away (unlink, rename over it): forget the
        pending state of the inode if this was its last link and nothing
        holds it open."""
        try:
            st = os.lstat(backing_path)
        except FileNotFoundError:
            return
        if stat.S_ISREG(st.st_mode) and st.st_nlink <= 1:
            self._forget_if_gone(self._key(st))

    def _new_inode(self, backing_path):
        """A file that was just created: any pending state under its inode
        number belongs to a file that no longer exists."""
        st = os.lstat(backing_path)
        self.pending.pop(self._key(st), None)

    def _register(self, fd, writable):
        key = self._key(os.fstat(fd))
        self.handles[fd] = key
        self.writable[fd] = writable
        self.opened[key] = self.opened.get(key, 0) + 1
        return fd

    def _pending_for(self, key, fd):
        state = self.pending.get(key)
        if state is None:
            state = Pending(os.fstat(fd).st_size)
            self.pending[key] = state
        return state

    def _stat_dict(self, st):
        attrs = {
            key: getattr(st, key)
            for key in (
                "st_mode",
                "st_nlink",
                "st_uid",
                "st_gid",
                "st_size",
                "st_ino",
                "st_rdev",
                "st_blksize",
                "st_blocks",
            )
        }
        attrs["st_atime"] = st.st_atime_ns
        attrs["st_mtime"] = st.st_mtime_ns
        attrs["st_ctime"] = st.st_ctime_ns
        state = self.pending.get(self._key(st))
        if state is not None and stat.S_ISREG(st.st_mode):
            attrs["st_size"] = state.size
            attrs["st_blocks"] = max(st.st_blocks, (state.size + 511) // 512)
        return attrs

    # -- control ---------------------------------------------------------

    def status(self):
        files = sum(1 for p in self.pending.values() if p.pages or p.size != p.floor)
        pending = sum(p.pending_bytes() for p in self.pending.values())
        return "files=%d pending_bytes=%d" % (files, pending)

    def cut(self):
        with self._mutex:
            if self.off:
                return "already cut: %s" % self.cut_report
            report = self.status()
            self.pending.clear()
            self.off = True
            self.cut_report = report
            log("power cut: dropped %s" % report)
            return "cut: dropped " + report

    def _serve_control(self):
        try:
            os.unlink(self.control)
        except FileNotFoundError:
            pass
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.control)
        server.listen(4)
        while True:
            conn, _ = server.accept()
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                command = data.decode("utf-8", "replace").strip()
                if command == "cut":
                    answer = self.cut()
                elif command == "status":
                    with self._mutex:
                        answer = ("off " if self.off else "on ") + self.status()
                else:
                    answer = "error: unknown command %r" % command
                conn.sendall((answer + "\n").encode())

    # -- filesystem ------------------------------------------------------

    def init(self, path):
        self.mounted = True
        thread = threading.Thread(target=self._serve_control, daemon=True)
        thread.start()
        log("mounted %s" % self.backing)

    def destroy(self, path):
        # Unmounting syncs nothing: what is pending now is lost.
        with self._mutex:
            if self.pending and not self.off:
                log("unmounted with pending writes, dropped: %s" % self.status())

    def access(self, path, amode):
        if not os.access(self._path(path), amode):
            raise FuseOSError(errno.EACCES)

    def getattr(self, path, fh=None):
        with self._mutex:
            st = os.fstat(fh) if fh is not None else os.lstat(self._path(path))
            return self._stat_dict(st)

    def readlink(self, path):
        return os.readlink(self._path(path))

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def statfs(self, path):
        sv = os.statvfs(self._path(path))
        return {
            key: getattr(sv, key)
            for key in (
                "f_bavail",
                "f_bfree",
                "f_blocks",
                "f_bsize",
                "f_favail",
                "f_ffree",
                "f_files",
                "f_flag",
                "f_frsize",
                "f_namemax",
            )
        }

    def chmod(self, path, mode):
        with self._mutex:
            self._live()
            os.chmod(self._path(path), mode)

    def chown(self, path, uid, gid):
        with self._mutex:
            self._live()
            os.chown(self._path(path), uid, gid, follow_symlinks=False)

    def utimens(self, path, times=None):
        with self._mutex:
            self._live()
            if times is None:
                os.utime(self._path(path), follow_symlinks=False)
            else:
                os.utime(self._path(path), ns=times, follow_symlinks=False)

    def mknod(self, path, mode, dev):
        with self._mutex:
            self._live()
            target = self._path(path)
            os.mknod(target, mode, dev)
            self._new_inode(target)

    def mkdir(self, path, mode):
        with self._mutex:
            self._live()
            os.mkdir(self._path(path), mode)

    def rmdir(self, path):
        with self._mutex:
            self._live()
            os.rmdir(self._path(path))

    def unlink(self, path):
        with self._mutex:
            self._live()
            target = self._path(path)
            self._unlinking(target)
            os.unlink(target)

    def symlink(self, target, source):
        with self._mutex:
            self._live()
            os.symlink(source, self._path(target))

    def link(self, target, source):
        with self._mutex:
            self._live()
            os.link(self._path(source), self._path(target))

    def rename(self, old, new):
        with self._mutex:
            self._live()
            old_path, new_path = self._path(old), self._path(new)
            try:
                same = os.lstat(old_path).st_ino == os.lstat(new_path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                self._unlinking(new_path)
            os.rename(old_path, new_path)

    def open(self, path, flags):
        with self._mutex:
            truncate = bool(flags & os.O_TRUNC)
            if truncate or (flags & os.O_ACCMODE) != os.O_RDONLY:
                self._live()
            # O_TRUNC is pending like any truncation; O_APPEND is the
            # kernel's business (it sends the offsets), and the backing file
            # is written only with pwrite at the offsets the kernel sent.
            # A handle for writing also reads: pages are copied from the
            # backing file before they are changed.
            writable = (flags & os.O_ACCMODE) != os.O_RDONLY
            backing_flags = flags & ~(
                os.O_ACCMODE | os.O_TRUNC | os.O_APPEND | os.O_CREAT | os.O_EXCL
            )
            backing_flags |= os.O_RDWR if writable else os.O_RDONLY
            fd = os.open(self._path(path), backing_flags)
            self._register(fd, writable)
            if truncate:
                self._pending_for(self.handles[fd], fd).truncate(fd, 0)
            return fd

    def create(self, path, mode, fi=None):
        with self._mutex:
            self._live()
            target = self._path(path)
            try:
                fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
                self._new_inode(target)
            except FileExistsError:
                fd = os.open(target, os.O_RDWR)
            return self._register(fd, True)

    def read(self, path, size, offset, fh):
        with self._mutex:
            state = self.pending.get(self.handles[fh])
            if state is None:
                return os.pread(fh, size, offset)
            return state.read(fh, offset, size)

    def write(self, path, data, offset, fh):
        with self._mutex:
            self._live()
            self._pending_for(self.handles[fh], fh).write(fh, offset, data)
            return len(data)

    def truncate(self, path, length, fh=None):
        with self._mutex:
            self._live()
            if fh is not None:
                self._pending_for(self.handles[fh], fh).truncate(fh, length)
                return
            fd = os.open(self._path(path), os.O_RDONLY)
            try:
                key = self._key(os.fstat(fd))
                self._pending_for(key, fd).truncate(fd, length)
            finally:
                os.close(fd)

    def flush(self, path, fh):
        # close() is not a sync.
        return 0

    def fsync(self, path, datasync, fh):
        with self._mutex:
            self._live()
            key = self.handles[fh]
            state = self.pending.get(key)
            if state is None:
                # Nothing pending: the backing file is as the programs see it.
                if datasync:
                    os.fdatasync(fh)
                else:
                    os.fsync(fh)
                return 0
            if self.writable.get(fh):
                state.apply(fh, datasync)
            else:
                # Synced through a read-only handle: write through another.
                fd = os.open("/proc/self/fd/%d" % fh, os.O_WRONLY)
                try:
                    state.apply(fd, datasync)
                finally:
                    os.close(fd)
            del self.pending[key]
            return 0

    def fsyncdir(self, path, datasync, fh):
        # Metadata is written at once (see the module's doc comment).
        with self._mutex:
            self._live()
            return 0

    def release(self, path, fh):
        with self._mutex:
            key = self.handles.pop(fh, None)
            self.writable.pop(fh, None)
            if key is not None:
                self.opened[key] -= 1
                if self.opened[key] == 0:
                    del self.opened[key]
                    if os.fstat(fh).st_nlink == 0:
                        self.pending.pop(key, None)
            os.close(fh)
            return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backing")
    parser.add_argument("mountpoint")
    parser.add_argument("--control", required=True, help="Unix socket for cut/status")
    args = parser.parse_args()
    if not os.path.isdir(args.backing) or not os.path.isdir(args.mountpoint):
        log("backing dir and mount point must be directories")
        return 1
    if os.listdir(args.mountpoint):
        log("the mount point is not empty (still mounted?)")
        return 1
    if not os.path.exists("/dev/fuse"):
        log("unavailable: /dev/fuse is missing")
        return 2
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        log("unavailable: /dev/fuse cannot be opened for reading and writing")
        return 2
    # Modes come from the kernel with the caller's umask already applied.
    os.umask(0)
    fs = LazyFs(args.backing, args.control)
    try:
        FUSE(
            fs,
            args.mountpoint,
            foreground=True,
            nothreads=False,
            fsname="lazyfs",
            subtype="lazyfs",
            hard_remove=True,
            use_ino=True,
            kernel_cache=True,
            big_writes=True,
        )
    except RuntimeError as err:
        if not fs.mounted:
            log("unavailable: the mount failed (%s); see libfuse's message above" % err)
            return 2
        log("fuse_main failed after mounting: %s" % err)
        return 1
    if not fs.mounted:
        log("unavailable: the filesystem never started")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
