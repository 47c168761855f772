package io.granule.engine.internal.osgi;

import io.granule.engine.internal.cli.Cli;
import io.granule.engine.internal.ops.Jobs;
import java.time.Clock;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Deactivate;

/** The server's background jobs, for the REST API, journaled in the data directory. */
@Component(service = JobsComponent.class)
public final class JobsComponent {
  private final Jobs jobs;

  @Activate
  public JobsComponent(org.osgi.framework.BundleContext context) {
    boolean server = RuntimeProperties.server(context);
    // a server's jobs outlive it (jobs/ of its data directory); a one-shot command's need not
    this.jobs =
        new Jobs(
            Clock.systemUTC(),
            Cli::exitCode,
            server ? RuntimeProperties.dataDir(context).resolve("jobs") : null);
    if (server) {
      // a stopping server lets running jobs finish (Jobs.close): their locks wait for them
      io.granule.engine.internal.repo.lock.Lock.setExitGrace(
          Jobs.STOP_GRACE.plus(java.time.Duration.ofSeconds(5)));
    }
  }

  public Jobs jobs() {
    return jobs;
  }

  @Deactivate
  void deactivate() {
    jobs.close();
  }
}
