/*
 * The file-system half of libgranule-native: JNI bindings of
 * io.granule.engine.internal.image.SparseFiles to lseek(2)'s SEEK_DATA and SEEK_HOLE, which the
 * JDK does not offer. A raw image's holes read as zeros: a backup that knows where they are skips
 * them without reading them (a VM image is often mostly holes).
 *
 * Errors come back as -errno; the Java side names the file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jni.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "io_granule_engine_internal_image_SparseFiles.h"

/* close(fd): 0, or -errno. */
static jint close_fd(jint fd) { return close(fd) < 0 ? -errno : 0; }

/* A copy of the path (a Java byte array), NUL-terminated, to free(); NULL if out of memory. */
static char *copy_path(JNIEnv *env, jbyteArray path) {
  jsize n = (*env)->GetArrayLength(env, path);
  char *p = malloc((size_t)n + 1);
  if (p == NULL) {
    return NULL;
  }
  (*env)->GetByteArrayRegion(env, path, 0, n, (jbyte *)p);
  p[n] = 0;
  return p;
}

/* Opens the path (a Java byte array, NUL-terminated here) with flags; the descriptor, or -errno. */
static jint open_path(JNIEnv *env, jbyteArray path, int flags) {
  char *p = copy_path(env, path);
  if (p == NULL) {
    return -ENOMEM;
  }
  int fd = open(p, flags | O_CLOEXEC, (mode_t)0600); /* the mode only counts with O_CREAT */
  int err = errno;
  free(p);
  return fd < 0 ? -err : fd;
}

/* Opens the NUL-terminated path for reading; the descriptor, or -errno. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_image_SparseFiles_open0(JNIEnv *env,
                                                                               jclass cls,
                                                                               jbyteArray path) {
  (void)cls;
  return open_path(env, path, O_RDONLY);
}

/* lseek(fd, offset, SEEK_HOLE if hole else SEEK_DATA): the offset found, or -errno (-ENXIO: no
 * data at or after offset). */
JNIEXPORT jlong JNICALL Java_io_granule_engine_internal_image_SparseFiles_seek0(JNIEnv *env,
                                                                                jclass cls,
                                                                                jint fd,
                                                                                jlong offset,
                                                                                jboolean hole) {
  (void)env;
  (void)cls;
  off_t r = lseek(fd, (off_t)offset, hole ? SEEK_HOLE : SEEK_DATA);
  return r < 0 ? -(jlong)errno : (jlong)r;
}

/* cachestat(2) (Linux 6.5): the bytes of the file that are in the page cache, or -errno (-ENOSYS
 * on older kernels). The number is the same on every architecture (the unified syscall table). */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
struct granule_cachestat_range {
  unsigned long long off;
  unsigned long long len;
};
struct granule_cachestat {
  unsigned long long nr_cache;
  unsigned long long nr_dirty;
  unsigned long long nr_writeback;
  unsigned long long nr_evicted;
  unsigned long long nr_recently_evicted;
};
JNIEXPORT jlong JNICALL Java_io_granule_engine_internal_image_SparseFiles_cached0(JNIEnv *env,
                                                                                 jclass cls,
                                                                                 jint fd) {
  (void)env;
  (void)cls;
  struct granule_cachestat_range range = {0, 0}; /* len 0: to the end of the file */
  struct granule_cachestat cs;
  if (syscall(__NR_cachestat, fd, &range, &cs, 0) < 0) {
    return -(jlong)errno;
  }
  return (jlong)cs.nr_cache * (jlong)sysconf(_SC_PAGESIZE);
}

/* fstat(2)'s st_blocks in bytes: what the file takes on its file system, holes not counted. */
JNIEXPORT jlong JNICALL Java_io_granule_engine_internal_image_SparseFiles_allocated0(JNIEnv *env,
                                                                                    jclass cls,
                                                                                    jint fd) {
  (void)env;
  (void)cls;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    return -(jlong)errno;
  }
  return (jlong)st.st_blocks * 512;
}

JNIEXPORT jint JNICALL Java_io_granule_engine_internal_image_SparseFiles_close0(JNIEnv *env,
                                                                                jclass cls,
                                                                                jint fd) {
  (void)env;
  (void)cls;
  return close_fd(fd);
}

/* The half of io.granule.engine.internal.repo.backup.FileSpace: fallocate(2) of ranges of a
 * restore's target file before direct writes fill them. */
#include "io_granule_engine_internal_repo_backup_FileSpace.h"

