package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryConfig;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.RepositoryLockedException;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.blob.PrefetchingBlobStore;
import io.granule.engine.internal.repo.blob.RetryingBlobStore;
import io.granule.engine.internal.repo.blob.S3BlobStore;
import io.granule.engine.internal.repo.blob.S3Location;
import io.granule.engine.internal.repo.crypto.KdfParams;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.lock.LockManager;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.Optional;
import picocli.CommandLine.Option;

/**
 * {@code --repo LOCATION} (default {@code $GRANULE_REPO}): a directory, or {@code
 * s3:http(s)://HOST[:PORT]/BUCKET/PREFIX} / {@code s3:BUCKET/PREFIX}; and {@code --password-file
 * FILE} (default {@code $GRANULE_PASSWORD}, then a prompt).
 */
public final class RepoOption {
  @Option(
      names = "--repo",
      paramLabel = "LOCATION",
      defaultValue = "${env:GRANULE_REPO}",
      description =
          "Repository: a directory, or s3:https://HOST[:PORT]/BUCKET/PREFIX (any S3-compatible"
              + " server, path-style) or s3:BUCKET/PREFIX (AWS); credentials and region from the"
              + " AWS default chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_REGION, ...)."
              + " Default: $GRANULE_REPO.")
  String repo;

  @Option(
      names = "--password-file",
      paramLabel = "FILE",
      description =
          "Read the repository password from the first line of FILE. Without it the password"
              + " comes from $GRANULE_PASSWORD, else it is asked on the terminal.")
  Path passwordFile;

  @Option(
      names = "--retry-lock",
      paramLabel = "DURATION",
      defaultValue = "0",
      converter = DurationConverter.class,
      description =
          "If another process holds a conflicting repository lock, keep trying for DURATION"
              + " (e.g. 30s, 10m) instead of failing at once (exit code 9).")
  Duration retryLock;

  String location() {
    if (repo == null || repo.isEmpty()) {
      throw new CommandException(
          ExitCodes.USAGE, "no repository given: use --repo LOCATION or set GRANULE_REPO");
    }
    return repo;
  }

  boolean remote() {
    return S3Location.matches(location());
  }

  /** The directory of a local repository. */
  Path path() {
    return Path.of(location());
  }

  /** What to show as the location in messages. */
  String describe() {
    return remote() ? location() : path().toAbsolutePath().toString();
  }

  private BlobStore remoteStore() {
    S3Location where;
    try {
      where = S3Location.parse(location());
    } catch (IllegalArgumentException e) {
      throw new CommandException(ExitCodes.USAGE, e.getMessage(), e);
    }
    BlobStore s3 = RetryingBlobStore.withDefaults(S3BlobStore.open(where));
    // A raw restore's read-ahead hints ranges of packs: one GET per range, not one per chunk.
    long budget = Long.getLong("granule.s3.prefetch-bytes", PrefetchingBlobStore.DEFAULT_BUDGET);
    return budget > 0
        ? new PrefetchingBlobStore(
            s3,
            budget,
            PrefetchingBlobStore.DEFAULT_MAX_RANGE,
            PrefetchingBlobStore.DEFAULT_THREADS)
        : s3;
  }

  /** Where metadata of remote repositories is cached: $XDG_CACHE_HOME/granule, ~/.cache/granule. */
  static Path metadataCache(CliContext ctx) {
    return metadataCache(ctx.env());
  }

  /** {@link #metadataCache(CliContext)} from an environment. */
  public static Path metadataCache(java.util.function.Function<String, String> env) {
    String xdg = env.apply("XDG_CACHE_HOME");
    if (xdg != null
        && xdg.startsWith("/")) { // a relative one is ignored (XDG), as the launcher does
      return Path.of(xdg, "granule");
    }
    return Path.of(System.getProperty("user.home"), ".cache", "granule");
  }

  /** Opens the repository, asking for its password only if it is encrypted. */
  Repository open(CliContext ctx) {
    Repository r =
        remote()
            ? Repository.open(
                remoteStore(),
                Clock.systemUTC(),
                Repository.defaultCacheDir(),
                Passwords.forOpen(ctx, passwordFile),
                metadataCache(ctx))
            : Repository.open(path(), Passwords.forOpen(ctx, passwordFile), metadataCache(ctx));
    if (!remote()) {
      refuseOthersUnencrypted(ctx.env(), java.util.Set.of(), r);
      warnIfOthersCanWrite(ctx, path());
    }
    return keepIndex(ctx, r);
  }

