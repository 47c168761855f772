package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.crypto.KdfParams;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Someone who can write the storage but has no password rewrites the config of an encrypted
 * repository (audit9 C1): as unencrypted, so that the owner's next backup would store plaintext, or
 * with another chunk hash. The open is refused, naming the config, before anything is written.
 */
class ConfigDowngradeTest {
  @TempDir Path tmp;
  private Path dir;
  private LocalBlobStore store;
  private Path pins;
  private RepositoryConfig original;

  private static PasswordSource pw(String s) {
    return s::toCharArray;
  }

  /** Opens the repository as a command does, its pins under {@link #pins}. */
  private Repository open() {
    return Repository.open(dir, pw("correct horse"), pins);
  }

  @BeforeEach
  void setUp() {
    dir = tmp.resolve("repo");
    store = new LocalBlobStore(dir);
    pins = tmp.resolve("cache/granule");
    // created without pins: as by another machine, or by a build before pins
    try (Repository r =
        Repository.init(
            store,
            RepositoryConfig.defaults(),
            Clock.systemUTC(),
            tmp.resolve("chunk-cache"),
            "correct horse".toCharArray(),
            KdfParams.TESTING)) {
      original = r.config();
    }
  }

  /** Rewrites the config as the attacker does. */
  private void rewriteConfig(RepositoryConfig c) throws Exception {
    Files.write(dir.resolve("config"), c.toBytes());
  }

  private RepositoryConfig unencrypted() {
    return new RepositoryConfig(
        original.version(),
        original.repositoryId(),
        original.created(),
        original.chunkSize(),
        original.packSize(),
        original.compressionLevel(),
        RepositoryConfig.BLAKE3,
        null);
  }

  /**
   * Rewrites the config as unencrypted with a new repository id ({@code digit} repeated) and
   * deletes the key blobs, as the attacker does so that no pin by id is found.
   */
  private void downgradeWithNewId(String digit) throws Exception {
    RepositoryConfig u = unencrypted();
    rewriteConfig(
        new RepositoryConfig(
            u.version(),
            digit.repeat(u.repositoryId().length()),
            u.created(),
            u.chunkSize(),
            u.packSize(),
            u.compressionLevel(),
            u.chunkHash(),
            null));
    for (BlobName k : store.list(BlobType.KEY)) {
      store.delete(k);
    }
  }

  private long files() throws Exception {
    try (var all = Files.walk(dir)) {
      return all.filter(Files::isRegularFile).count();
    }
  }

  @Test
  void anUnencryptedConfigBesideKeyBlobsIsRefused() throws Exception {
    rewriteConfig(unencrypted());
    long before = files();
    assertThatThrownBy(() -> Repository.open(dir, pw("correct horse")))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessage(
            "the config of the repository at '"
                + dir
                + "' says it is not encrypted ("
                + dir.resolve("config")
                + "), but it has 1 key blob(s) in keys/: the config was changed to unencrypted,"
                + " not by granule; nothing was read or written. Put back the original config (a"
                + " copy of the repository has it); if the repository really is unencrypted,"
                + " delete its keys/");
    assertThat(files()).isEqualTo(before);
    // and once put back, the repository opens as before
    rewriteConfig(original);
    try (Repository r = Repository.open(dir, pw("correct horse"))) {
      assertThat(r.config().encrypted()).isTrue();
    }
  }

