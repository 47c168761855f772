package io.granule.runtime;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.filter.ThresholdFilter;
import ch.qos.logback.classic.spi.Configurator;
import ch.qos.logback.classic.spi.ConfiguratorRank;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.Appender;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.rolling.RollingFileAppender;
import ch.qos.logback.core.rolling.TimeBasedRollingPolicy;
import ch.qos.logback.core.spi.ContextAwareBase;
import ch.qos.logback.core.status.NopStatusListener;

/**
 * Logback's configuration, built in code (found by Logback through {@code META-INF/services}): the
 * three set-ups {@link Logging} describes, without parsing XML at every start (Joran and the JDK's
 * XML parser cost about a fifth of the start-up time).
 *
 * <p>Steps aside, so that Logback reads the file as usual, when {@code -Dlogback.configurationFile}
 * is set.
 */
@ConfiguratorRank(ConfiguratorRank.CUSTOM_HIGH_PRIORITY)
public final class LogConfigurator extends ContextAwareBase implements Configurator {
  static final String MODE_PROPERTY = "granule.log.mode";
  static final String DIR_PROPERTY = "granule.log.dir";
  static final String LEVEL_PROPERTY = "granule.log.level";

  /** How this process logs: chosen by {@link Logging#configure}. */
  enum Mode {
    /** {@code granule server}: INFO to the console and the log file. */
    SERVER,
    /** One-shot command with a data directory: WARN to stderr, INFO to the log file. */
    CLI,
    /** One-shot command without a data directory: WARN to stderr only. */
    CONSOLE
  }

  private static final String FILE_PATTERN = "%d{ISO8601} [%thread] %-5level %logger - %safemsg%n";

  /** Public no-argument constructor, for {@link java.util.ServiceLoader}. */
  public LogConfigurator() {}

  @Override
  public ExecutionStatus configure(LoggerContext context) {
    if (System.getProperty("logback.configurationFile") != null) {
      return ExecutionStatus.INVOKE_NEXT_IF_ANY;
    }
    Mode mode;
    try {
      mode = Mode.valueOf(System.getProperty(MODE_PROPERTY, Mode.CONSOLE.name()));
    } catch (IllegalArgumentException e) {
      mode = Mode.CONSOLE;
    }
    String dir = System.getProperty(DIR_PROPERTY, "logs");
    // Logback's own status messages stay quiet, as with <statusListener class="Nop…"/>
    context.getStatusManager().add(new NopStatusListener());
    // %safemsg: the console is a terminal; names quoted in messages may hold escape sequences
    @SuppressWarnings("unchecked")
    java.util.Map<
            String, java.util.function.Supplier<ch.qos.logback.core.pattern.DynamicConverter<?>>>
        rules =
            (java.util.Map<
                    String,
                    java.util.function.Supplier<ch.qos.logback.core.pattern.DynamicConverter<?>>>)
                context.getObject(
                    ch.qos.logback.core.CoreConstants.PATTERN_RULE_REGISTRY_FOR_SUPPLIERS);
    if (rules == null) {
      rules = new java.util.HashMap<>();
      context.putObject(
          ch.qos.logback.core.CoreConstants.PATTERN_RULE_REGISTRY_FOR_SUPPLIERS, rules);
    }
    rules.put("safemsg", SafeMessageConverter::new);
    Logger root = context.getLogger(Logger.ROOT_LOGGER_NAME);
    Level granuleDefault;
    switch (mode) {
      case SERVER -> {
        root.setLevel(Level.INFO);
        root.addAppender(
            console(
                context, "System.out", "%d{HH:mm:ss.SSS} %-5level %logger{1} - %safemsg%n", null));
        root.addAppender(file(context, dir));
        granuleDefault = Level.INFO;
      }
      case CLI -> {
        root.setLevel(Level.INFO);
        root.addAppender(console(context, "System.err", "%-5level %safemsg%n", Level.WARN));
        root.addAppender(file(context, dir));
        granuleDefault = Level.INFO;
      }
      default -> {
        root.setLevel(Level.WARN);
        root.addAppender(console(context, "System.err", "%-5level %safemsg%n", null));
        granuleDefault = Level.WARN;
      }
    }
    String level = System.getProperty(LEVEL_PROPERTY);
    context
        .getLogger("io.granule")
        .setLevel(level == null ? granuleDefault : Level.toLevel(level, granuleDefault));
    if (mode != Mode.CONSOLE) {
      context.getLogger("org.eclipse.jetty").setLevel(Level.WARN);
      context.getLogger("org.apache.felix.http").setLevel(Level.ERROR);
    }
    return ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY;
  }

  private static Appender<ILoggingEvent> console(
      LoggerContext context, String target, String pattern, Level threshold) {
    ConsoleAppender<ILoggingEvent> a = new ConsoleAppender<>();
    a.setContext(context);
    a.setName("CONSOLE");
    a.setTarget(target);
    if (threshold != null) {
      ThresholdFilter f = new ThresholdFilter();
      f.setContext(context);
      f.setLevel(threshold.levelStr);
      f.start();
      a.addFilter(f);
    }
    a.setEncoder(encoder(context, pattern));
    a.start();
    return a;
  }

  private static Appender<ILoggingEvent> file(LoggerContext context, String dir) {
    RollingFileAppender<ILoggingEvent> a = new RollingFileAppender<>();
    a.setContext(context);
    a.setName("FILE");
    a.setFile(dir + "/granule.log");
    TimeBasedRollingPolicy<ILoggingEvent> policy = new TimeBasedRollingPolicy<>();
    policy.setContext(context);
    policy.setParent(a);
    policy.setFileNamePattern(dir + "/granule.%d{yyyy-MM-dd}.log.gz");
    policy.setMaxHistory(14);
    policy.start();
    a.setRollingPolicy(policy);
    a.setEncoder(encoder(context, FILE_PATTERN));
    a.start();
    return a;
  }

  private static PatternLayoutEncoder encoder(LoggerContext context, String pattern) {
    PatternLayoutEncoder e = new PatternLayoutEncoder();
    e.setContext(context);
    e.setPattern(pattern);
    e.start();
    return e;
  }
}
