package io.granule.engine.internal.repo;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What this user's machine remembers of an encrypted repository: that it is encrypted, and the
 * SHA-256 of its {@code config} blob, in {@code <metadata cache>/pins/<repository id>}. The config
 * is not authenticated (it says whether there is a key to ask for), so someone who can write the
 * storage could rewrite it, e.g. as unencrypted, and make the owner's next backup store plaintext;
 * with the pin, a repository once opened (or created) encrypted here is refused when its config
 * later differs. Granule never rewrites a config, so any change is someone else's.
 *
 * <p>Pins live outside the repository directories of the cache ({@link RepositoryCache}), which are
 * deleted when unused for a while: a pin is a few bytes and is kept. Writing one is best effort (a
 * read-only cache only loses the protection, with a debug line); reading one that exists but cannot
 * be read is refused, since a downgrade would then go unnoticed. Stateless.
 */
final class ConfigPin {
  /** The directory of pins in the user's metadata cache. */
  static final String DIR = "pins";

  private static final String KEY = "config-sha256=";
  private static final String ID = "repository=";
  private static final String PLACE = "place=";

  /** Pins this process could not write, warned about once each. */
  private static final java.util.Set<Path> UNWRITTEN =
      java.util.concurrent.ConcurrentHashMap.newKeySet();

  private static final Logger LOG = LoggerFactory.getLogger(ConfigPin.class);

  private ConfigPin() {}

  /** The pin file of repository {@code repositoryId} under {@code metadataCache}. */
  static Path file(Path metadataCache, String repositoryId) {
    return metadataCache.resolve(DIR).resolve(repositoryId);
  }

  /**
   * The pin file of the encrypted repository last opened at {@code location} (a store's {@code
   * place()}: its real path, or its S3 location spelled one way; as typed, {@code ./repo} or a link
   * to it found no pin): the repository id is read from the config the pin guards, and a config
   * rewritten as unencrypted with a new id (its keys/ moved away) found no pin by id; and another
   * encrypted repository put in its place is told by its id.
   */
  static Path locationFile(Path metadataCache, String location) {
    return metadataCache
        .resolve(DIR)
        .resolve("at-" + sha256(location.getBytes(StandardCharsets.UTF_8)).substring(0, 32));
  }

  /**
   * The pin file of the encrypted repository last opened in the directory whose {@code identity}
   * ({@code BlobStore.placeIdentity()}: device and inode numbers, and the inode's birth time where
   * the file system keeps it) is given: found through a bind mount of that directory too, or any
   * other path to it, where {@link #locationFile} (by real path) is not.
   *
   * <p>An identity with a birth time ({@link #born}) names that directory and no other (a directory
   * made later with the same inode number is born later), so its pin, kept by inode number and
   * birth time alone ({@link #keyOf}), applies wherever the directory is reached: through its real
   * path once a bind mount it was opened through is gone, or its file system mounted elsewhere,
   * through another device too. One without (a file system that does not keep birth times, or a pin
   * written by an earlier build) outlives its directory: device numbers change with a reboot or a
   * file system mounted elsewhere, and an inode number is given to a new directory once the old one
   * is deleted; so such a pin records the place it was written from ({@link #readPlace}) and
   * applies only while that place still is this directory ({@link #stillNames}).
   */
  static Path identityFile(Path metadataCache, String identity) {
    return metadataCache
        .resolve(DIR)
        .resolve(
            "dir-" + sha256(keyOf(identity).getBytes(StandardCharsets.UTF_8)).substring(0, 32));
  }

  /**
   * What a pin by {@code identity} is kept under: with a birth time, the inode number and birth
   * time alone (audit14 B H2: the same file system attached again through another device, a
   * replugged disk, another loop or NBD device, or a remount of one whose device number is handed
   * out per mount (NFS, btrfs subvolumes), has another device number, and the pin was not found);
   * an inode number and a birth time to the nanosecond name one directory, or a copy of its file
   * system, which holds the same repository. Without a birth time, device and inode numbers.
   */
  static String keyOf(String identity) {
    if (!born(identity) || !identity.startsWith("dev=")) {
      return identity;
    }
    int comma = identity.indexOf(',');
    return comma < 0 ? identity : identity.substring(comma + 1);
  }

  private static final String BORN = ",born=";

  /** Whether {@code identity} has the directory's birth time (see {@link #identityFile}). */
  static boolean born(String identity) {
    return identity.contains(BORN);
  }

  /**
   * {@code identity} without its birth time: device and inode numbers, the identity pins were
   * written under before birth times were read, and where a file system keeps none.
   */
  static String numbersOf(String identity) {
    int i = identity.indexOf(BORN);
    return i < 0 ? identity : identity.substring(0, i);
  }