/* Opens the NUL-terminated path for writing; the descriptor, or -errno. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_repo_backup_FileSpace_open0(
    JNIEnv *env, jclass cls, jbyteArray path, jboolean follow) {
  (void)cls;
  return open_path(env, path, follow ? O_WRONLY : O_WRONLY | O_NOFOLLOW);
}

/* fallocate(fd, 0, offset, length): 0, or -errno. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_repo_backup_FileSpace_allocate0(
    JNIEnv *env, jclass cls, jint fd, jlong offset, jlong length) {
  (void)env;
  (void)cls;
  return fallocate(fd, 0, (off_t)offset, (off_t)length) < 0 ? -errno : 0;
}

JNIEXPORT jint JNICALL Java_io_granule_engine_internal_repo_backup_FileSpace_close0(JNIEnv *env,
                                                                                   jclass cls,
                                                                                   jint fd) {
  (void)env;
  (void)cls;
  return close_fd(fd);
}

/* The half of io.granule.engine.internal.image.BlockDeviceClaim: an exclusive open (O_EXCL on a
 * block device, which the kernel refuses with EBUSY while the device, or a partition of it, or the
 * disk it is a partition of, is mounted, in use by device mapper, md or swap, or claimed by another
 * exclusive opener). */
#include "io_granule_engine_internal_image_BlockDeviceClaim.h"

/* Opens the NUL-terminated path read-only and exclusively; the descriptor, or -errno. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_image_BlockDeviceClaim_claim0(
    JNIEnv *env, jclass cls, jbyteArray path) {
  (void)cls;
  return open_path(env, path, O_RDONLY | O_EXCL);
}

/* Asks the kernel to read the device's partition table again (BLKRRPART: as the exclusive holder,
 * which udev's own request after the restore's writes cannot be while the claim is held), then
 * close(fd): 0, or -errno of the close. A device without partitions (EINVAL) is fine. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_image_BlockDeviceClaim_release0(
    JNIEnv *env, jclass cls, jint fd, jboolean reread) {
  (void)env;
  (void)cls;
  if (reread) {
    (void)ioctl(fd, BLKRRPART, 0);
  }
  return close_fd(fd);
}

/* The half of io.granule.engine.internal.ops.DirectoryHandle: a directory held open, so a restore
 * writes into it through /proc/self/fd/N whatever is renamed or linked in its place by name. */
#include "io_granule_engine_internal_ops_DirectoryHandle.h"

/* Opens the NUL-terminated path as a directory, not through a link at its last component; the
 * descriptor, or -errno. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_ops_DirectoryHandle_open0(JNIEnv *env,
                                                                                jclass cls,
                                                                                jbyteArray path) {
  (void)cls;
  return open_path(env, path, O_PATH | O_DIRECTORY | O_NOFOLLOW);
}

/* Creates the NUL-terminated path as a new regular file (failing if anything is there, a link
 * included), open for writing, mode 0600; the descriptor, or -errno. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_ops_DirectoryHandle_create0(JNIEnv *env,
                                                                                  jclass cls,
                                                                                  jbyteArray path) {
  (void)cls;
  return open_path(env, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW);
}

/* Opens the NUL-terminated path as an O_PATH descriptor, not through a link at its last component
 * (a FIFO does not block it); the descriptor, or -errno. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_ops_DirectoryHandle_pin0(JNIEnv *env,
                                                                               jclass cls,
                                                                               jbyteArray path) {
  (void)cls;
  return open_path(env, path, O_PATH | O_NOFOLLOW);
}

/* Gives the file held by fd a new name, the NUL-terminated path (failing with -EEXIST if anything
 * is there): the file itself, through /proc/self/fd/N, whatever was renamed over its old name
 * since. 0, or -errno. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_ops_DirectoryHandle_linkHeld0(
    JNIEnv *env, jclass cls, jint fd, jbyteArray path) {
  (void)cls;
  char *p = copy_path(env, path);
  if (p == NULL) {
    return -ENOMEM;
  }
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", (int)fd);
  int r = linkat(AT_FDCWD, self, AT_FDCWD, p, AT_SYMLINK_FOLLOW);
  int err = errno;
  free(p);
  return r < 0 ? -err : 0;
}

/* Resolves the NUL-terminated absolute path one component at a time from "/", each opened with
 * O_PATH|O_NOFOLLOW relative to the directory held before it, so nothing renamed or swapped
 * meanwhile changes what was checked: a symbolic link is followed only where root or this
 * process's effective user owns it and the directory holding it (which no one else may then write:
 * its owner could rename any link into place), at most 40.
 * Stops at the first component that does not exist.
 *
 * Returns the O_PATH descriptor of the last directory reached, or -errno (-EXDEV: a link of another
 * user; -ELOOP: too many links; -ENOTDIR: a file where a directory was needed). rest (as long as
 * the caller likes, 8 KiB here) receives what is left to resolve below that directory, '/'
 * separated: the last name only, or missing directories and the last name, or nothing where the
 * path names a directory. out[0] = length of rest, out[1] = owner of a refused link, out[2] = 1 if
 * the last component exists (rest is then that one name; 2 with -EXDEV: the link's directory, of
 * owner out[1], is what others can change), out[3] = its st_mode. */
