package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The repository is a stack of layers; each may import only the layers below it (and the shared
 * vocabulary of ids, exceptions and frames in the root package). No framework types outside the
 * OSGi edges ({@code internal/osgi}, {@code internal/rest}).
 */
class ArchitectureTest {
  private static final Path SOURCES = Path.of("src/main/java/io/granule/engine/internal");
  private static final Map<String, Integer> LAYER =
      Map.of(
          "chunk",
          0,
          "blob",
          0,
          "lock",
          1,
          "crypto",
          1,
          "pack",
          1,
          "index",
          2,
          "store",
          3,
          "snapshot",
          4,
          "backup",
          5,
          "maintenance",
          5);
  private static final Pattern IMPORT =
      Pattern.compile(
          "^import (?:static )?io\\.granule\\.engine\\.internal\\.repo\\.(\\w+)\\.",
          Pattern.MULTILINE);

  private static List<Path> sources() throws IOException {
    try (Stream<Path> s = Files.walk(SOURCES)) {
      return s.filter(p -> p.toString().endsWith(".java")).toList();
    }
  }

  /** OSGi glue lives here; everything else is plain Java. */
  private static final List<Path> FRAMEWORK_EDGES =
      List.of(SOURCES.resolve("osgi"), SOURCES.resolve("rest"));

  private static final Pattern FRAMEWORK_IMPORT =
      Pattern.compile("^import (?:static )?org\\.osgi\\.([\\w.]+);", Pattern.MULTILINE);

  @Test
  void noFrameworkImports() throws IOException {
    List<String> offenders = new ArrayList<>();
    for (Path p : sources()) {
      if (FRAMEWORK_EDGES.stream().anyMatch(p::startsWith)) {
        continue;
      }
      Matcher m = FRAMEWORK_IMPORT.matcher(Files.readString(p));
      while (m.find()) {
        // Declarative Services annotations are class-retention metadata, not a runtime tie.
        if (!m.group(1).startsWith("service.component.annotations.")) {
          offenders.add(p + " imports org.osgi." + m.group(1));
        }
      }
    }
    assertThat(sources()).hasSizeGreaterThan(30);
    assertThat(offenders).isEmpty();
  }

  @Test
  void layersOnlyImportLayersBelow() throws IOException {
    List<String> offenders = new ArrayList<>();
    for (Path p : sources()) {
      Path rel = SOURCES.resolve("repo").relativize(p);
      if (rel.startsWith("..") || rel.getNameCount() < 2) {
        continue;
      }
      String own = rel.getName(0).toString();
      Matcher m = IMPORT.matcher(Files.readString(p));
      while (m.find()) {
        String used = m.group(1);
        if (!used.equals(own) && LAYER.containsKey(used) && LAYER.get(used) >= LAYER.get(own)) {
          offenders.add(rel + " imports " + used);
        }
      }
    }
    assertThat(offenders).isEmpty();
  }
}
