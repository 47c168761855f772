package io.granule.engine.internal.repo.lock;

import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.ForwardingBlobStore;
import java.io.IOException;
import java.time.Duration;

/**
 * Checks a held {@link Lock} before every save and delete, so an operation whose lock was lost
 * (removed by {@code unlock --remove-all}, or unrefreshed for too long) stops before it writes or
 * deletes anything more; reads pass through. Before a commit (a snapshot manifest or an index blob)
 * it also asks the store whether the lock blob is still there ({@link Lock#confirm}), and before a
 * delete at most every {@link #CONFIRM_DELETES_EVERY}: a backup whose lock someone removed, and
 * whose data a prune may then have deleted, fails rather than saving a snapshot that names it.
 */
public final class LockCheckingBlobStore extends ForwardingBlobStore {
  /** How often deletes (a prune deletes many packs) confirm the lock blob is still there. */
  static final Duration CONFIRM_DELETES_EVERY = Duration.ofSeconds(10);

  private final Lock lock;

  public LockCheckingBlobStore(BlobStore delegate, Lock lock) {
    super(delegate);
    this.lock = lock;
  }

  /** Checks the lock before saving {@code name}: a commit confirms it with the store. */
  private void beforeSave(BlobName name) throws IOException {
    if (name.type() == BlobType.SNAPSHOT || name.type() == BlobType.INDEX) {
      lock.confirm();
    } else {
      lock.check();
    }
  }

  /**
   * Confirms the lock once more after a snapshot is saved: a save that took long (a slow or retried
   * upload) left a window in which the lock could be removed and a prune delete the data the
   * snapshot names, and the backup reported success. Then the snapshot is deleted again and the
   * backup fails: a backup that must be run again, never a damaged snapshot called saved. A store
   * that cannot answer is treated the same way (the snapshot is removed if it can be).
   */
  private void afterSave(BlobName name) throws IOException {
    if (name.type() != BlobType.SNAPSHOT) {
      return;
    }
    try {
      lock.confirm();
    } catch (io.granule.engine.internal.repo.RepositoryLockedException e) {
      String removal;
      try {
        delegate.delete(name);
        removal = " was saved meanwhile and removed again";
      } catch (IOException | RuntimeException gone) {
        e.addSuppressed(gone);
        removal =
            " was saved meanwhile and could not be removed again ("
                + gone.getMessage()
                + "): `granule forget` it";
      }
      throw new io.granule.engine.internal.repo.RepositoryLockedException(
          e.getMessage()
              + "; snapshot "
              + name
              + removal
              + ", since a prune may have deleted data it names: run the backup again",
          e);
    } catch (IOException e) {
      // the store could not say whether the lock is still there: the snapshot cannot be called
      // safe, so the backup fails, and leaves no snapshot if the store lets it be removed
      boolean removed = false;
      try {
        delegate.delete(name);
        removed = true;
      } catch (IOException | RuntimeException gone) {
        e.addSuppressed(gone);
      }
      throw new IOException(
          "snapshot "
              + name
              + " was saved, but whether this operation's lock held through the save could not be"
              + " checked ("
              + e.getMessage()
              + (removed
                  ? "): it was removed again; run the backup again"
                  : "), nor could it be removed: check it with `granule verify --read-data` before"
                      + " relying on it, or `granule forget` it"),
          e);
    }
  }

  @Override
  public void save(BlobName name, java.nio.channels.FileChannel file, long length)
      throws IOException {
    beforeSave(name);
    delegate.save(name, file, length);
    afterSave(name);
  }

  @Override
  public void saveNew(BlobName name, byte[] data) throws IOException {
    beforeSave(name);
    delegate.saveNew(name, data);
    afterSave(name);
  }

  @Override
  public void save(BlobName name, byte[] data) throws IOException {
    beforeSave(name);
    delegate.save(name, data);
    afterSave(name);
  }

  @Override
  public void save(BlobName name, java.nio.ByteBuffer data) throws IOException {
    beforeSave(name);
    delegate.save(name, data);
    afterSave(name);
  }

  @Override
  public void save(BlobName name, java.nio.ByteBuffer data, Runnable released) throws IOException {
    beforeSave(name);
    delegate.save(name, data, released);
    afterSave(name);
  }

  @Override
  public void delete(BlobName name) throws IOException {
    lock.confirmEvery(CONFIRM_DELETES_EVERY);
    delegate.delete(name);
  }
}