#include "io_granule_engine_internal_ops_SafePath.h"

#define WALK_MAX 8192

static int pop_component(char *pending, char *name) {
  /* moves the first component of pending into name (NAME_MAX bytes); 0 if there is none */
  char *p = pending;
  while (*p == '/') p++;
  if (*p == 0) {
    pending[0] = 0;
    return 0;
  }
  char *end = strchr(p, '/');
  size_t n = end ? (size_t)(end - p) : strlen(p);
  if (n > 255) {
    return -ENAMETOOLONG;
  }
  memcpy(name, p, n);
  name[n] = 0;
  memmove(pending, p + n, strlen(p + n) + 1);
  return 1;
}

static int only_slashes(const char *s) {
  while (*s == '/') s++;
  return *s == 0;
}

JNIEXPORT jint JNICALL Java_io_granule_engine_internal_ops_SafePath_resolve0(
    JNIEnv *env, jclass cls, jbyteArray path, jbyteArray restOut, jintArray outArr) {
  (void)cls;
  jsize n = (*env)->GetArrayLength(env, path);
  if (n >= WALK_MAX) {
    return -ENAMETOOLONG;
  }
  char *pending = calloc(1, 2 * WALK_MAX + 2);
  char *name = malloc(256);
  char *link = malloc(WALK_MAX);
  if (pending == NULL || name == NULL || link == NULL) {
    free(pending);
    free(name);
    free(link);
    return -ENOMEM;
  }
  (*env)->GetByteArrayRegion(env, path, 0, n, (jbyte *)pending);
  pending[n] = 0;
  jint out[4] = {0, -1, 0, 0};
  uid_t self = geteuid();
  int links = 0;
  /* -1 while every directory walked so far is root's or this user's and no one else can write
   * it; else the owner of the first that is not: below it, entries (a directory of root's
   * holding root's links, made by a restore of that user's image) are that user's to rename, and
   * no link is followed any more */
  long untrusted = -1;
  int dirfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  int result = dirfd < 0 ? -errno : 0;
  while (result == 0) {
    int got = pop_component(pending, name);
    if (got < 0) {
      result = got;
      break;
    }
    if (got == 0) {
      break; /* the path names the directory held */
    }
    if (strcmp(name, ".") == 0) {
      continue;
    }
    int last = only_slashes(pending);
    if (strcmp(name, "..") == 0) {
      int up = openat(dirfd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (up < 0) {
        result = -errno;
        break;
      }
      close(dirfd);
      dirfd = up;
      continue;
    }
    int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT) {
        result = -errno;
        break;
      }
      /* not there: the rest is the caller's to make */
      size_t len = strlen(name) + 1 + strlen(pending) + 1;
      char *rest = malloc(len);
      if (rest == NULL) {
        result = -ENOMEM;
        break;
      }
      snprintf(rest, len, "%s%s%s", name, pending[0] == '/' ? "" : (pending[0] ? "/" : ""),
               pending);
      size_t rl = strlen(rest);
      while (rl > 0 && rest[rl - 1] == '/') rest[--rl] = 0;
      jsize cap = (*env)->GetArrayLength(env, restOut);
      if ((jsize)rl > cap) {
        free(rest);
        result = -ENAMETOOLONG;
        break;
      }
      (*env)->SetByteArrayRegion(env, restOut, 0, (jsize)rl, (const jbyte *)rest);
      out[0] = (jint)rl;
      free(rest);
      break;
    }
    struct stat st;
    if (fstatat(fd, "", &st, AT_EMPTY_PATH) < 0) {
      result = -errno;
      close(fd);
      break;
    }
    if (S_ISLNK(st.st_mode)) {
      /* and only in a directory no other user can change: a root-owned link (one a root restore
       * made from a user's image, say) renamed into place by the user who owns the directory is
       * his choice, not root's */
      struct stat dst;
      if (fstatat(dirfd, "", &dst, AT_EMPTY_PATH) < 0) {
        result = -errno;
        close(fd);
        break;
      }
      int dirOpen = (dst.st_uid != 0 && dst.st_uid != self) || (dst.st_mode & 0022) != 0;
      if (untrusted >= 0 && !dirOpen) {
        dst.st_uid = (uid_t)untrusted; /* named below: the directory above that lets others in */
        dirOpen = 1;
      }
      if (st.st_uid != 0 && st.st_uid != self) {
        out[1] = (jint)st.st_uid;
        jsize nl = (jsize)strlen(name);
        (*env)->SetByteArrayRegion(env, restOut, 0, nl, (const jbyte *)name);
        out[0] = nl;
        close(fd);
        result = -EXDEV;
        break;
      }
      if (dirOpen) {
        out[1] = (jint)dst.st_uid;
        out[2] = 2; /* the link's directory is the one others can change */
        jsize nl = (jsize)strlen(name);
        (*env)->SetByteArrayRegion(env, restOut, 0, nl, (const jbyte *)name);
        out[0] = nl;
        close(fd);
        result = -EXDEV;
        break;
      }
      if (++links > 40) {
        close(fd);
        result = -ELOOP;
        break;
      }
      ssize_t ln = readlinkat(fd, "", link, WALK_MAX - 1);
      close(fd);
      if (ln < 0) {
        result = -errno;
        break;
      }
      link[ln] = 0;
      if (strlen(pending) + (size_t)ln + 2 > 2 * WALK_MAX) {
        result = -ENAMETOOLONG;
        break;
      }
      /* the link's text goes before what was left */
      memmove(pending + ln + 1, pending, strlen(pending) + 1);
      memcpy(pending, link, (size_t)ln);
      pending[ln] = '/';
      if (link[0] == '/') {
        int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0) {
          result = -errno;
          break;
        }
        close(dirfd);
        dirfd = root;
      }
      continue;
    }
    if (last) {
      /* the last component, there: its directory and name are the answer */
      jsize nl = (jsize)strlen(name);
      (*env)->SetByteArrayRegion(env, restOut, 0, nl, (const jbyte *)name);
      out[0] = nl;
      out[2] = 1;
      out[3] = (jint)st.st_mode;
      close(fd);
      break;
    }
    if (!S_ISDIR(st.st_mode)) {
      close(fd);
      result = -ENOTDIR;
      break;
    }
    /* a sticky directory (/tmp) lets others add entries, not rename root's or this user's, and
     * a directory of theirs cannot be moved in from elsewhere (its ".." would change) */
    if (untrusted < 0 && ((st.st_uid != 0 && st.st_uid != self) ||
                          ((st.st_mode & 0022) != 0 && (st.st_mode & S_ISVTX) == 0))) {
      untrusted = (long)st.st_uid;
    }
    close(dirfd);
    dirfd = fd;
  }
  free(pending);
  free(name);
  free(link);
  (*env)->SetIntArrayRegion(env, outArr, 0, 4, out);
  if (result < 0) {
    if (dirfd >= 0) {
      close(dirfd);
    }
    return result;
  }
  return dirfd;
}

