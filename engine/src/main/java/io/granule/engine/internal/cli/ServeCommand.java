package io.granule.engine.internal.cli;

import io.granule.engine.internal.nbd.NbdExport;
import io.granule.engine.internal.nbd.NbdServer;
import io.granule.engine.internal.nbd.OverlayDisk;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code granule serve}: serves a snapshot to other programs without restoring it. */
@Command(
    name = "serve",
    mixinStandardHelpOptions = true,
    description = "Serve a snapshot to other programs without restoring it first.",
    subcommands = {ServeCommand.Nbd.class})
final class ServeCommand extends ContextCommand {
  @Spec CommandSpec spec;

  @Override
  public Integer call() {
    spec.commandLine().usage(context().err());
    return ExitCodes.USAGE;
  }

  /** {@code granule serve nbd SNAP[:DISK]}: instant recovery over the NBD protocol. */
  @Command(
      name = "nbd",
      mixinStandardHelpOptions = true,
      description = {
        "Serve disks of a snapshot over NBD, fetching chunks from the repository on demand, "
            + "so a VM, qemu-img, nbdcopy or nbdfuse uses the backup directly (instant recovery). "
            + "SNAP is a snapshot id, a unique prefix, or 'latest'. With DISK only that disk is "
            + "served; without it every disk of the snapshot is. Each disk is the export named "
            + "after it; the default export (empty name) is DISK, or the snapshot's first disk. "
            + "Read-only unless --writable: then writes go to a local sparse overlay per disk, "
            + "never to the repository, and are discarded at exit unless --overlay DIR keeps them "
            + "(DIR/NAME.overlay and DIR/NAME.overlay-map; serving the same snapshot and disk with "
            + "the same DIR again resumes them). Runs until Ctrl-C or SIGTERM."
      })
  static final class Nbd extends ContextCommand {
    /** The launcher's {@code Launcher.AWAIT_COMMAND_PROPERTY} (the runtime is not visible here). */
    static final String STOP_AWAITS_COMMAND = "granule.stop.awaits.command";

    static final int DEFAULT_PORT = 10809;

    @Mixin RepoOption repo;

    @Mixin SnapshotFilterOption filter;

    @Parameters(paramLabel = "SNAP[:DISK]", description = "What to serve.")
    String what;

    @Option(
        names = "--listen",
        paramLabel = "HOST:PORT",
        defaultValue = "127.0.0.1:" + DEFAULT_PORT,
        description = "Address to listen on (default: ${DEFAULT-VALUE}; port 0 picks a free one).")
    String listen;

    @Option(
        names = "--users",
        paramLabel = "NAME[,NAME...]",
        description =
            "Also serve these local users (names or uids): by default only the user this runs as"
                + " and root may connect from this host (through any of its addresses); on a"
                + " non-loopback address anyone on another host who can reach it may.")
    String users;

    @Option(
        names = "--writable",
        description = "Accept writes, kept in a local overlay; the repository is never changed.")
    boolean writable;

    @Option(
        names = "--overlay",
        paramLabel = "DIR",
        description = "Keep the overlays in DIR after exit (implies --writable).")
    Path overlayDir;

