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
}