/* Removes the access ACL of the NUL-terminated path (links followed: a /proc/self/fd/N name of a
 * file held open), and its default ACL if dir: a restored file then has its mode and nothing an
 * ACL on the directory it was made in gave it. 0, or -errno (none there, or no ACLs here: 0). */
#include <sys/xattr.h>
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_ops_DirectoryHandle_dropAcl0(
    JNIEnv *env, jclass cls, jbyteArray path, jboolean dir) {
  (void)cls;
  char *p = copy_path(env, path);
  if (p == NULL) {
    return -ENOMEM;
  }
  int result = 0;
  const char *names[] = {"system.posix_acl_access", "system.posix_acl_default"};
  for (int i = 0; i < (dir ? 2 : 1); i++) {
    if (removexattr(p, names[i]) < 0 && errno != ENODATA && errno != ENOTSUP &&
        errno != EOPNOTSUPP) {
      result = -errno;
      break;
    }
  }
  free(p);
  return result;
}

/* The half of io.granule.engine.internal.ops.PosixAcl: the access ACL of the NUL-terminated path
 * (not through a link at its last component), as the kernel stores it, into buf: its length, or
 * -errno (-ENODATA: none; -EOPNOTSUPP: no ACLs on that file system). */
#include "io_granule_engine_internal_ops_PosixAcl.h"
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_ops_PosixAcl_access0(JNIEnv *env,
                                                                           jclass cls,
                                                                           jbyteArray path,
                                                                           jbyteArray buf) {
  (void)cls;
  char *p = copy_path(env, path);
  if (p == NULL) {
    return -ENOMEM;
  }
  jsize cap = (*env)->GetArrayLength(env, buf);
  char *value = malloc((size_t)cap);
  if (value == NULL) {
    free(p);
    return -ENOMEM;
  }
  ssize_t n = lgetxattr(p, "system.posix_acl_access", value, (size_t)cap);
  int err = errno;
  free(p);
  if (n >= 0) {
    (*env)->SetByteArrayRegion(env, buf, 0, (jsize)n, (const jbyte *)value);
  }
  free(value);
  return n < 0 ? -err : (jint)n;
}

