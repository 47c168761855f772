package io.granule.engine.internal.ops;

import io.granule.engine.internal.repo.Hex;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.SourceUnreadableException;
import io.granule.engine.internal.repo.backup.BackupRequest.Changes;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.spi.ChangeTracking;
import io.granule.engine.spi.Extent;
import java.io.IOException;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Changed-block tracking for one backup, from bitmaps kept in the images (qcow2 persistent dirty
 * bitmaps). The protocol, which never misses a change:
 *
 * <ol>
 *   <li>Before anything is read, create a new, empty, enabled bitmap {@code granule-RANDOM} in the
 *       image: from then on every write is recorded in it.
 *   <li>Find the parent: the newest snapshot in the repository from the same host with a disk of
 *       the same name that recorded a bitmap ({@code changeTracking}). Trust that bitmap only if it
 *       is still in the image, is a dirty-tracking bitmap, enabled, not in use, in an image whose
 *       bitmap metadata is consistent, and the disk's size and the chunk size equal the parent's.
 *       It was created before the parent read the disk, so every write since then is in it: chunks
 *       it shows clean keep the parent's chunk ids and are not read. Otherwise (no parent, bitmap
 *       gone or doubtful): read everything.
 *   <li>Record the new bitmap's name in the new snapshot's disk entry.
 *   <li>After the snapshot is written, remove the parent's bitmap (it is no longer needed: the next
 *       backup starts from the new one). If the backup failed, remove the new bitmap instead and
 *       keep the parent's, which still covers every change since the parent.
 * </ol>
 *
 * <p>A disk that cannot be tracked because the identity its image was opened with cannot write it
 * (a user's read-only image; root's image opened as a user) is read in full and recorded as
 * untracked; the backup of the other disks goes on. The next backup of that disk reads it in full
 * too (no bitmap of a snapshot older than the untracked one is trusted) and, once a bitmap can be
 * created again, tracking resumes from it.
 *
 * <p>A crash between writing the snapshot and removing the old bitmap leaves a stale bitmap behind
 * (harmless; remove it with {@code qemu-img bitmap --remove}). Creating and removing bitmaps
 * modifies the image file, so it is done only when asked ({@code --cbt}) and fails for an image a
 * running VM holds.
 */
final class ChangeTrackingPlan {
  private static final Logger LOG = LoggerFactory.getLogger(ChangeTrackingPlan.class);
  private static final SecureRandom RANDOM = new SecureRandom();

  private record Tracked(String disk, ChangeTracking tracking, String created, String old) {}

  private final List<NamedDisk> disks;
  private final List<Tracked> tracked;
  private final List<String> notes;
  private final String parent;

  private ChangeTrackingPlan(
      List<NamedDisk> disks, List<Tracked> tracked, List<String> notes, String parent) {
    this.disks = disks;
    this.tracked = tracked;
    this.notes = notes;
    this.parent = parent;
  }

  /**
   * Creates the new bitmaps and works out, for each disk, what changed since its parent.
   *
   * <p>A disk whose image the identity it was opened with cannot write (no bitmap can be created)
   * is read in full, untracked, with a note, and its snapshot entry says so ({@code untracked}):
   * the next backup of it reads it in full again rather than trust an older bitmap.
   *
   * @throws SourceUnreadableException if a bitmap cannot be created for another reason (the image
   *     is in use, damaged, or qemu-img is missing); bitmaps already created are removed
   */
  static ChangeTrackingPlan prepare(Repository repository, List<NamedDisk> named, String host) {
    return prepare(repository, named, host, java.util.Map.of());
  }

