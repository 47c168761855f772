package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** One-shot commands load DATA/plugins too, so they see the same plugins as the server. */
class CliPluginsTest {
  @TempDir Path tmp;

  @Test
  void oneShotCommandsUseThePluginsFolder() throws Exception {
    Path data = tmp.resolve("data");
    Path plugins = Files.createDirectories(data.resolve("plugins"));
    Files.copy(
        TestBundles.slow(Files.createDirectories(tmp.resolve("b")), "1.0.0"),
        plugins.resolve("slow.jar"));
    Files.copy(TestBundles.broken(tmp.resolve("b")), plugins.resolve("broken.jar"));
    ByteBuffer hdr = ByteBuffer.allocate(32);
    hdr.put("SLOWTEST".getBytes(StandardCharsets.US_ASCII)).putLong(1 << 20).putLong(0).putLong(0);
    Path img = Files.write(tmp.resolve("x.slow"), hdr.array());

    Granule.Result r =
        Granule.run(tmp, "--data", data.toString(), "image", "info", "--json", img.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    JsonNode info = Api.JSON.readTree(r.out());
    assertThat(info.get("format").asText()).isEqualTo("slowtest");
    assertThat(info.get("plugin").asText()).isEqualTo(TestBundles.SLOW + " 1.0.0");

    r = Granule.run(tmp, "plugins", "--data", data.toString());
    assertThat(r.exitCode()).as(r.err()).isZero();
    assertThat(r.out())
        .contains(TestBundles.SLOW)
        .contains("DiskImageFormat slowtest")
        .contains(TestBundles.BROKEN)
        .contains("failure: unresolved: missing requirement");
    // the log file under the data directory records what was loaded
    assertThat(Files.readString(data.resolve("logs/granule.log"))).contains("slowtest");
  }

  /**
   * A quick command ends before the start-up warm-up thread has bound libgranule-native: the
   * framework then closed the engine's jar under it, and Felix printed an ERROR with a stack trace
   * after the listing, with a warning that native crypto was unavailable (about one run in eight).
   * The component now waits for the warm-up before its bundle stops.
   */
  @Test
  void quickCommandsPrintNothingButTheirOutput() throws Exception {
    Path data = Files.createDirectories(tmp.resolve("quiet"));
    for (int i = 0; i < 16; i++) {
      Granule.Result r = Granule.run(tmp, "plugins", "--data", data.toString());
      assertThat(r.exitCode()).as(r.err()).isZero();
      assertThat(r.err()).as("run %d", i).isEmpty();
      assertThat(r.out())
          .as("run %d", i)
          .contains("io.granule.plugin.vmdisk")
          .doesNotContain("ERROR");
    }
  }
}