/* Gives the symbolic link held by fd (O_PATH|O_NOFOLLOW) owner uid:gid, if it is still a link whose
 * target is the NUL-terminated expected (whoever renamed another link of the same target over it
 * meanwhile gets nothing a link of the snapshot's would not have had): 0, -EINVAL if fd holds no
 * link, -ESTALE if its target differs, or -errno. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_ops_DirectoryHandle_chownLink0(
    JNIEnv *env, jclass cls, jint fd, jbyteArray expected, jint uid, jint gid) {
  (void)cls;
  struct stat st;
  if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
    return -errno;
  }
  if (!S_ISLNK(st.st_mode)) {
    return -EINVAL;
  }
  jsize n = (*env)->GetArrayLength(env, expected);
  char *want = malloc((size_t)n + 1);
  char *got = malloc((size_t)n + 2);
  if (want == NULL || got == NULL) {
    free(want);
    free(got);
    return -ENOMEM;
  }
  (*env)->GetByteArrayRegion(env, expected, 0, n, (jbyte *)want);
  want[n] = 0;
  size_t wlen = strlen(want);
  ssize_t r = readlinkat(fd, "", got, wlen + 1);
  int result = 0;
  if (r < 0) {
    result = -errno;
  } else if ((size_t)r != wlen || memcmp(got, want, wlen) != 0) {
    result = -ESTALE;
  } else if (fchownat(fd, "", (uid_t)uid, (gid_t)gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
    result = -errno;
  }
  free(want);
  free(got);
  return result;
}

/* close(fd): 0, or -errno. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_ops_DirectoryHandle_close0(JNIEnv *env,
                                                                                 jclass cls,
                                                                                 jint fd) {
  (void)env;
  (void)cls;
  return close_fd(fd);
}

/* The half of io.granule.engine.internal.cli.OfdLock: an open-file-description lock on one byte of
 * a file, which every process of every user sees, under any name of the file, and which no other
 * descriptor's close drops. Restores take it for writing, backups for reading. */
#include "io_granule_engine_internal_cli_OfdLock.h"

static jint lock_fd(int fd, jboolean write);

/* Opens the NUL-terminated path (for writing if write, else for reading; not through a link at its
 * last component) and locks the byte (a write lock if write, else a read lock); the descriptor, or
 * -errno: -EAGAIN where another holds a write lock on it, -EBUSY where others hold only read locks
 * (readers: a backup reading the file, or any program that may read it). */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_cli_OfdLock_lock0(JNIEnv *env, jclass cls,
                                                                        jbyteArray path,
                                                                        jboolean write) {
  (void)cls;
  return lock_fd(open_path(env, path, (write ? O_WRONLY : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK),
                 write);
}

/* As lock0, but for a file held open, named /proc/self/fd/N: that link is followed (to the file
 * the descriptor holds, whatever is renamed over its name since). */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_cli_OfdLock_lockHeld0(JNIEnv *env,
                                                                            jclass cls,
                                                                            jbyteArray path,
                                                                            jboolean write) {
  (void)cls;
  return lock_fd(open_path(env, path, (write ? O_WRONLY : O_RDONLY) | O_NONBLOCK), write);
}

/* Locks the byte of fd (see lock0), closing fd on failure; fd, or -errno (fd < 0: returned). */
static jint lock_fd(int fd, jboolean write) {
  if (fd < 0) {
    return fd;
  }
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = write ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  /* one byte far past any file's end, which only Granule locks: other programs' locks on the
   * file (QEMU's on an image, SQLite's) do not conflict with it */
  fl.l_start = (off_t)0x4000000000000000LL;
  fl.l_len = 1;
  for (int attempt = 0; attempt < 3; attempt++) {
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
      return fd;
    }
    int err = errno;
    if (err != EAGAIN && err != EACCES) {
      close(fd);
      return -err;
    }
    /* held: by whom (readers and a writer never hold it at once, so the type says which) */
    struct flock q = fl;
    int known = fcntl(fd, F_OFD_GETLK, &q) == 0;
    if (known && q.l_type == F_UNLCK) {
      continue; /* released meanwhile */
    }
    close(fd);
    return known && q.l_type == F_RDLCK ? -EBUSY : -EAGAIN;
  }
  close(fd);
  return -EAGAIN;
}

