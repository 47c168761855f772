package io.granule.engine.internal.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class ProgressBarTest {
  @Test
  void rendersBarPercentSizesRateAndEta() {
    String line =
        ProgressBar.render("backup vm.img", 1L << 30, 4L << 30, "new 10.0 MiB", 100 << 20);
    assertThat(line)
        .isEqualTo(
            "backup vm.img [######------------------]  25% 1.0 GiB / 4.0 GiB  new 10.0 MiB"
                + "  100 MiB/s  ETA 0:30");
  }

  @Test
  void unknownTotalShowsBytesOnly() {
    assertThat(ProgressBar.render("dump", 1536, -1, "", 0)).isEqualTo("dump 1.5 KiB");
  }

  /** Verify and prune count files, not bytes ("9 B / 23 B" before). */
  @Test
  void countsAreShownAsCountsNotBytes() {
    StringWriter sw = new StringWriter();
    ProgressBar bar = new ProgressBar(new PrintWriter(sw), true, Duration.ofSeconds(5));
    bar.updateCount("verify", 9, 23, "files", "data/ab/abcd");
    assertThat(sw.toString())
        .isEqualTo("\rverify [#########---------------]  39% 9 / 23 files  data/ab/abcd");
  }

  @Test
  void etaFormatsHours() {
    assertThat(ProgressBar.eta(3 * 3600 + 62)).isEqualTo("3:01:02");
  }

  @Test
  void terminalRedrawsInPlaceAndFinishClearsTheLine() {
    StringWriter sw = new StringWriter();
    ProgressBar bar = new ProgressBar(new PrintWriter(sw), true, Duration.ofSeconds(5));
    bar.update("x", 1, 2, "", 0);
    bar.finish();
    assertThat(sw.toString()).startsWith("\rx [").endsWith("\r");
  }

  @Test
  void nonTerminalPrintsNothingForAShortOperation() {
    StringWriter sw = new StringWriter();
    ProgressBar bar = new ProgressBar(new PrintWriter(sw), false, Duration.ofHours(1));
    bar.update("x", 1, 2, "", 0);
    bar.update("x", 2, 2, "", 0);
    bar.finish();
    assertThat(sw.toString()).isEmpty();
  }

  @Test
  void nonTerminalPrintsPlainLines() throws InterruptedException {
    StringWriter sw = new StringWriter();
    ProgressBar bar = new ProgressBar(new PrintWriter(sw), false, Duration.ofMillis(1));
    Thread.sleep(5);
    bar.update("x", 1, 2, "", 0);
    assertThat(sw.toString()).doesNotContain("\r").hasLineCount(1);
  }
}
