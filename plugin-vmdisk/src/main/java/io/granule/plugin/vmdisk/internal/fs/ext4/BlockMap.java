package io.granule.plugin.vmdisk.internal.fs.ext4;

import java.io.IOException;

/** Maps a file's logical blocks to volume blocks: an extent tree or an indirect block map. */
interface BlockMap {
  /** No physical block: a hole, or an unwritten extent; reads as zeros. */
  long HOLE = -1;

  /**
   * A run of logical blocks starting at the block asked for.
   *
   * @param physical the volume block of the first logical block, or {@link #HOLE}
   * @param length the number of blocks in the run, at least 1; holes may run to {@link
   *     Long#MAX_VALUE} when nothing is mapped after them
   */
  record Run(long physical, long length) {}

  /** The run that starts at logical block {@code logical}. */
  Run map(long logical) throws IOException;
}
