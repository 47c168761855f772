package io.granule.plugin.mysql.internal;

import io.granule.engine.spi.ApplicationException;
import io.granule.engine.spi.ApplicationPlugin;
import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.ApplicationSession;
import io.granule.engine.spi.ObjectRestoreReport;
import io.granule.engine.spi.ObjectRestoreRequest;
import io.granule.engine.spi.SnapshotView;
import java.net.URI;
import java.util.function.UnaryOperator;
import org.osgi.service.component.annotations.Component;

/**
 * MariaDB and MySQL: {@code mysql://user@host:port/db} and {@code mariadb://…}. The password comes
 * from {@code MYSQL_PWD} (never from the URL, never logged).
 *
 * <p>Stateless and thread-safe.
 */
@Component(service = ApplicationPlugin.class)
public final class MysqlPlugin implements ApplicationPlugin {
  private final UnaryOperator<String> env;

  /** The OSGi component: reads the environment. */
  public MysqlPlugin() {
    this(System::getenv);
  }

  /** For tests: {@code env} stands for {@link System#getenv(String)}. */
  MysqlPlugin(UnaryOperator<String> env) {
    this.env = env;
  }

  @Override
  public String name() {
    return "mysql";
  }

  @Override
  public boolean handles(URI url) {
    return MysqlUrl.handles(url);
  }

  @Override
  public ApplicationSession connect(URI url) throws ApplicationException {
    return MysqlSession.open(MysqlUrl.parse(url), password());
  }

  @Override
  public ObjectRestoreReport restore(
      ObjectRestoreRequest request,
      SnapshotView snapshot,
      ApplicationRecord record,
      RestoreProgress progress)
      throws ApplicationException {
    return new TableRestore(request, snapshot, record, progress, password(), env).run();
  }

  private String password() {
    return env.apply("MYSQL_PWD");
  }
}
