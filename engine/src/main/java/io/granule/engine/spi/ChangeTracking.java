package io.granule.engine.spi;

import java.io.IOException;
import java.util.List;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * Changed-block tracking kept inside a disk image: qcow2 persistent dirty bitmaps today. Lets an
 * incremental backup read only the ranges written since a named bitmap was created.
 *
 * <p>How the engine uses it so that no change is ever missed: before reading, it {@link #create
 * creates} a new bitmap; then it reads the old bitmap's {@link #changed} ranges and only those;
 * once the new snapshot is recorded, it {@link #remove removes} the old bitmap; on failure it
 * removes the new one. Anything that makes a bitmap doubtful ({@link Bitmap#usable} false) makes
 * the engine read everything.
 *
 * <p>Each call reads the image file afresh (creating or removing a bitmap rewrites its metadata),
 * through the file the image was opened as, never by its name again: the engine opens a user's
 * image as the users who can change it, and the name is theirs to swap afterwards. Programs run to
 * change the image run as that same identity, and only while the name still leads to the opened
 * file.
 */
@ConsumerType
public interface ChangeTracking {

  /**
   * One bitmap as the image records it.
   *
   * @param name its name
   * @param granularity bytes of the disk each bit covers
   * @param enabled whether writes are recorded in it
   * @param inUse whether a program had it open and did not store it back cleanly (its contents are
   *     then unknown)
   * @param usable whether its contents can be trusted: a dirty-tracking bitmap, enabled, not in
   *     use, in an image whose bitmap metadata is consistent
   * @param why why it is not usable, or null
   */
  record Bitmap(
      String name, long granularity, boolean enabled, boolean inUse, boolean usable, String why) {}

  /** The image's bitmaps. */
  List<Bitmap> bitmaps() throws IOException;

  /**
   * The ranges bitmap {@code name} marks as written, sorted, merged, clipped to the disk's size.
   *
   * @throws IOException if there is no such bitmap, it is not {@link Bitmap#usable}, or its data is
   *     damaged; the message says which
   */
  List<Extent> changed(String name) throws IOException;

  /**
   * Creates an enabled, empty bitmap named {@code name} that records every later write. Fails if
   * the image is in use by a running virtual machine (a live VM's bitmaps are managed through its
   * hypervisor).
   */
  void create(String name) throws IOException;

  /** Removes bitmap {@code name}; nothing happens if there is none. */
  void remove(String name) throws IOException;
}