  /** The variable naming the users whose unencrypted repositories are used as they are. */
  static final String UNENCRYPTED_OWNERS = "GRANULE_UNENCRYPTED_OWNERS";

  /**
   * The variable naming unencrypted repositories (paths, colon-separated) used as they are, whoever
   * owns or can write them: narrower than {@link #UNENCRYPTED_OWNERS}, which trusts every
   * repository of a user (audit J5).
   */
  static final String UNENCRYPTED_REPOS = "GRANULE_UNENCRYPTED_REPOS";

  /**
   * Refuses (exit code 5, nothing written) an unencrypted repository that another user holds: he
   * owns its directory or config (not root), a group with other members than this user (or
   * everyone) can write either, or its config has a second name ({@link BlobStore#foreign}); unless
   * {@code $GRANULE_UNENCRYPTED_REPOS} names the repository, or {@code $GRANULE_UNENCRYPTED_OWNERS}
   * the owner's uid. Only someone who can write the directory above a repository can put his own in
   * its place, and what he puts there is his, or one he can write: every way of doing it the pins
   * missed (a relative --repo from a directory entered through his link with {@code $PWD} gone, a
   * directory made anew on XFS or tmpfs mounted elsewhere, a group-shared repository's directory
   * moved into place, audit15 H, audit J1) stored the user's backups in the clear in it. {@code
   * alsoTrusted}: uids whose repositories are used as they are besides (a server's API users).
   */
  public static void refuseOthersUnencrypted(
      java.util.function.Function<String, String> env,
      java.util.Set<Integer> alsoTrusted,
      Repository r) {
    if (r.config().encrypted()) {
      return;
    }
    BlobStore.Foreign f = r.store().foreign();
    String where = LocalBlobStore.logicalAbsolute(Path.of(r.store().location())).toString();
    if (f == null || (f.uid() >= 0 && alsoTrusted.contains(f.uid())) || trusted(env, f, where)) {
      return;
    }
    r.close();
    throw new io.granule.engine.internal.repo.RepositoryCorruptedException(
        "the repository at '"
            + where
            + "' is not encrypted and "
            + f.why()
            + ": whoever can write a directory above yours could have put it in its place, and"
            + " what you back up would be stored there in the clear; nothing was written. If you"
            + " use it on purpose, "
            + advice(f, where));
  }