  /** The place recorded in {@code file} when it was written, empty if none (or no pin). */
  static Optional<String> readPlace(Path file) {
    String text = text(file);
    return text == null ? Optional.empty() : field(text, PLACE);
  }

  /**
   * Whether the pin by device and inode numbers {@code file} (an identity without birth time: see
   * {@link #identityFile}) applies to a store at {@code place} with those {@code numbers}: it was
   * written from that place, or the place it was written from is still that directory ({@code
   * numbersOf} tells the device and inode numbers of a place now). A pin whose place is gone or is
   * another directory now is stale (a reboot renumbered the devices, or the inode number went to a
   * new directory) and applies to nothing, so it never refuses a repository it did not guard.
   */
  static boolean stillNames(
      Path file,
      String place,
      String numbers,
      java.util.function.Function<String, Optional<String>> numbersOf) {
    Optional<String> then = readPlace(file);
    if (then.isEmpty()) {
      return false;
    }
    if (then.get().equals(place)) {
      return true;
    }
    boolean same = numbersOf.apply(then.get()).filter(numbers::equals).isPresent();
    if (!same) {
      LOG.debug(
          "{} was written from '{}', which is not the directory {} now: stale, ignored",
          file,
          then.get(),
          numbers);
    }
    return same;
  }

  /**
   * The repository id recorded in {@code file}, empty if there is no pin or it names none (a pin of
   * a build before ids were recorded as data names it in its comment line, read too).
   */
  static Optional<String> readId(Path file) {
    String text = text(file);
    if (text == null) {
      return Optional.empty();
    }
    return field(text, ID)
        .or(
            () -> {
              java.util.regex.Matcher m =
                  java.util.regex.Pattern.compile("^# granule: repository ([0-9a-f]+) is encrypted")
                      .matcher(text);
              return m.find() ? Optional.of(m.group(1)) : Optional.empty();
            });
  }

  /** The value of the first line of {@code text} starting with {@code key}. */
  private static Optional<String> field(String text, String key) {
    for (String line : text.split("\n")) {
      if (line.startsWith(key)) {
        return Optional.of(line.substring(key.length()).trim());
      }
    }
    return Optional.empty();
  }

  /** The text of {@code file}, null if there is none. */
  private static String text(Path file) {
    try {
      return Files.readString(file, StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      return null;
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to read '"
              + file
              + "', which records that a repository is encrypted: "
              + e.getMessage()
              + " (fix its permissions, or delete it to trust the repository's config as it is)",
          e);
    }
  }

  /** The config hash pinned in {@code file}, empty if there is no pin. */
  static Optional<String> read(Path file) {
    String text = text(file);
    if (text == null) {
      return Optional.empty();
    }
    return Optional.of(
        field(text, KEY).orElse("")); // "": damaged, pinned as encrypted, hash unknown
  }

  /** Records in {@code file} that the repository is encrypted, with config {@code configBytes}. */
  static void write(Path file, String repositoryId, byte[] configBytes) {
    write(file, repositoryId, configBytes, null);
  }

  /**
   * Records in {@code file} that the repository is encrypted, with config {@code configBytes},
   * opened at {@code place} unless it is null (see {@link #identityFile}).
   */
  static void write(Path file, String repositoryId, byte[] configBytes, String place) {
    String hash = sha256(configBytes);
    try {
      String text = text(file); // one read: already this pin?
      if (text != null
          && field(text, KEY).filter(hash::equals).isPresent()
          && field(text, ID).filter(repositoryId::equals).isPresent()
          && (place == null || field(text, PLACE).filter(place::equals).isPresent())) {
        return;
      }
      Files.createDirectories(file.getParent());
      Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
      Files.writeString(
          tmp,
          "# granule: repository "
              + repositoryId
              + " is encrypted; a config that differs from this one is refused\n"
              + "encrypted=true\n"
              + ID
              + repositoryId
              + "\n"
              + KEY
              + hash
              + "\n"
              + (place == null || place.contains("\n") ? "" : PLACE + place + "\n"),
          StandardCharsets.UTF_8);
      Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException | RepositoryException | UnsupportedOperationException e) {
      // without it a later downgrade or swap goes unnoticed here: said once per pin and process
      if (UNWRITTEN.add(file)) {
        LOG.warn(
            "unable to record in {} that repository {} is encrypted ({}): a config later rewritten"
                + " as unencrypted, or another repository put in its place, will not be noticed by"
                + " this user; make the cache directory writable",
            file,
            repositoryId,
            e.toString());
      }
    }
  }

  /** The lowercase hex SHA-256 of {@code bytes}. */
  static String sha256(byte[] bytes) {
    try {
      return Hex.encode(MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
