package io.granule.runtime;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import java.util.jar.Attributes;
import java.util.jar.JarFile;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The executable jar embeds exactly the bundles of cnf/granule.bndrun's -runbundles, at the
 * versions the resolver chose. (The build's bnd-resolver:verify checks that those resolve.)
 */
class RunBundlesTest {
  private static final Pattern ENTRY =
      Pattern.compile("([A-Za-z0-9_.\\-]+);version='\\[([0-9]+\\.[0-9]+\\.[0-9]+),");

  static Map<String, String> runBundles(Path bndrun) throws IOException {
    String text = Files.readString(bndrun).replace("\\\n", "");
    int at = text.indexOf("-runbundles:");
    assertThat(at).as("-runbundles in " + bndrun).isNotNegative();
    String line = text.substring(at).lines().findFirst().orElseThrow();
    Map<String, String> out = new TreeMap<>();
    Matcher m = ENTRY.matcher(line);
    while (m.find()) {
      out.put(m.group(1), m.group(2));
    }
    return out;
  }

  static Map<String, String> embedded(Path dir) throws IOException {
    Map<String, String> out = new TreeMap<>();
    try (Stream<Path> s = Files.list(dir)) {
      for (Path jar : s.filter(p -> p.toString().endsWith(".jar")).toList()) {
        try (JarFile jf = new JarFile(jar.toFile())) {
          Attributes a = jf.getManifest().getMainAttributes();
          String bsn = a.getValue("Bundle-SymbolicName").split(";")[0].trim();
          String[] v = a.getValue("Bundle-Version").split("\\.");
          out.put(
              bsn, v[0] + "." + (v.length > 1 ? v[1] : "0") + "." + (v.length > 2 ? v[2] : "0"));
        }
      }
    }
    return out;
  }

  @Test
  void embeddedBundlesAreExactlyTheResolvedRunBundles() throws IOException {
    Path root = Path.of(System.getProperty("granule.project.root", ".."));
    Map<String, String> expected = runBundles(root.resolve("cnf/granule.bndrun"));
    Map<String, String> actual = embedded(Path.of("target/classes/bundles"));
    assertThat(expected).as("-runbundles").containsKey("io.granule.engine");
    assertThat(actual)
        .as(
            "runtime/pom.xml's provided dependencies must match cnf/granule.bndrun -runbundles;"
                + " after changing either, run ./mvnw -pl runtime bnd-resolver:resolve")
        .isEqualTo(expected);
  }
}
