package io.granule.engine.internal.ops;

import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/**
 * Host names and tags end up in listings printed on operators' terminals: escape sequences and
 * other control or format characters in them were accepted and printed raw.
 */
class BackupLabelTest {
  @Test
  void controlAndFormatCharactersAreRefused() {
    for (String bad :
        new String[] {"db\u001b[2J", "a\nb", "x\u0000", "evil\u202egnp.exe", "\u007f"}) {
      assertThatThrownBy(() -> BackupOperation.checkLabel("tag", bad))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("invalid tag")
          .hasMessageContaining("control character")
          .hasMessageNotContaining("\u001b");
    }
  }

  @Test
  void printableLabelsPass() {
    for (String ok : new String[] {"db1.example.com", "nightly", "prod/eu-1", "Ünïcødé 数据库", ""}) {
      assertThatCode(() -> BackupOperation.checkLabel("host", ok)).doesNotThrowAnyException();
    }
    assertThatCode(() -> BackupOperation.checkLabel("host", null)).doesNotThrowAnyException();
  }

  @Test
  void moreDisksOrTagsThanAManifestMayHoldAreRefused() {
    // a manifest beyond the readers' bounds would be skipped as damaged (audit12 storage M3)
    assertThatCode(() -> BackupOperation.checkCounts(4096, 1024)).doesNotThrowAnyException();
    assertThatThrownBy(() -> BackupOperation.checkCounts(4097, 0))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("4097 disks: a snapshot holds at most 4096");
    assertThatThrownBy(() -> BackupOperation.checkCounts(1, 1025))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("at most 1024");
  }

  @Test
  void diskAndStreamNamesRefuseControlCharactersToo() {
    assertThatThrownBy(() -> BackupOperation.DiskSpec.parse("vm\u001b[31m=/x.img", null))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("invalid disk name")
        .hasMessageNotContaining("\u001b");
    assertThatThrownBy(() -> BackupOperation.StreamSpec.parse("s\u202e=-"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("invalid stream name");
    assertThatCode(() -> BackupOperation.DiskSpec.parse("vm-1 ü=/x.img", null))
        .doesNotThrowAnyException();
  }
}