  @Test
  void aRepositoryOpenedEncryptedIsRefusedAsUnencryptedEvenWithItsKeysDeleted() throws Exception {
    try (Repository r = open()) {
      assertThat(r.config().encrypted()).isTrue();
    }
    Path pin = pins.resolve("pins").resolve(original.repositoryId());
    assertThat(pin).isRegularFile();
    rewriteConfig(unencrypted());
    for (BlobName k : store.list(BlobType.KEY)) {
      store.delete(k);
    }
    long before = files();
    Path place = ConfigPin.locationFile(pins, store.place());
    Path byIdentity = ConfigPin.identityFile(pins, store.placeIdentity().orElseThrow());
    // and where the file system keeps an id from its UUID (ext4 here), by the place inside it
    Path inFs =
        store
            .placeInFileSystem()
            .map(p -> ConfigPin.locationFile(pins, "in-file-system:" + p))
            .orElse(null);
    String places = "'" + place + "'" + (inFs == null ? "" : " and '" + inFs + "'");
    String pinsNamed = "'" + pin + "' and " + places + " and '" + byIdentity + "'";
    assertThatThrownBy(this::open)
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessage(
            "the config of the repository at '"
                + dir
                + "' was changed to unencrypted ("
                + dir.resolve("config")
                + "), but this user opened it encrypted before (recorded in "
                + pinsNamed
                + "): someone who can write the storage may have rewritten it; nothing was read"
                + " or written. Put back the original config (a copy of the repository has it);"
                + " if the change was intended, delete "
                + pinsNamed);
    assertThat(files()).isEqualTo(before);
    // the way out the message names: every pin that refuses it, named at once
    Files.delete(pin);
    assertThatThrownBy(this::open)
        .hasMessageContaining("recorded in " + places + " and '" + byIdentity + "'");
    Files.delete(place);
    if (inFs != null) {
      Files.delete(inFs);
    }
    Files.delete(byIdentity);
    try (Repository r = open()) {
      assertThat(r.config().encrypted()).isFalse();
    }
  }

  /**
   * The pin by id is found through the config it guards: rewritten as unencrypted with a new id
   * (and its keys moved away), no pin was found and the next backup stored plaintext. The pin of
   * the repository's place refuses it.
   */
  @Test
  void aConfigRewrittenWithANewIdIsRefusedByThePinOfItsPlace() throws Exception {
    try (Repository r = open()) {
      assertThat(r.config().encrypted()).isTrue();
    }
    downgradeWithNewId("0");
    assertThatThrownBy(this::open)
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("was changed to unencrypted")
        .hasMessageContaining(ConfigPin.locationFile(pins, store.place()).toString());
  }

  @Test
  void anyOtherChangeToThePinnedConfigIsRefused() throws Exception {
    try (Repository r = open()) {
      assertThat(r.snapshots()).isEmpty();
    }
    try (Repository r = open()) { // the same config opens again and again
      assertThat(r.config()).isEqualTo(original);
    }
    RepositoryConfig weaker =
        new RepositoryConfig(
            original.version(),
            original.repositoryId(),
            original.created(),
            original.chunkSize(),
            original.packSize(),
            0,
            RepositoryConfig.HMAC_SHA256,
            original.encryption());
    rewriteConfig(weaker);
    Path pin = pins.resolve("pins").resolve(original.repositoryId());
    assertThatThrownBy(this::open)
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageStartingWith(
            "the config of the repository at '"
                + dir
                + "' ("
                + dir.resolve("config")
                + ") changed since this user last opened it: sha256 actual="
                + ConfigPin.sha256(weaker.toBytes())
                + " expected="
                + ConfigPin.sha256(original.toBytes())
                + " (recorded in '"
                + pin
                + "')");
  }

  @Test
  void initPinsAnEncryptedRepositoryAndAnUnencryptedOneOpensAsBefore() throws Exception {
    Path enc = tmp.resolve("enc");
    String id;
    try (Repository r =
        Repository.init(enc, RepositoryConfig.defaults(), "pw".toCharArray(), pins)) {
      id = r.config().repositoryId();
    }
    assertThat(pins.resolve("pins").resolve(id)).isRegularFile();
    Path plain = tmp.resolve("plain");
    try (Repository r = Repository.init(plain, RepositoryConfig.defaults(), null, pins)) {
      id = r.config().repositoryId();
    }
    try (Repository r = Repository.open(plain, pw("a password nobody needs"), pins)) {
      assertThat(r.config().encrypted()).isFalse();
    }
    assertThat(pins.resolve("pins").resolve(id)).doesNotExist();
  }

  private RepositoryConfig withChunkSize(int size) {
    return new RepositoryConfig(
        original.version(),
        original.repositoryId(),
        original.created(),
        size,
        original.packSize(),
        original.compressionLevel(),
        original.chunkHash(),
        original.encryption());
  }