    @Override
    public Integer call() throws IOException, InterruptedException {
      InetSocketAddress address = parseListen(listen);
      java.util.Set<Integer> allowed;
      try {
        allowed = io.granule.engine.internal.net.PeerUser.parse(users);
      } catch (IllegalArgumentException e) {
        throw new CommandException(ExitCodes.USAGE, "--users: " + e.getMessage());
      }
      int colon = what.indexOf(':');
      String snapRef = colon < 0 ? what : what.substring(0, colon);
      String diskName = colon < 0 ? null : what.substring(colon + 1);
      boolean write = writable || overlayDir != null;
      PrintWriter out = context().out();
      List<SnapshotDisk> disks = new ArrayList<>();
      List<OverlayDisk> overlays = new ArrayList<>();
      try (Repository r = repo.open(context(), LockKind.SHARED, "serve nbd")) {
        Manifest snap = r.resolve(snapRef, filter.filter(), diskName);
        String snapId = snap.id().substring(0, 12);
        List<String> names = new ArrayList<>();
        if (diskName != null) {
          names.add(diskName);
        } else {
          snap.disks().forEach(d -> names.add(d.name()));
        }
        List<NbdExport> exports = new ArrayList<>();
        NbdServer server;
        try {
          for (String name : names) {
            SnapshotDisk disk = r.openDisk(snap, name);
            disks.add(disk);
            if (write) {
              OverlayDisk o = openOverlay(disk, snap, name);
              overlays.add(o);
              exports.add(NbdExport.writable(name, o));
            } else {
              exports.add(NbdExport.readOnly(name, disk));
            }
          }
          NbdExport first = exports.get(0);
          exports.add(new NbdExport("", first.image(), first.overlay()));
          server = new NbdServer(exports).allowUsers(allowed);
          try {
            server.start(address);
          } catch (IOException e) {
            throw new CommandException(
                ExitCodes.SERVER,
                "unable to listen on "
                    + listen
                    + ": "
                    + e.getMessage()
                    + (e instanceof BindException
                        ? "; choose another --listen address (port 0 picks a free one)"
                        : ""),
                e);
          }
          CountDownLatch stop = new CountDownLatch(1);
          CountDownLatch reported = new CountDownLatch(1);
          Thread hook =
              new Thread(
                  () -> {
                    stop.countDown();
                    awaitQuietly(reported);
                  },
                  "granule-serve-nbd-stop");
          // the launcher's own hook then waits for this command to end (it does, released by the
          // hook above) before it stops the framework: stopped under it, the repository's close
          // met bundles without class loaders (NoClassDefFoundError: Unmapper), and a kept
          // overlay's map could go unsaved
          System.setProperty(STOP_AWAITS_COMMAND, "true");
          try {
            Runtime.getRuntime().addShutdownHook(hook);
          } catch (IllegalStateException shuttingDown) {
            stop.countDown(); // a signal came already: stop at once, closing as below
          }
          try {
            InetSocketAddress bound = server.address();
            String host = bound.getAddress().getHostAddress();
            if (host.contains(":")) {
              host = "[" + host + "]";
            }
            String base = "nbd://" + host + ":" + bound.getPort() + "/";
            for (NbdExport e : exports) {
              String disk = e.name().isEmpty() ? first.name() : e.name();
              out.println(
                  "serving snapshot "
                      + snapId
                      + " disk "
                      + disk
                      + " ("
                      + Sizes.human(e.image().size())
                      + ") at "
                      + base
                      + e.name()
                      + (write ? " (writable)" : " (read-only)"));
            }
            out.flush();
            String exposed = ListenAddress.exposure(bound.getAddress(), "serve nbd");
            if (exposed != null) {
              context().err().println(exposed);
              context().err().flush();
              org.slf4j.LoggerFactory.getLogger(ServeCommand.class).warn("{}", exposed);
            }
            stop.await();
          } finally {
            try {
              server.close();
              report(out, snapId, disks);
              // Before the JVM may exit: a kept overlay saves its map on close.
              closeAll(overlays, disks);
            } finally {
              reported.countDown();
            }
            try {
              Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
              // SIGTERM: the hook is running and waited for the report above.
            }
          }
        } finally {
          closeAll(overlays, disks);
        }
      }
      return ExitCodes.OK;
    }

    private OverlayDisk openOverlay(SnapshotDisk disk, Manifest snap, String name) {
      try {
        if (overlayDir == null) {
          return OverlayDisk.temporary(disk, Path.of(System.getProperty("java.io.tmpdir")));
        }
        return OverlayDisk.open(
            disk,
            overlayDir,
            name.replaceAll("[^A-Za-z0-9._-]", "_"),
            "snapshot " + snap.id() + " disk " + name);
      } catch (IOException e) {
        throw new CommandException(
            ExitCodes.TARGET,
            "unable to open the overlay of disk '" + name + "': " + e.getMessage(),
            e);
      }
    }

    private void report(PrintWriter out, String snapId, List<SnapshotDisk> disks) {
      long chunks = 0;
      long bytes = 0;
      for (SnapshotDisk d : disks) {
        chunks += d.chunksFetched();
        bytes += d.bytesFetched();
      }
      out.println(
          "stopped serving snapshot "
              + snapId
              + ": "
              + chunks
              + " chunks ("
              + Sizes.human(bytes)
              + ") fetched from the repository"
              + (overlayDir != null ? "; overlays kept in " + overlayDir : ""));
      out.flush();
    }

    /** Closes and forgets every overlay and disk; safe to call again. */
    private static void closeAll(List<OverlayDisk> overlays, List<SnapshotDisk> disks)
        throws IOException {
      for (OverlayDisk o : overlays) {
        o.close();
      }
      overlays.clear();
      for (SnapshotDisk d : disks) {
        d.close();
      }
      disks.clear();
    }

    private static void awaitQuietly(CountDownLatch latch) {
      try {
        latch.await(30, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }

    private static InetSocketAddress parseListen(String listen) {
      return ListenAddress.parse(listen, "127.0.0.1:10809");
    }
  }
}