/* close(fd), which releases the lock: 0, or -errno. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_cli_OfdLock_unlock0(JNIEnv *env, jclass cls,
                                                                          jint fd) {
  (void)env;
  (void)cls;
  return close_fd(fd);
}

/*
 * io.granule.engine.internal.net.PeerUser: who owns the socket with this exact pair of ends, asked
 * of the kernel by NETLINK_SOCK_DIAG (one exact lookup, SOCK_DIAG_BY_FAMILY without NLM_F_DUMP)
 * instead of reading all of /proc/net/tcp. src/dst are 16 bytes (network order; an IPv4 address
 * in the first 4), ports host order; ifindex: the device to look up on (idiag_if; 0: any, which
 * does not find a socket bound to a device, SO_BINDTODEVICE or an IPv6 link-local scope: the Java
 * side asks again on "lo", on a link-local end's scope and on the devices holding the
 * connection's server address). out = {state, uid, inode}. 0 if found, -errno otherwise (-ENOENT: no such socket, or no inet_diag in this
 * kernel: the Java side tells the two apart once).
 */
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

JNIEXPORT jint JNICALL Java_io_granule_engine_internal_net_PeerUser_diag0(
    JNIEnv *env, jclass cls, jboolean v6, jbyteArray src, jint sport, jbyteArray dst, jint dport,
    jint ifindex, jlongArray out) {
  (void)cls;
  if ((*env)->GetArrayLength(env, src) != 16 || (*env)->GetArrayLength(env, dst) != 16 ||
      (*env)->GetArrayLength(env, out) < 3 || ifindex < 0) {
    return -EINVAL;
  }
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 req;
  } msg;
  memset(&msg, 0, sizeof msg);
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;
  msg.nlh.nlmsg_seq = 1;
  msg.req.sdiag_family = v6 ? AF_INET6 : AF_INET;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0U; /* an exact lookup ignores it; the caller judges the state */
  msg.req.id.idiag_sport = htons((uint16_t)sport);
  msg.req.id.idiag_dport = htons((uint16_t)dport);
  (*env)->GetByteArrayRegion(env, src, 0, 16, (jbyte *)msg.req.id.idiag_src);
  (*env)->GetByteArrayRegion(env, dst, 0, 16, (jbyte *)msg.req.id.idiag_dst);
  msg.req.id.idiag_if = (uint32_t)ifindex;
  msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) {
    return -errno;
  }
  struct timeval tv = {1, 0}; /* the kernel answers within sendto; never wait long */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, &msg, sizeof msg, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  long buf[1024]; /* 8 KiB, aligned: one reply with no extensions is ~100 bytes */
  for (int attempt = 0; attempt < 4; attempt++) {
    struct sockaddr_nl from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fromlen);
    if (n < 0) {
      int err = errno;
      close(fd);
      return err == EAGAIN || err == EWOULDBLOCK ? -ETIMEDOUT : -err;
    }
    if (fromlen != sizeof from || from.nl_pid != 0) {
      continue; /* only the kernel's answer counts */
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != 1) {
        continue;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = (struct nlmsgerr *)NLMSG_DATA(h);
        close(fd);
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof *e)) {
          return -EPROTO;
        }
        return e->error < 0 ? e->error : -ENOENT;
      }
      if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
          h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
        struct inet_diag_msg *m = (struct inet_diag_msg *)NLMSG_DATA(h);
        /* the exact pair asked for, echoed back (a listener answers for its port otherwise) */
        if (ntohs(m->id.idiag_sport) != (uint16_t)sport ||
            ntohs(m->id.idiag_dport) != (uint16_t)dport) {
          close(fd);
          return -ENOENT;
        }
        jlong r[3] = {m->idiag_state, (jlong)m->idiag_uid, (jlong)m->idiag_inode};
        (*env)->SetLongArrayRegion(env, out, 0, 3, r);
        close(fd);
        return 0;
      }
    }
  }
  close(fd);
  return -EPROTO;
}