  /**
   * Without a pin (another machine, another user, a deleted cache) the key blob the password opens
   * still says the config changed: it sealed the config's digest. Before, a new chunk size (or
   * compression level, chunk hash, pack size) was taken as it was.
   */
  @Test
  void aChangedConfigIsRefusedByTheKeyBlobWithoutAnyPin() throws Exception {
    rewriteConfig(withChunkSize(original.chunkSize() / 2));
    long before = files();
    assertThatThrownBy(() -> Repository.open(dir, pw("correct horse")))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageStartingWith(
            "repository at '"
                + dir
                + "': the config of this repository is not the one its key blob keys/")
        .hasMessageContaining("Put back the original config")
        .hasMessageContaining(ConfigPin.sha256(original.toBytes()));
    assertThatThrownBy(() -> Repository.open(dir, pw("wrong")))
        .isInstanceOf(WrongPasswordException.class);
    assertThat(files()).isEqualTo(before);
    assertThat(pins).as("no pin written for a changed config").doesNotExist();
    rewriteConfig(original);
    try (Repository r = Repository.open(dir, pw("correct horse"))) {
      assertThat(r.config()).isEqualTo(original);
    }
  }

  /** A changed password's new key blob seals the config the repository was opened with. */
  @Test
  void aNewPasswordsKeyBlobSealsTheConfigToo() throws Exception {
    try (Repository r = Repository.open(dir, pw("correct horse"))) {
      r.changePassword("battery staple".toCharArray(), KdfParams.TESTING);
    }
    assertThat(store.list(BlobType.KEY)).hasSize(1);
    try (Repository r = Repository.open(dir, pw("battery staple"))) {
      assertThat(r.keys()).singleElement().matches(k -> k.sealsConfig());
    }
    rewriteConfig(withChunkSize(original.chunkSize() * 2));
    assertThatThrownBy(() -> Repository.open(dir, pw("battery staple")))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("is not the one its key blob");
  }

  /**
   * The config rewritten as unencrypted and the key blobs deleted, opened where no pin is: a
   * password given (file, environment) says the owner expects encryption, and the repository is
   * refused instead of storing plaintext. Asked interactively, no password is given: it opens.
   */
  @Test
  void anUnencryptedRepositoryIsRefusedWhenAPasswordIsGiven() throws Exception {
    rewriteConfig(unencrypted());
    for (BlobName k : store.list(BlobType.KEY)) {
      store.delete(k);
    }
    PasswordSource given =
        new PasswordSource() {
          @Override
          public char[] password() {
            return "correct horse".toCharArray();
          }

          @Override
          public boolean given() {
            return true;
          }

          @Override
          public String toString() {
            return "GRANULE_PASSWORD";
          }
        };
    long before = files();
    assertThatThrownBy(() -> Repository.open(dir, given, pins))
        .isInstanceOf(WrongPasswordException.class)
        .hasMessage(
            "the repository at '"
                + dir
                + "' is not encrypted, but a password was given (GRANULE_PASSWORD): if it should"
                + " be encrypted, its config ("
                + dir.resolve("config")
                + ") was rewritten by someone who can write the storage, and nothing was read or"
                + " written; if it really is unencrypted, give no password for it");
    assertThat(files()).isEqualTo(before);
    try (Repository r = Repository.open(dir, pw("asked, never given"), pins)) {
      assertThat(r.config().encrypted()).isFalse();
    }
  }

  /**
   * audit10 H1: the pin of the place was kept by the location as typed; named another way ({@code
   * ./repo}, a link, {@code /x/./repo}) the rewritten config found no pin and the next backup
   * stored plaintext. The place is the repository's real path now.
   */
  @Test
  void thePinOfThePlaceIsFoundWhateverWayTheRepositoryIsNamed() throws Exception {
    try (Repository r = open()) {
      assertThat(r.config().encrypted()).isTrue();
    }
    downgradeWithNewId("1");
    Path link = Files.createSymbolicLink(tmp.resolve("link"), dir);
    for (Path named : new Path[] {link, tmp.resolve("x/../repo"), tmp.resolve("./repo")}) {
      Files.createDirectories(tmp.resolve("x"));
      assertThatThrownBy(() -> Repository.open(named, pw("correct horse"), pins))
          .as(named.toString())
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageContaining("was changed to unencrypted");
    }
  }

