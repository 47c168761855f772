package io.granule.engine.spi;

/** What a {@link FileNode} is. */
public enum FileKind {
  /** A regular file: {@link FileSystem#read} returns its bytes. */
  FILE,
  /** A directory: {@link FileSystem#list} returns its entries. */
  DIRECTORY,
  /** A symbolic link: {@link FileSystem#readLink} returns its target. */
  SYMLINK,
  /** Anything else: a device node, a FIFO, a socket, or a type the reader does not know. */
  OTHER
}