/*
 * io.granule.engine.internal.ops.FileCredentials: the calling thread's file-system identity
 * (fsuid, fsgid, supplementary groups), so that the files a root backup opens for a user are
 * opened with that user's rights and the kernel decides what he may read (ACLs included). The raw
 * system calls change the calling thread only (glibc's setgroups(3) would change every thread of
 * the process). A fsuid other than 0 also drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the
 * thread's effective set; setting it back to 0 restores them.
 */

/* The thread's fsuid and fsgid into ids[0..1]; its groups into groups (at most its length) and
 * their count as the result, or -errno. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_ops_FileCredentials_current0(
    JNIEnv *env, jclass cls, jintArray ids, jintArray groups) {
  (void)cls;
  if ((*env)->GetArrayLength(env, ids) < 2) {
    return -EINVAL;
  }
  jint now[2] = {(jint)syscall(SYS_setfsuid, -1), (jint)syscall(SYS_setfsgid, -1)};
  (*env)->SetIntArrayRegion(env, ids, 0, 2, now);
  jsize max = (*env)->GetArrayLength(env, groups);
  gid_t *list = calloc((size_t)max + 1, sizeof(gid_t));
  if (list == NULL) {
    return -ENOMEM;
  }
  long n = syscall(SYS_getgroups, (int)max, list);
  if (n < 0) {
    int err = errno;
    free(list);
    return -err;
  }
  (*env)->SetIntArrayRegion(env, groups, 0, (jsize)n, (jint *)list);
  free(list);
  return (jint)n;
}

/* Sets the thread's groups (the first count of groups), fsgid and fsuid, in that order (or, when
 * back, fsuid first: the rights to set the others come back with fsuid 0), and checks that each
 * took: 0, or -errno (-EPERM if one did not take). */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_ops_FileCredentials_set0(
    JNIEnv *env, jclass cls, jint uid, jint gid, jintArray groups, jint count, jboolean back) {
  (void)cls;
  if (count < 0 || count > (*env)->GetArrayLength(env, groups)) {
    return -EINVAL;
  }
  if (back) {
    syscall(SYS_setfsuid, (uid_t)uid);
    if ((jint)syscall(SYS_setfsuid, -1) != uid) {
      return -EPERM;
    }
  }
  gid_t *list = calloc((size_t)count + 1, sizeof(gid_t));
  if (list == NULL) {
    return -ENOMEM;
  }
  (*env)->GetIntArrayRegion(env, groups, 0, count, (jint *)list);
  long r = syscall(SYS_setgroups, (size_t)count, list);
  int err = errno;
  free(list);
  if (r < 0) {
    return -err;
  }
  syscall(SYS_setfsgid, (gid_t)gid);
  if ((jint)syscall(SYS_setfsgid, -1) != gid) {
    return -EPERM;
  }
  if (!back) {
    syscall(SYS_setfsuid, (uid_t)uid);
    if ((jint)syscall(SYS_setfsuid, -1) != uid) {
      return -EPERM;
    }
  }
  return 0;
}

/* The half of io.granule.engine.internal.repo.blob.LocalBlobStore's birth0: statx of the
 * NUL-terminated path (links followed) into out: st_dev (as stat gives it), inode number, birth
 * time seconds and nanoseconds. 1 if the file system told the birth time, 0 if it did not (out[2]
 * and out[3] are then 0), or -errno. One call, so the four name one file. */