  /**
   * audit10 M1: another encrypted repository of the same owner (same password) copied over this one
   * was used without a word ({@code restore latest} wrote the other machine's disk). The pin of the
   * place records which repository was there.
   */
  @Test
  void anotherRepositoryPutInThePlaceOfOneOpenedThereIsRefused() throws Exception {
    try (Repository r = open()) {
      assertThat(r.config().encrypted()).isTrue();
    }
    Path other = tmp.resolve("other");
    String otherId;
    try (Repository r =
        Repository.init(
            new LocalBlobStore(other),
            RepositoryConfig.defaults(),
            Clock.systemUTC(),
            tmp.resolve("chunk-cache2"),
            "correct horse".toCharArray(),
            KdfParams.TESTING)) {
      otherId = r.config().repositoryId();
    }
    Path moved = tmp.resolve("moved-away");
    Files.move(dir, moved);
    Files.move(other, dir);
    assertThatThrownBy(this::open)
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("is not the one this user opened there before")
        .hasMessageContaining(original.repositoryId().substring(0, 16))
        .hasMessageContaining(otherId.substring(0, 16))
        .hasMessageContaining(ConfigPin.locationFile(pins, dir.toRealPath().toString()).toString());
    // put back, it opens
    Files.move(dir, other);
    Files.move(moved, dir);
    try (Repository r = open()) {
      assertThat(r.config().repositoryId()).isEqualTo(original.repositoryId());
    }
  }

  /**
   * The store at {@link #dir} as reached by another path: {@code place} is what its real path would
   * be (a bind mount of it), {@code identity} its device and inode numbers.
   */
  private static BlobStore reachedAs(Path dir, String place, String identity, String inFs) {
    return new io.granule.engine.internal.repo.blob.ForwardingBlobStore(
        reachedAs(dir, place, identity)) {
      @Override
      public java.util.Optional<String> placeInFileSystem() {
        return java.util.Optional.of(inFs);
      }
    };
  }

  private static BlobStore reachedAs(Path dir, String place, String identity) {
    return new io.granule.engine.internal.repo.blob.ForwardingBlobStore(new LocalBlobStore(dir)) {
      @Override
      public String place() {
        return place;
      }

      @Override
      public java.util.Optional<String> placeIdentity() {
        return java.util.Optional.of(identity);
      }
    };
  }

  /**
   * Makes a repository in {@code at} as another machine would (no pins), encrypted under {@code
   * password} unless it is null.
   */
  private void repositoryAt(Path at, String password) {
    Repository.init(
            new LocalBlobStore(at),
            RepositoryConfig.defaults(),
            Clock.systemUTC(),
            tmp.resolve("chunk-cache-" + at.getFileName()),
            password == null ? null : password.toCharArray(),
            KdfParams.TESTING)
        .close();
  }

  private Repository openVia(BlobStore s, PasswordSource p) {
    return Repository.open(s, Clock.systemUTC(), tmp.resolve("chunk-cache"), p, pins);
  }

  /**
   * audit11 netkeys F3: a bind mount of the repository directory is another real path, so the pin
   * of the place was not found and the downgraded repository opened as unencrypted (the next backup
   * plaintext). The directory's device and inode numbers are pinned too.
   */
  @Test
  void theDirectoryIsKnownByItsIdentityThroughAnotherPathToIt() throws Exception {
    try (Repository r = open()) {
      assertThat(r.config().encrypted()).isTrue();
    }
    String identity = LocalBlobStore.identity(dir).orElseThrow();
    Path idPin = ConfigPin.identityFile(pins, identity);
    assertThat(ConfigPin.readPlace(idPin)).contains(dir.toRealPath().toString());
    downgradeWithNewId("2");
    BlobStore mount = reachedAs(dir, "/mnt/elsewhere", identity);
    assertThatThrownBy(() -> openVia(mount, PasswordSource.NONE))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("was changed to unencrypted")
        .hasMessageContaining("as '" + dir.toRealPath() + "' (the same directory")
        .hasMessageContaining(idPin.toString());
  }