  /**
   * Refuses (exit code 5, nothing made) to make an unencrypted repository in existing directory
   * {@code dir} that another user holds ({@link LocalBlobStore#foreignDirectory}): every later
   * command would refuse it (audit J4).
   */
  static void refuseUnencryptedInit(java.util.function.Function<String, String> env, Path dir) {
    if (java.nio.file.Files.exists(
        dir.resolve("config"), java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      return; // a repository is there: init says so (exit code 3), which is the news
    }
    BlobStore.Foreign f;
    try {
      f = LocalBlobStore.foreignDirectory(dir);
    } catch (java.io.IOException | RuntimeException e) {
      return; // not there (init makes it), or not Linux
    }
    String where = LocalBlobStore.logicalAbsolute(dir).toString();
    if (f == null || trusted(env, f, where)) {
      return;
    }
    throw new io.granule.engine.internal.repo.RepositoryCorruptedException(
        "will not make an unencrypted repository in '"
            + where
            + "': "
            + f.why()
            + ", so every later command would refuse it (someone else could have put his own in"
            + " its place, and your backups would be stored there in the clear); nothing was made."
            + " Make it in a directory only you can write, encrypt it, or, if you share it on"
            + " purpose, "
            + advice(f, where));
  }

  /** Whether the environment trusts repository {@code where}, or the owner {@code f} names. */
  private static boolean trusted(
      java.util.function.Function<String, String> env, BlobStore.Foreign f, String where) {
    return trustedPath(env.apply(UNENCRYPTED_REPOS), where)
        || (f.uid() >= 0 && trusted(env.apply(UNENCRYPTED_OWNERS), f.uid()));
  }

  /** How to use repository {@code where}, which {@code f} holds, on purpose. */
  private static String advice(BlobStore.Foreign f, String where) {
    if (f.secondName()) {
      // "cp config config" refuses ("are the same file"); an init stopped between its link and
      // its unlink leaves a .tmp-config-* name beside it (audit J3)
      return "give its config a single name: delete a .tmp-config-* file beside it (left by an"
          + " init that was stopped), or run 'cp config config.new && mv config.new config' in"
          + " it";
    }
    String repos = UNENCRYPTED_REPOS + "=" + where;
    return "set "
        + repos
        + (f.uid() >= 0
            ? " (paths, colon-separated), or " + UNENCRYPTED_OWNERS + "=" + f.uid() + " (uids)"
            : " (paths, colon-separated)")
        + " in granule's environment (with sudo: sudo "
        + repos
        + " granule ...; a server's: in its environment"
        + (f.uid() >= 0 ? ", or --api-users" : "")
        + ")";
  }

  /** Whether {@code list} ("/srv/a:/srv/b") names repository {@code where} (normalized). */
  static boolean trustedPath(String list, String where) {
    if (list == null) {
      return false;
    }
    for (String p : list.split(":")) {
      try {
        if (!p.isBlank() && Path.of(p.trim()).normalize().toString().equals(where)) {
          return true;
        }
      } catch (java.nio.file.InvalidPathException e) {
        // not a path: names nothing
      }
    }
    return false;
  }

  /** Whether {@code list} ("1001,1002") names {@code uid}. */
  static boolean trusted(String list, int uid) {
    if (list == null) {
      return false;
    }
    for (String u : list.split(",")) {
      if (u.trim().equals(Integer.toString(uid))) {
        return true;
      }
    }
    return false;
  }

  /**
   * Warns if another user (not root) owns the repository or one of its directories, or everyone can
   * write one: whoever can write it can delete, withhold or roll back backups, and (by rewriting
   * its config for a client that never opened it encrypted) have new ones written in the clear. A
   * group-writable repository (a backup group) is not warned about.
   */
  static void warnIfOthersCanWrite(CliContext ctx, Path repo) {
    int self = io.granule.engine.internal.net.PeerUser.self();
    for (String sub : new String[] {"", "config", "keys", "data", "index", "snapshots", "locks"}) {
      Path p = sub.isEmpty() ? repo : repo.resolve(sub);
      try {
        java.util.Map<String, Object> a =
            sub.isEmpty() // the repository named through a link is the directory it names
                ? java.nio.file.Files.readAttributes(p, "unix:uid,mode")
                : java.nio.file.Files.readAttributes(
                    p, "unix:uid,mode", java.nio.file.LinkOption.NOFOLLOW_LINKS);
        int owner = (Integer) a.get("uid");
        int mode = (Integer) a.get("mode");
        boolean link = (mode & 0170000) == 0120000;
        String why =
            owner != 0 && owner != self
                ? "is owned by uid " + owner
                : link
                    ? "is a symbolic link (to " + java.nio.file.Files.readSymbolicLink(p) + ")"
                    : (mode & 0002) != 0 ? "can be written by every user" : null;
        if (why != null) {
          ctx.err()
              .println(
                  "warning: "
                      + p
                      + " "
                      + why
                      + ": whoever can write the repository can delete, withhold or roll back"
                      + " its backups; keep it writable by you (and a backup group) only");
          ctx.err().flush();
          return;
        }
      } catch (java.io.IOException | UnsupportedOperationException e) {
        // not there (yet): nothing to say
      }
    }
  }

  /** {@code r}, its chunk index kept between runs in its directory of the user's cache. */
  private static Repository keepIndex(CliContext ctx, Repository r) {
    return r.keepIndexUnder(metadataCache(ctx));
  }

  /**
   * Opens the repository and takes a {@code kind} lock for {@code operation} (waiting up to
   * --retry-lock), released when the repository is closed or the process exits.
   */
  Repository open(CliContext ctx, LockKind kind, String operation) {
    Repository r = open(ctx);
    try {
      r.lock(kind, operation, retryLock == null ? Duration.ZERO : retryLock);
      return r;
    } catch (RepositoryException e) {
      if (kind == LockKind.SHARED
          && READ_ONLY.contains(operation)
          && !(e instanceof RepositoryLockedException)
          && LockManager.unwritable(e)) {
        // A full or read-only repository (a full disk, a read-only mount or snapshot, read-only
        // S3 credentials) must still restore: its lock cannot be written, and a prune could not
        // take its own either. One this user may not write but another may: not while a prune
        // runs there.
        try {
          r.locks()
              .awaitNoExclusive(
                  operation,
                  retryLock == null ? Duration.ZERO : retryLock,
                  LockManager.readOnlyMedium(e)
                      // a read-only bind mount of a live repository: pruned through another
                      && (remote() || LockManager.fileSystemReadOnly(path())));
        } catch (RuntimeException locked) {
          r.close();
          throw locked;
        }
        r.readingWithoutLock();
        unlocked = r;
        ctx.err()
            .println(
                "warning: "
                    + e.getMessage()
                    + ": continuing without a lock, since "
                    + operation
                    + " only reads (do not prune this repository until it is done)");
        ctx.err().flush();
        return r;
      }
      r.close();
      throw e;
    } catch (RuntimeException e) {
      r.close();
      throw e;
    }
  }

  /**
   * The repository {@link #open} opened without a lock, if it did (see {@link
   * #changedWhileUnlocked}).
   */
  Repository unlocked;

  /**
   * Why damage a read without a lock met may not be damage (a prune elsewhere removed data
   * meanwhile), if so; empty for a locked read.
   */
  Optional<String> changedWhileUnlocked() {
    Repository r = unlocked;
    return r == null ? Optional.empty() : r.changedWhileUnlocked();
  }

  /** Operations that only read the repository: they run unlocked where no lock can be written. */
  private static final java.util.Set<String> READ_ONLY =
      java.util.Set.of(
          "verify",
          "ls",
          "restore",
          "restore table",
          "serve nbd",
          "catalog",
          RepairCommand.DRY_RUN);

  /** Creates the repository, encrypted under {@code password} unless it is null. */
  Repository init(CliContext ctx, RepositoryConfig cfg, char[] password) {
    if (remote()) {
      return keepIndex(
          ctx,
          Repository.init(
              remoteStore(),
              cfg,
              Clock.systemUTC(),
              Repository.defaultCacheDir(),
              password,
              KdfParams.DEFAULT,
              metadataCache(ctx)));
    }
    if (password == null) {
      refuseUnencryptedInit(ctx.env(), path());
    }
    boolean existed = java.nio.file.Files.exists(path(), java.nio.file.LinkOption.NOFOLLOW_LINKS);
    Repository r = Repository.init(path(), cfg, password, metadataCache(ctx));
    if (password == null) {
      try {
        // what every later command checks: a directory's default ACL gave another user write
        // access to what init made, and every command refused the new repository (audit L8)
        refuseOthersUnencrypted(ctx.env(), java.util.Set.of(), r);
      } catch (io.granule.engine.internal.repo.RepositoryCorruptedException e) {
        r.close();
        String removed = removeMade(path(), existed);
        throw new io.granule.engine.internal.repo.RepositoryCorruptedException(
            "made an unencrypted repository that every command would refuse, so "
                + removed
                + ": "
                + e.getMessage()
                + " (a default ACL of the directory it is in passes write access on to what is"
                + " made there: 'getfacl' shows it; remove it with 'setfacl -k', or choose"
                + " another place)",
            e);
      }
    }
    warnIfOthersCanWrite(ctx, path());
    return keepIndex(ctx, r);
  }

  /**
   * Deletes what {@code init} just made in {@code dir} (the directory too, unless it {@code
   * existed}), links not followed; says what it did.
   */
  private static String removeMade(Path dir, boolean existed) {
    try (java.util.stream.Stream<Path> all = java.nio.file.Files.walk(dir)) {
      for (Path p : all.sorted(java.util.Comparator.reverseOrder()).toList()) {
        if (!p.equals(dir) || !existed) {
          java.nio.file.Files.deleteIfExists(p);
        }
      }
      return "it was removed again";
    } catch (java.io.IOException | RuntimeException e) {
      return "it is left there (removing it failed: " + e.getMessage() + ")";
    }
  }
}