#include <sys/sysmacros.h>
#include "io_granule_engine_internal_repo_blob_LocalBlobStore.h"
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_repo_blob_LocalBlobStore_birth0(
    JNIEnv *env, jclass cls, jbyteArray path, jlongArray out) {
  (void)cls;
  char *p = copy_path(env, path);
  if (p == NULL) {
    return -ENOMEM;
  }
  struct statx sx;
  memset(&sx, 0, sizeof sx);
  int r = statx(AT_FDCWD, p, AT_STATX_SYNC_AS_STAT, STATX_INO | STATX_BTIME, &sx);
  int err = errno;
  free(p);
  if (r < 0) {
    return -err;
  }
  if (!(sx.stx_mask & STATX_INO)) {
    return -EOPNOTSUPP;
  }
  int born = (sx.stx_mask & STATX_BTIME) != 0;
  jlong v[4];
  v[0] = (jlong)makedev(sx.stx_dev_major, sx.stx_dev_minor);
  v[1] = (jlong)sx.stx_ino;
  v[2] = born ? (jlong)sx.stx_btime.tv_sec : 0;
  v[3] = born ? (jlong)sx.stx_btime.tv_nsec : 0;
  (*env)->SetLongArrayRegion(env, out, 0, 4, v);
  return born;
}

/* statfs of the NUL-terminated path into out: f_type, then f_fsid's two words (as unsigned); 0, or
 * -errno. The half of LocalBlobStore's fileSystemPlace. */
#include <sys/vfs.h>
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_repo_blob_LocalBlobStore_fsid0(
    JNIEnv *env, jclass cls, jbyteArray path, jlongArray out) {
  (void)cls;
  char *p = copy_path(env, path);
  if (p == NULL) {
    return -ENOMEM;
  }
  struct statfs sf;
  int r = statfs(p, &sf);
  int err = errno;
  free(p);
  if (r < 0) {
    return -err;
  }
  jlong v[3];
  v[0] = (jlong)(unsigned long)sf.f_type;
  v[1] = (jlong)(unsigned int)sf.f_fsid.__val[0];
  v[2] = (jlong)(unsigned int)sf.f_fsid.__val[1];
  (*env)->SetLongArrayRegion(env, out, 0, 3, v);
  return 0;
}

/* The half of io.granule.engine.internal.repo.blob.DirectIo: large I/O buffers backed by
 * transparent huge pages. A direct read or write pins every page of its buffer (get_user_pages)
 * and unpins it when done, one page at a time; in 2 MiB pages that is 512 times fewer, and a first
 * touch faults once per 2 MiB instead of once per 4 KiB. The JDK's direct buffers come from
 * malloc, zeroed (every page touched) before they could be advised. */
#include <stdint.h>
#include <sys/mman.h>
#include "io_granule_engine_internal_repo_blob_DirectIo.h"

#define HUGE_ALIGN ((size_t)2 << 20)

/* A new anonymous mapping of length bytes (a multiple of 2 MiB) at an address aligned to 2 MiB,
 * advised MADV_HUGEPAGE (an advice only: where transparent huge pages are off it is plain memory),
 * as a direct ByteBuffer; NULL (no exception pending) if it could not be mapped. */
JNIEXPORT jobject JNICALL Java_io_granule_engine_internal_repo_blob_DirectIo_mapHuge0(JNIEnv *env,
                                                                                    jclass cls,
                                                                                    jlong length) {
  (void)cls;
  size_t len = (size_t)length;
  if (length <= 0 || len % HUGE_ALIGN != 0) {
    return NULL;
  }
  size_t span = len + HUGE_ALIGN;
  char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return NULL;
  }
  char *a = (char *)(((uintptr_t)p + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1));
  if (a > p) {
    munmap(p, (size_t)(a - p));
  }
  if (a + len < p + span) {
    munmap(a + len, (size_t)(p + span - (a + len)));
  }
  madvise(a, len, MADV_HUGEPAGE); /* an advice: its failure leaves plain pages */
  jobject b = (*env)->NewDirectByteBuffer(env, a, length);
  if (b == NULL) {
    munmap(a, len);
  }
  return b;
}

/* munmap(address, length) of a mapping from mapHuge0: 0, or -errno. */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_repo_blob_DirectIo_unmap0(JNIEnv *env,
                                                                               jclass cls,
                                                                               jlong address,
                                                                               jlong length) {
  (void)env;
  (void)cls;
  return munmap((void *)(uintptr_t)address, (size_t)length) < 0 ? -errno : 0;
}

/* The address of a direct buffer (for unmap0 once the buffer is unreachable). */
JNIEXPORT jlong JNICALL Java_io_granule_engine_internal_repo_blob_DirectIo_address0(JNIEnv *env,
                                                                                  jclass cls,
                                                                                  jobject buffer) {
  (void)cls;
  return (jlong)(uintptr_t)(*env)->GetDirectBufferAddress(env, buffer);
}
