package io.granule.engine.spi;

import java.time.Instant;
import java.util.Objects;

/**
 * A file, directory, symbolic link or other object of a {@link FileSystem}, with its attributes as
 * the filesystem records them. A value: it does not hold the filesystem open and reading it never
 * touches the disk.
 *
 * @param id the number that identifies the object within its filesystem (the inode number for ext4
 *     and XFS, the MFT record number for NTFS); hard links to one object share it
 * @param kind what the object is
 * @param size the length in bytes: the file's length, the symbolic link target's length, the
 *     directory's length as the filesystem records it
 * @param mode the permission bits with set-user-ID, set-group-ID and sticky ({@code 07777}), 0 when
 *     the filesystem records none
 * @param uid the owner's numeric user id, -1 when the filesystem records none
 * @param gid the owner's numeric group id, -1 when the filesystem records none
 * @param linkCount the number of directory entries that name the object, as recorded
 * @param modified the last content modification time (mtime)
 * @param accessed the last access time (atime), null when not recorded
 * @param changed the last attribute change time (ctime), null when not recorded
 * @param created the creation time, null when not recorded
 */
public record FileNode(
    long id,
    FileKind kind,
    long size,
    int mode,
    long uid,
    long gid,
    long linkCount,
    Instant modified,
    Instant accessed,
    Instant changed,
    Instant created) {

  public FileNode {
    Objects.requireNonNull(kind, "kind");
    Objects.requireNonNull(modified, "modified");
    if (size < 0) {
      throw new IllegalArgumentException("negative size " + size + " of file " + id);
    }
    if ((mode & ~07777) != 0) {
      throw new IllegalArgumentException("mode " + Integer.toOctalString(mode) + " of file " + id);
    }
  }

  /** True for {@link FileKind#DIRECTORY}. */
  public boolean isDirectory() {
    return kind == FileKind.DIRECTORY;
  }
}
