package io.granule.engine.internal.cli;

/** The CLI's exit codes. Stable: scripts depend on them. The table in README.md lists the same. */
public final class ExitCodes {
  /** The command did what was asked. */
  public static final int OK = 0;

  /** A failure none of the codes below describes (a bug or an unexpected I/O error). */
  public static final int FAILURE = 1;

  /** The command line is wrong: unknown command or option, missing or malformed argument. */
  public static final int USAGE = 2;

  /** The repository is missing, is not a repository, or has a newer format. */
  public static final int REPOSITORY = 3;

  /** A named snapshot, disk, object or plugin does not exist, or a prefix is ambiguous. */
  public static final int NOT_FOUND = 4;

  /** Damaged data: verify found damage, or a restore met a corrupted chunk. */
  public static final int DAMAGED = 5;

  /** A source (disk image, block device) cannot be read or its format is not recognised. */
  public static final int SOURCE = 6;

  /** A restore target cannot be written (exists, no space, no permission). */
  public static final int TARGET = 7;

  /** Wrong password or key. */
  public static final int AUTH = 8;

  /** Another process holds a conflicting repository lock. */
  public static final int LOCKED = 9;

  /** A plugin the operation needs is missing, or was updated or removed while it ran. */
  public static final int PLUGIN = 10;

  /** An application or filesystem could not be quiesced, frozen or thawed. */
  public static final int APPLICATION = 11;

  /** The server cannot listen on the address, or a server URL does not answer. */
  public static final int SERVER = 12;

  /**
   * A tool the operation needs is not installed, e.g. staging database binaries of the snapshot's
   * major version.
   */
  public static final int TOOL = 13;

  /** The runtime itself could not start (set by the launcher). */
  public static final int RUNTIME = 70;

  /** Interrupted (Ctrl-C). */
  public static final int INTERRUPTED = 130;

  private ExitCodes() {}
}
