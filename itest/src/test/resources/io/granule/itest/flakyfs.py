#!/usr/bin/env python3
# flakyfs: a passthrough FUSE file system (fusepy, Debian python3-fusepy) with the kernel's
# attribute and entry caches off, whose answers a control file changes by call number: storage
# that answers differently from one call to the next, or readdir and stat that disagree.
# Usage: flakyfs.py ROOT MOUNTPOINT CONTROL LOG
# CONTROL, read again at each call, one rule per line (LIST: N, A-B, comma lists, or "all"):
#   hide SUBSTR LIST     readdir #k of a directory (counted per directory) leaves out the entries
#                        whose name contains SUBSTR
#   enoent SUBSTR LIST   getattr #k of a path containing SUBSTR (counted per SUBSTR) answers ENOENT
#   short SUBSTR LIST    open #k of a path containing SUBSTR (counted per SUBSTR) reads half the file
# LOG gets one line per counted call, with HID, ENOENT or SHORT where a rule applied.
# Written for audit N of `granule repair` on unreliable storage, kept for FlakyStorageRepairTest.
import os, sys, errno, threading
from fusepy import FUSE, FuseOSError, Operations

root, mnt, ctl, logf = sys.argv[1:5]


def inlist(k, spec):
    if spec == 'all':
        return True
    for p in spec.split(','):
        if '-' in p:
            a, b = p.split('-')
            if int(a) <= k <= int(b):
                return True
        elif p and int(p) == k:
            return True
    return False


def rules(kind):
    try:
        lines = open(ctl).read().splitlines()
    except OSError:
        return []
    return [l.split()[1:3] for l in lines if l.split()[:1] == [kind] and len(l.split()) == 3]


class Flaky(Operations):
    def __init__(self):
        self.counts = {}
        self.short = set()
        self.lock = threading.Lock()

    def _p(self, p):
        return os.path.join(root, p.lstrip('/'))

    def _next(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            return self.counts[key]

    def _log(self, m):
        with self.lock, open(logf, 'a') as log:
            log.write(m + "\n")

    def getattr(self, p, fh=None):
        for sub, spec in rules('enoent'):
            if sub in p:
                k = self._next(('g', sub))
                if inlist(k, spec):
                    self._log(f"getattr #{k} {p} ENOENT")
                    raise FuseOSError(errno.ENOENT)
                self._log(f"getattr #{k} {p}")
        st = os.lstat(self._p(p))
        return {k: getattr(st, k) for k in ('st_atime', 'st_ctime', 'st_gid', 'st_mode',
                                             'st_mtime', 'st_nlink', 'st_size', 'st_uid',
                                             'st_ino')}

    def readdir(self, p, fh):
        names = os.listdir(self._p(p))
        for sub, spec in rules('hide'):
            if any(sub in n for n in names):
                k = self._next(('r', p, sub))
                if inlist(k, spec):
                    names = [n for n in names if sub not in n]
                    self._log(f"readdir #{k} {p} HID {sub}")
                else:
                    self._log(f"readdir #{k} {p}")
        return ['.', '..'] + names

    def access(self, p, m):
        if not os.access(self._p(p), m):
            raise FuseOSError(errno.EACCES)

    def mkdir(self, p, m): os.mkdir(self._p(p), m)
    def rmdir(self, p): os.rmdir(self._p(p))
    def unlink(self, p): self._log(f"unlink {p}"); os.unlink(self._p(p))
    def rename(self, a, b): os.rename(self._p(a), self._p(b))
    def link(self, t, n): os.link(self._p(n), self._p(t))
    def chmod(self, p, m): os.chmod(self._p(p), m)
    def chown(self, p, u, g): os.chown(self._p(p), u, g)
    def truncate(self, p, length, fh=None): os.truncate(self._p(p), length)
    def utimens(self, p, t=None): os.utime(self._p(p), t)

    def statfs(self, p):
        v = os.statvfs(self._p(p))
        return {k: getattr(v, k) for k in ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize',
                                           'f_favail', 'f_ffree', 'f_files', 'f_flag',
                                           'f_frsize', 'f_namemax')}

    def open(self, p, flags):
        fd = os.open(self._p(p), flags)
        for sub, spec in rules('short'):
            if sub in p:
                k = self._next(('o', sub))
                if inlist(k, spec):
                    self.short.add(fd)
                    self._log(f"open #{k} {p} SHORT")
                else:
                    self._log(f"open #{k} {p}")
        return fd

    def create(self, p, m, fi=None):
        return os.open(self._p(p), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, m)

    def read(self, p, size, off, fh):
        if fh in self.short:
            half = os.fstat(fh).st_size // 2
            if off >= half:
                return b''
            size = min(size, half - off)
        return os.pread(fh, size, off)

    def write(self, p, d, off, fh): return os.pwrite(fh, d, off)
    def flush(self, p, fh): return 0

    def release(self, p, fh):
        self.short.discard(fh)
        os.close(fh)
        return 0

    def fsync(self, p, ds, fh):
        os.fsync(fh)
        return 0


FUSE(Flaky(), mnt, foreground=True, nothreads=False, allow_other=True, direct_io=True,
     attr_timeout=0, entry_timeout=0, negative_timeout=0)
