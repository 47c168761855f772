package io.granule.runtime;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.Configurator;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.util.LogbackMDCAdapter;
import ch.qos.logback.core.Appender;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.rolling.RollingFileAppender;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The logging set-ups of {@link Logging}, built in code by {@link LogConfigurator}. */
class LogConfiguratorTest {
  @TempDir Path tmp;

  @AfterEach
  void restoreProperties() {
    for (String p :
        List.of(
            LogConfigurator.MODE_PROPERTY,
            LogConfigurator.DIR_PROPERTY,
            LogConfigurator.LEVEL_PROPERTY,
            "logback.configurationFile")) {
      System.clearProperty(p);
    }
  }

  private LoggerContext configure(LogConfigurator.Mode mode, String level) {
    System.setProperty(LogConfigurator.MODE_PROPERTY, mode.name());
    System.setProperty(LogConfigurator.DIR_PROPERTY, tmp.resolve("logs").toString());
    if (level != null) {
      System.setProperty(LogConfigurator.LEVEL_PROPERTY, level);
    }
    LoggerContext context = new LoggerContext();
    context.setMDCAdapter(new LogbackMDCAdapter()); // as Logback's service provider does
    LogConfigurator c = new LogConfigurator();
    c.setContext(context);
    assertThat(c.configure(context))
        .isEqualTo(Configurator.ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY);
    context.start(); // as Logback's service provider does after configuring
    return context;
  }

  private static List<Appender<ILoggingEvent>> appenders(LoggerContext context) {
    List<Appender<ILoggingEvent>> out = new ArrayList<>();
    context.getLogger(Logger.ROOT_LOGGER_NAME).iteratorForAppenders().forEachRemaining(out::add);
    return out;
  }

  @Test
  void logbackFindsTheConfiguratorAsAService() {
    List<String> found = new ArrayList<>();
    ServiceLoader.load(Configurator.class).stream().forEach(p -> found.add(p.type().getName()));
    assertThat(found).contains(LogConfigurator.class.getName());
  }

  @Test
  void consoleModeLogsWarningsToStderrOnly() {
    LoggerContext context = configure(LogConfigurator.Mode.CONSOLE, null);
    assertThat(context.getLogger(Logger.ROOT_LOGGER_NAME).getLevel()).isEqualTo(Level.WARN);
    assertThat(context.getLogger("io.granule").getLevel()).isEqualTo(Level.WARN);
    List<Appender<ILoggingEvent>> a = appenders(context);
    assertThat(a).hasSize(1);
    assertThat(((ConsoleAppender<ILoggingEvent>) a.get(0)).getTarget()).isEqualTo("System.err");
    assertThat(tmp.resolve("logs")).doesNotExist();
  }

  @Test
  void cliModeWritesInfoToTheLogFile() throws Exception {
    LoggerContext context = configure(LogConfigurator.Mode.CLI, "debug");
    assertThat(context.getLogger("io.granule").getLevel()).isEqualTo(Level.DEBUG);
    assertThat(context.getLogger("org.apache.felix.http").getLevel()).isEqualTo(Level.ERROR);
    List<Appender<ILoggingEvent>> a = appenders(context);
    assertThat(a).extracting(Appender::getName).containsExactly("CONSOLE", "FILE");
    assertThat(((ConsoleAppender<ILoggingEvent>) a.get(0)).getTarget()).isEqualTo("System.err");
    assertThat(a.get(0).getCopyOfAttachedFiltersList()).hasSize(1);
    context.getLogger("io.granule.test").info("hello file");
    context.stop();
    Path log = tmp.resolve("logs/granule.log");
    assertThat(Files.readString(log, StandardCharsets.UTF_8))
        .contains("INFO  io.granule.test - hello file");
  }

  @Test
  void controlCharactersInMessagesAreEscaped() throws Exception {
    // names quoted in warnings come from repositories and disks (audit12 storage L2)
    LoggerContext context = configure(LogConfigurator.Mode.CLI, null);
    context.getLogger("io.granule.test").warn("skipping {}", "vm\u001b[2J\u202ex\nnext");
    context.stop();
    assertThat(Files.readString(tmp.resolve("logs/granule.log"), StandardCharsets.UTF_8))
        .contains("WARN  io.granule.test - skipping vm\\x1b[2J\\u202ex\nnext")
        .doesNotContain("\u001b");
    assertThat(SafeMessageConverter.escape("a\u0085b\tc\u0007")).isEqualTo("a\\x85b\tc\\x07");
  }

  @Test
  void serverModeLogsInfoToStdoutAndTheFile() {
    LoggerContext context = configure(LogConfigurator.Mode.SERVER, "not-a-level");
    assertThat(context.getLogger("io.granule").getLevel()).isEqualTo(Level.INFO);
    List<Appender<ILoggingEvent>> a = appenders(context);
    assertThat(a).extracting(Appender::getName).containsExactly("CONSOLE", "FILE");
    assertThat(((ConsoleAppender<ILoggingEvent>) a.get(0)).getTarget()).isEqualTo("System.out");
    assertThat(((RollingFileAppender<ILoggingEvent>) a.get(1)).getFile())
        .isEqualTo(tmp.resolve("logs").resolve("granule.log").toString());
    context.stop();
  }

  @Test
  void anExplicitConfigurationFileWins() {
    System.setProperty("logback.configurationFile", "custom.xml");
    LoggerContext context = new LoggerContext();
    LogConfigurator c = new LogConfigurator();
    c.setContext(context);
    assertThat(c.configure(context)).isEqualTo(Configurator.ExecutionStatus.INVOKE_NEXT_IF_ANY);
    assertThat(appenders(context)).isEmpty();
  }
}