  /**
   * As {@link #prepare(Repository, List, String)}, leaving the disks {@code untrackable} names
   * alone (read in full, no bitmap created or removed), with the reason for each.
   */
  static ChangeTrackingPlan prepare(
      Repository repository,
      List<NamedDisk> named,
      String host,
      java.util.Map<String, String> untrackable) {
    List<Manifest> snapshots = new ArrayList<>(repository.snapshots());
    snapshots.sort(Comparator.comparing(Manifest::time).reversed());
    List<NamedDisk> out = new ArrayList<>();
    List<Tracked> tracked = new ArrayList<>();
    List<String> notes = new ArrayList<>();
    String parentId = null;
    try {
      for (NamedDisk d : named) {
        ChangeTracking ct = d.image().changeTracking();
        String refused = untrackable.get(d.name());
        if (ct != null && refused != null) {
          notes.add("disk '" + d.name() + "': no change tracking, read in full: " + refused);
          out.add(new NamedDisk(d.name(), d.image(), null, null, refused));
          continue;
        }
        if (ct == null) {
          notes.add(
              "disk '"
                  + d.name()
                  + "': "
                  + d.image().format()
                  + " images carry no change tracking; read in full");
          out.add(d);
          continue;
        }
        String created = "granule-" + token();
        try {
          ct.create(created);
        } catch (java.nio.file.AccessDeniedException e) {
          // the identity the image was opened with cannot write it (a user made his image
          // read-only, or root's image sits where it is opened as a user): this disk goes
          // untracked, the others are not held hostage to it
          String reason = "cannot create a bitmap: " + e.getReason();
          String note =
              "disk '"
                  + d.name()
                  + "': not tracked, read in full: image '"
                  + e.getFile()
                  + "': "
                  + e.getReason()
                  + "; to track it, its users must let it be (make it writable by them, for a"
                  + " user's image its owner: chmod u+w; release it from a VM holding it; repair"
                  + " its bitmaps), or keep root's images where only root can write";
          LOG.warn("{}", note);
          notes.add(note);
          out.add(new NamedDisk(d.name(), d.image(), null, null, reason));
          continue;
        } catch (IOException e) {
          throw new SourceUnreadableException(
              "disk '"
                  + d.name()
                  + "': unable to create change-tracking bitmap "
                  + created
                  + ": "
                  + e.getMessage(),
              e);
        }
        Manifest parent = null;
        Manifest.DiskEntry pe = null;
        Manifest untrackedIn = null;
        for (Manifest m : snapshots) {
          Manifest.DiskEntry e = m.disk(d.name());
          if (!host.equals(m.host()) || e == null) {
            continue;
          }
          if (e.untracked() != null && untrackedIn == null) {
            // read untracked after the older bitmap was made: go no further back than it
            untrackedIn = m;
          }
          if (e.changeTracking() != null) {
            parent = m;
            pe = e;
            break;
          }
        }
        Changes changes = null;
        String why = null;
        if (untrackedIn != null) {
          // the older bitmap is this repository's: removed after this backup
          why =
              "snapshot "
                  + untrackedIn.id().substring(0, 12)
                  + " could not track it ("
                  + untrackedIn.disk(d.name()).untracked()
                  + "); no older bitmap is trusted";
          parent = null;
        } else if (parent == null) {
          why = "no earlier snapshot of it from host " + host + " was made with change tracking";
        } else if (pe.size() != d.image().size()) {
          why = "its size changed since snapshot " + parent.id().substring(0, 12);
        } else if (pe.chunkSize() != repository.config().chunkSize()) {
          why = "the chunk size changed since snapshot " + parent.id().substring(0, 12);
        } else {
          String bitmap = pe.changeTracking();
          try {
            List<ChangeTracking.Bitmap> present = ct.bitmaps();
            ChangeTracking.Bitmap b =
                present.stream().filter(x -> x.name().equals(bitmap)).findFirst().orElse(null);
            if (b == null) {
              why =
                  "bitmap "
                      + bitmap
                      + " of snapshot "
                      + parent.id().substring(0, 12)
                      + " is not in the image (removed, or the image was replaced; it has "
                      + (present.isEmpty()
                          ? "no bitmaps"
                          : "bitmaps "
                              + String.join(
                                  ", ", present.stream().map(ChangeTracking.Bitmap::name).toList()))
                      + ")";
            } else if (!b.usable()) {
              why = "bitmap " + bitmap + " cannot be trusted: " + b.why();
            } else {
              List<Extent> changed = ct.changed(bitmap);
              changes =
                  new Changes(
                      parent.id(),
                      repository.fixedIndex(parent, d.name()),
                      changed,
                      "bitmap " + bitmap);
              parentId = parentId == null ? parent.id() : parentId;
              long bytes = changed.stream().mapToLong(Extent::length).sum();
              notes.add(
                  String.format(
                      java.util.Locale.ROOT,
                      "disk '%s': %d bytes changed since snapshot %s (bitmap %s); reading only"
                          + " those",
                      d.name(),
                      bytes,
                      parent.id().substring(0, 12),
                      bitmap));
            }
          } catch (IOException | RepositoryException e) {
            why = "the parent's bitmap or index is unreadable: " + e.getMessage();
            changes = null;
          }
        }
        if (why != null) {
          notes.add("disk '" + d.name() + "': read in full: " + why);
        }
        tracked.add(new Tracked(d.name(), ct, created, pe == null ? null : pe.changeTracking()));
        out.add(new NamedDisk(d.name(), d.image(), changes, created));
      }
    } catch (RuntimeException e) {
      for (Tracked t : tracked) {
        removeQuietly(t.tracking(), t.created());
      }
      throw e;
    }
    return new ChangeTrackingPlan(out, tracked, notes, parentId);
  }

  private static String token() {
    byte[] b = new byte[8];
    RANDOM.nextBytes(b);
    return Hex.encode(b);
  }

  /** The disks, with their changes and the bitmap to record. */
  List<NamedDisk> disks() {
    return disks;
  }

  /** What to tell a person. */
  List<String> notes() {
    return notes;
  }

  /** The parent snapshot to record, or null if every disk was read in full. */
  String parent() {
    return parent;
  }

  /**
   * After the backup: on success remove the parents' bitmaps, on failure the new ones. Never
   * throws; returns what a person should know.
   */
  List<String> finish(boolean succeeded) {
    List<String> out = new ArrayList<>();
    for (Tracked t : tracked) {
      String remove = succeeded ? t.old() : t.created();
      if (remove == null || !remove.startsWith("granule-")) {
        continue;
      }
      if (!removeQuietly(t.tracking(), remove)) {
        out.add(
            "disk '"
                + t.disk()
                + "': bitmap "
                + remove
                + " could not be removed; remove it with qemu-img bitmap --remove IMAGE "
                + remove);
      }
    }
    return out;
  }

  private static boolean removeQuietly(ChangeTracking ct, String name) {
    try {
      ct.remove(name);
      return true;
    } catch (IOException | RuntimeException e) {
      LOG.warn("unable to remove bitmap {}: {}", name, e.getMessage());
      return false;
    }
  }
}