  /** Another encrypted repository reached through another path to the pinned directory. */
  @Test
  void anotherRepositoryInThePinnedDirectoryIsRefusedThroughAnotherPathToIt() throws Exception {
    try (Repository r = open()) {
      assertThat(r.config().encrypted()).isTrue();
    }
    String identity = LocalBlobStore.identity(dir).orElseThrow();
    // same password, another id: the config and the key blob of another repository copied in
    Path other = tmp.resolve("other");
    try (Repository r =
        Repository.init(
            new LocalBlobStore(other),
            RepositoryConfig.defaults(),
            Clock.systemUTC(),
            tmp.resolve("chunk-cache2"),
            "correct horse".toCharArray(),
            KdfParams.TESTING)) {
      assertThat(r.config().encrypted()).isTrue();
    }
    for (BlobName k : store.list(BlobType.KEY)) {
      store.delete(k);
    }
    try (var keys = Files.list(other.resolve("keys"))) {
      for (Path k : keys.toList()) {
        Files.copy(k, dir.resolve("keys").resolve(k.getFileName()));
      }
    }
    Files.copy(
        other.resolve("config"),
        dir.resolve("config"),
        java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    assertThatThrownBy(
            () -> openVia(reachedAs(dir, "/mnt/elsewhere", identity), pw("correct horse")))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("is not the one this user opened there before")
        .hasMessageContaining(ConfigPin.identityFile(pins, identity).toString());
  }

  /**
   * audit13 core M1: the repository was opened (encrypted) only through a bind mount since removed,
   * or at a mount point since unmounted and mounted elsewhere; the pin of that place is not found
   * through the directory's real path, so the downgrade opened as unencrypted there. The pin by
   * identity has the directory's birth time and applies wherever the directory is reached.
   */
  @Test
  void aPinWithTheBirthTimeAppliesWhereverTheDirectoryIsReached() throws Exception {
    String identity = LocalBlobStore.identity(dir).orElseThrow();
    assertThat(ConfigPin.born(identity)).as("a birth time on " + dir).isTrue();
    try (Repository r =
        openVia(reachedAs(dir, "/mnt/bind-since-removed", identity), pw("correct horse"))) {
      assertThat(r.config().encrypted()).isTrue();
    }
    Path idPin = ConfigPin.identityFile(pins, identity);
    assertThat(ConfigPin.readPlace(idPin)).contains("/mnt/bind-since-removed");
    downgradeWithNewId("4");
    assertThatThrownBy(() -> openVia(new LocalBlobStore(dir), PasswordSource.NONE))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("was changed to unencrypted")
        .hasMessageContaining("as '/mnt/bind-since-removed' (the same directory")
        .hasMessageContaining(idPin.toString());
  }

  /**
   * audit14 B H2: the file system was attached again through another device (a replugged disk,
   * another loop device) and mounted elsewhere: the same directory, inode number and birth time,
   * but another device number, and the pin by identity was not found. It is kept by inode number
   * and birth time.
   */
  @Test
  void aPinWithTheBirthTimeAppliesThroughAnotherDeviceNumber() throws Exception {
    String identity = LocalBlobStore.identity(dir).orElseThrow();
    try (Repository r = openVia(reachedAs(dir, "/mnt/pa/repo", identity), pw("correct horse"))) {
      assertThat(r.config().encrypted()).isTrue();
    }
    downgradeWithNewId("5");
    String elsewhere = identity.replaceFirst("^dev=[0-9]+,", "dev=999999,");
    assertThat(elsewhere).isNotEqualTo(identity);
    assertThatThrownBy(
            () -> openVia(reachedAs(dir, "/mnt/pb/repo", elsewhere), PasswordSource.NONE))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("was changed to unencrypted")
        .hasMessageContaining("as '/mnt/pa/repo' (the same directory");
  }

  /**
   * audit14 C3: someone who can write the directory above the repository made a new directory in
   * its place (a new inode and birth time, an unencrypted config), and the file system was mounted
   * at another path: no pin by id, real path or identity matched, and plaintext was stored. The
   * place inside the file system (its id and the path from its root) is pinned too.
   */
  @Test
  void aDirectoryMadeAnewInThePinnedPlaceOfItsFileSystemIsRefusedWhereverMounted()
      throws Exception {
    String identity = LocalBlobStore.identity(dir).orElseThrow();
    String inFs = "fsid=0123456789abcdef,path=/srv/repo";
    try (Repository r =
        openVia(reachedAs(dir, "/mnt/pa/repo", identity, inFs), pw("correct horse"))) {
      assertThat(r.config().encrypted()).isTrue();
    }
    // a new directory (another identity) with an unencrypted repository of another id
    Path fresh = tmp.resolve("fresh");
    repositoryAt(fresh, null);
    String other = LocalBlobStore.identity(fresh).orElseThrow();
    assertThat(other).isNotEqualTo(identity);
    assertThatThrownBy(
            () -> openVia(reachedAs(fresh, "/mnt/pb/repo", other, inFs), PasswordSource.NONE))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("was changed to unencrypted");
    // elsewhere in that file system, or in another one, it is another place
    try (Repository r =
        openVia(
            reachedAs(fresh, "/mnt/pb/repo", other, "fsid=0123456789abcdef,path=/srv/other"),
            PasswordSource.NONE)) {
      assertThat(r.config().encrypted()).isFalse();
    }
  }

  /**
   * audit14 E: someone who can write the directory above the repository moved it away and put a
   * link to an unencrypted repository of his in its place; every pin was worked out from the link's
   * target, and the next backup stored plaintext. The path as named is pinned too (for the
   * downgrade; a link the user points at another encrypted repository of his still opens).
   */
  @Test
  void aLinkPutInPlaceOfTheRepositoryToAnUnencryptedOneIsRefused() throws Exception {
    try (Repository r = open()) {
      assertThat(r.config().encrypted()).isTrue();
    }
    Path evil = tmp.resolve("evil");
    repositoryAt(evil, null);
    Files.move(dir, tmp.resolve("moved-away"));
    Files.createSymbolicLink(dir, evil);
    assertThatThrownBy(() -> openVia(new LocalBlobStore(dir), PasswordSource.NONE))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("was changed to unencrypted");

    // the user's own link, pointed from one encrypted repository of his to another: opens
    Path current = tmp.resolve("current");
    Files.createSymbolicLink(current, tmp.resolve("moved-away"));
    try (Repository r = openVia(new LocalBlobStore(current), pw("correct horse"))) {
      assertThat(r.config().encrypted()).isTrue();
    }
    Path second = tmp.resolve("second");
    repositoryAt(second, "correct horse");
    Files.delete(current);
    Files.createSymbolicLink(current, second);
    try (Repository r = openVia(new LocalBlobStore(current), pw("correct horse"))) {
      assertThat(r.config().encrypted()).isTrue();
    }
  }

  /** The place inside the file system is told on ext4 (this test's directory), none on tmpfs. */
  @Test
  void thePlaceInsideTheFileSystemIsToldWhereItsIdComesFromItsUuid() throws Exception {
    String type = Files.getFileStore(dir).type();
    java.util.Optional<String> here = LocalBlobStore.fileSystemPlace(dir);
    if (type.equals("ext4") || type.equals("btrfs")) {
      assertThat(here).hasValueSatisfying(p -> assertThat(p).matches("fsid=[0-9a-f]{16},path=/.*"));
      assertThat(here.get())
          .endsWith(
              dir.toRealPath()
                  .toString()
                  .substring(dir.toRealPath().toString().length() - "repo".length()));
    }
    Path shm = Path.of("/dev/shm");
    if (Files.isDirectory(shm) && Files.getFileStore(shm).type().equals("tmpfs")) {
      assertThat(LocalBlobStore.fileSystemPlace(shm)).as("tmpfs has no file system id").isEmpty();
    }
  }

  /**
   * A directory made after the pinned one was deleted can get its inode number (and, after a
   * reboot, device numbers can repeat): it is born later, so the pin does not apply to it, and a
   * new unencrypted repository there opens as it would without the pin.
   */
  @Test
  void aDirectoryBornLaterWithTheSameNumbersIsNotPinned() throws Exception {
    try (Repository r = open()) {
      assertThat(r.config().encrypted()).isTrue();
    }
    String identity = LocalBlobStore.identity(dir).orElseThrow();
    assertThat(Files.exists(ConfigPin.identityFile(pins, identity))).isTrue();
    Path fresh = tmp.resolve("fresh");
    repositoryAt(fresh, null);
    String later = ConfigPin.numbersOf(identity) + ",born=9999999999.000000001";
    try (Repository r =
        openVia(reachedAs(fresh, fresh.toRealPath().toString(), later), PasswordSource.NONE)) {
      assertThat(r.config().encrypted()).isFalse();
    }
    // a real one: the directory deleted and made again (the same inode number is likely)
    Path again = tmp.resolve("again");
    Files.createDirectory(again);
    String before = LocalBlobStore.identity(again).orElseThrow();
    Files.delete(again);
    Files.createDirectory(again);
    String after = LocalBlobStore.identity(again).orElseThrow();
    assertThat(after).isNotEqualTo(before);
  }

  /** Writes the pin by device and inode numbers alone that a build before birth times wrote. */
  private String pinByNumbersAsBefore(String place) throws Exception {
    String numbers = ConfigPin.numbersOf(LocalBlobStore.identity(dir).orElseThrow());
    ConfigPin.write(
        ConfigPin.identityFile(pins, numbers),
        original.repositoryId(),
        Files.readAllBytes(dir.resolve("config")),
        place);
    return numbers;
  }

  /**
   * A pin by device and inode numbers alone (an earlier build's, or where the file system keeps no
   * birth time) outlives its directory: after a reboot (devices renumbered) or once the directory
   * is deleted, the same numbers can name another directory. It applies only while the place it was
   * written from is still that directory, so an unrelated repository that gets those numbers opens
   * as it would without the pin.
   */
  @Test
  void aPinByNumbersWhosePlaceIsAnotherDirectoryNowIsStale() throws Exception {
    String numbers = pinByNumbersAsBefore(dir.toRealPath().toString());
    // the pinned directory is gone; an unencrypted repository elsewhere now has its numbers
    Path gone = tmp.resolve("gone");
    Files.move(dir, gone);
    Path fresh = tmp.resolve("fresh");
    repositoryAt(fresh, null);
    BlobStore reused = reachedAs(fresh, fresh.toRealPath().toString(), numbers);
    try (Repository r = openVia(reused, PasswordSource.NONE)) {
      assertThat(r.config().encrypted()).isFalse();
    }
    // while the place it was written from is that directory, it applies, also to an identity with
    // a birth time (the same numbers)
    Files.move(gone, dir);
    downgradeWithNewId("3");
    assertThatThrownBy(() -> openVia(reachedAs(dir, "/mnt/x", numbers), PasswordSource.NONE))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("was changed to unencrypted");
    assertThatThrownBy(() -> openVia(new LocalBlobStore(dir), PasswordSource.NONE))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("was changed to unencrypted")
        .hasMessageContaining(ConfigPin.identityFile(pins, numbers).toString());
  }

  /** {@code init} in a pinned directory rewrites its pin by identity, as it does the others. */
  @Test
  void initRewritesThePinByIdentity() throws Exception {
    try (Repository r = open()) {
      assertThat(r.config().encrypted()).isTrue();
    }
    String identity = LocalBlobStore.identity(dir).orElseThrow();
    Path idPin = ConfigPin.identityFile(pins, identity);
    assertThat(ConfigPin.readId(idPin)).contains(original.repositoryId());
    // and an earlier build's pin by the numbers alone, which applies here too
    Path byNumbers =
        ConfigPin.identityFile(pins, pinByNumbersAsBefore(dir.toRealPath().toString()));
    try (var all = Files.walk(dir)) {
      for (Path p : all.sorted(java.util.Comparator.reverseOrder()).toList()) {
        if (!p.equals(dir)) {
          Files.delete(p);
        }
      }
    }
    String id;
    try (Repository r =
        Repository.init(
            store,
            RepositoryConfig.defaults(),
            Clock.systemUTC(),
            tmp.resolve("chunk-cache"),
            "correct horse".toCharArray(),
            KdfParams.TESTING,
            pins)) {
      id = r.config().repositoryId();
    }
    assertThat(ConfigPin.readId(idPin)).contains(id);
    assertThat(ConfigPin.readId(byNumbers)).contains(id);
    try (Repository r = openVia(reachedAs(dir, "/mnt/elsewhere", identity), pw("correct horse"))) {
      assertThat(r.config().repositoryId()).isEqualTo(id);
    }
  }
}
