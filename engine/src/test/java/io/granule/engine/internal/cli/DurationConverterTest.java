package io.granule.engine.internal.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import org.junit.jupiter.api.Test;
import picocli.CommandLine.TypeConversionException;

class DurationConverterTest {
  private final DurationConverter c = new DurationConverter();

  @Test
  void secondsByDefaultAndEachUnit() {
    assertThat(c.convert("90")).isEqualTo(Duration.ofSeconds(90));
    assertThat(c.convert("30s")).isEqualTo(Duration.ofSeconds(30));
    assertThat(c.convert("5M")).isEqualTo(Duration.ofMinutes(5));
    assertThat(c.convert("2h")).isEqualTo(Duration.ofHours(2));
    assertThat(c.convert(" 250ms ")).isEqualTo(Duration.ofMillis(250));
    assertThat(c.convert("0")).isZero();
  }

  @Test
  void negativeOrUnknownIsRefusedNamingTheValue() {
    for (String v : new String[] {"-1", "-5ms", "5x", "ms", "", "1.5s"}) {
      assertThatThrownBy(() -> c.convert(v))
          .as(v)
          .isInstanceOf(TypeConversionException.class)
          .hasMessageContaining("'" + v + "' is not a duration");
    }
  }
}
