package io.granule.engine.internal.rest;

import io.granule.engine.api.PluginInventory;
import io.granule.engine.internal.app.AppUrls;
import io.granule.engine.internal.app.Catalogs;
import io.granule.engine.internal.app.ObjectRestore;
import io.granule.engine.internal.cli.Cli;
import io.granule.engine.internal.cli.CommandException;
import io.granule.engine.internal.cli.DiskRestore;
import io.granule.engine.internal.cli.ExitCodes;
import io.granule.engine.internal.cli.Json;
import io.granule.engine.internal.cli.RepairCommand;
import io.granule.engine.internal.cli.RepoOption;
import io.granule.engine.internal.cli.StatsCommand;
import io.granule.engine.internal.image.FsFreeze;
import io.granule.engine.internal.image.ImageException;
import io.granule.engine.internal.image.ImageInspector;
import io.granule.engine.internal.net.PeerUser;
import io.granule.engine.internal.ops.BackupOperation;
import io.granule.engine.internal.ops.BackupOperation.AppSpec;
import io.granule.engine.internal.ops.BackupOperation.ConsistencySpec;
import io.granule.engine.internal.ops.BackupOperation.DiskSpec;
import io.granule.engine.internal.ops.Jobs;
import io.granule.engine.internal.osgi.ApplicationPlugins;
import io.granule.engine.internal.osgi.DiskImageFormats;
import io.granule.engine.internal.osgi.FileSystemTypes;
import io.granule.engine.internal.osgi.JobsComponent;
import io.granule.engine.internal.osgi.SnapshotProviders;
import io.granule.engine.internal.plugin.PluginUnavailableException;
import io.granule.engine.internal.repo.PasswordSource;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.backup.BackupProgress;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.internal.repo.backup.DataSubset;
import io.granule.engine.internal.repo.backup.RestoreResult;
import io.granule.engine.internal.repo.backup.VerifyReport;
import io.granule.engine.internal.repo.lock.LockKind;
import io.granule.engine.internal.repo.maintenance.Repairer;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotFilter;
import jakarta.servlet.Servlet;
import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.URI;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.osgi.framework.BundleContext;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Reference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The REST API under {@code /api}: JSON in, JSON out. Errors are {@code {"error": "…"}} with a
 * status that says whose fault it is (4xx: the request's, 409: a plugin changed, 5xx: ours).
 *
 * <ul>
 *   <li>{@code GET /api/version}
 *   <li>{@code GET /api/plugins}: the plugin inventory, as {@code granule plugins --json}
 *   <li>{@code GET /api/images/info?path=FILE[&format=NAME]}: as {@code granule image info --json}
 *   <li>{@code GET /api/snapshots?repo=PATH[&host=H][&tag=T…]}: as {@code granule snapshots --json}
 *   <li>{@code POST /api/backups} with {@code {"repo": PATH, "disks": [{"name": N, "path": FILE,
 *       "format": F}], "host": H, "tags": [T], "freeze": [MOUNT], "freezeTimeoutSeconds": S}}:
 *       starts a backup job; answers 202 with the job
 *   <li>{@code POST /api/restores/disk} with {@code {"repo": PATH, "snapshot": SNAP, "disk": NAME,
 *       "to": FILE, "format": F, "force": false, "inPlace": false}}: starts a restore of a whole
 *       disk to a file or block device, as {@code granule restore disk}; answers 202 with the job,
 *       or 4xx at once for a target that exists without force (409), a directory (409), an image
 *       format for a device (422)
 *   <li>{@code POST /api/restores/table}: restores one table into a live database
 *   <li>{@code GET /api/stats?repo=PATH}: as {@code granule stats --json}
 *   <li>{@code POST /api/verify} with {@code {"repo": PATH, "readData": false, "readDataSubset":
 *       "1/7"}}: starts a verify job; damage found fails it with exit code 5, its report kept as
 *       the result
 *   <li>{@code POST /api/repair} with {@code {"repo": PATH, "dryRun": false, "packs": [NAME]}}:
 *       starts a repair job (as {@code granule repair}, under the exclusive lock; a dry run under
 *       the shared lock); snapshots left using lost chunks, or a dry run that found damaged packs,
 *       fail it with exit code 5, its report kept as the result
 *   <li>{@code GET /api/jobs}, {@code GET /api/jobs/ID}: jobs with state, progress, result, error
 * </ul>
 */
@Component(
    service = Servlet.class,
    property = {
      "osgi.http.whiteboard.servlet.pattern=/api/*",
      "osgi.http.whiteboard.servlet.name=granule-api",
      // request bodies are read without holding a thread (see readBodyThenDispatch)
      "osgi.http.whiteboard.servlet.asyncSupported=true"
    })
public final class ApiServlet extends HttpServlet {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(ApiServlet.class);

  private final transient PluginInventory plugins;
  private final transient DiskImageFormats formats;
  private final transient Jobs jobs;
  private final transient SnapshotProviders snapshotProviders;
  private final transient ApplicationPlugins applications;
  private final transient FileSystemTypes fileSystems;
  private final String version;

  @Activate
  public ApiServlet(
      BundleContext context,
      @Reference PluginInventory plugins,
      @Reference DiskImageFormats formats,
      @Reference JobsComponent jobs,
      @Reference SnapshotProviders snapshotProviders,
      @Reference ApplicationPlugins applications,
      @Reference FileSystemTypes fileSystems) {
    this.snapshotProviders = snapshotProviders;
    this.applications = applications;
    this.fileSystems = fileSystems;
    this.plugins = plugins;
    this.formats = formats;
    this.jobs = jobs.jobs();
    this.version = context.getBundle().getVersion().toString();
  }

  /**
   * Request bodies are a few KB; a larger one is refused (413) before it fills the heap. Small
   * enough that a full queue of jobs ({@link Jobs#MAX_QUEUED}) made from such bodies fits the heap
   * (at 1 MiB, 293 queued jobs were an OutOfMemoryError).
   */
  static final int MAX_BODY_BYTES = 64 << 10;

  /** How much of an oversized body is read and dropped before the 413. */
  private static final long DRAIN_BYTES = 64L << 20;

  /**
   * How long a client has to send a request body, from the end of its headers: past it, 408. A body
   * is at most {@link #MAX_BODY_BYTES}, so any live client sends it in far less; without a bound,
   * clients trickling a byte now and then held the container's threads until it had none left for
   * anyone (300 such connections took the API down).
   */
  static final long BODY_TIMEOUT_MS = Long.getLong("granule.api.bodyTimeoutMs", 30_000L);

  /** The request attribute holding a body {@link #readBodyThenDispatch} read. */
  private static final String BODY_ATTRIBUTE = ApiServlet.class.getName() + ".body";

  /** Bad input found while handling a request: 400 with this message. */
  static final class BadRequest extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final int status;

    BadRequest(int status, String message) {
      super(message);
      this.status = status;
    }
  }

  /**
   * Refuses what a web page in the operator's browser could send (a cross-origin request; a
   * loopback server reached under a foreign host name, i.e. DNS rebinding: 403), and answers every
   * failure as JSON: bad input 400, a full queue 503, anything else 500.
   */
  @Override
  protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
    String refused = crossSite(req);
    if (refused == null) {
      try {
        refused = otherUser(req);
      } catch (PeerUser.Busy e) {
        // a flood of connections (another local user's?): refused before anything is done for it
        resp.setHeader("Retry-After", "1");
        send(resp, 503, Map.of("error", e.getMessage()));
        return;
      }
    }
    if (refused != null) {
      send(resp, 403, Map.of("error", refused));
      return;
    }
    String method = req.getMethod();
    if (!List.of("GET", "HEAD", "POST", "DELETE", "OPTIONS").contains(method)) {
      // TRACE would echo the request's headers; PUT, PATCH and the rest mean nothing here
      resp.setHeader("Allow", "GET, HEAD, POST, DELETE, OPTIONS");
      send(resp, 405, Map.of("error", "method " + method + " is not allowed"));
      return;
    }
    if (method.equals("POST") && req.getAttribute(BODY_ATTRIBUTE) == null) {
      readBodyThenDispatch(req, resp);
      return;
    }
    // Requests that touch paths (a repository, a disk, a target) may block on a filesystem that
    // does not answer (a dead NFS mount), and a blocked one holds a container thread: at most
    // PROBING of them at once, so that the others (version, jobs, cancels) are always answered.
    String info = req.getPathInfo() == null ? "/" : req.getPathInfo();
    boolean light = info.equals("/version") || info.equals("/jobs") || info.startsWith("/jobs/");
    if (!light && !probing.tryAcquire()) {
      resp.setHeader("Retry-After", "60");
      send(
          resp,
          503,
          Map.of(
              "error",
              PROBING
                  + " requests are already waiting on repositories or disks (a filesystem that"
                  + " does not answer?): try again later; GET /api/jobs and cancels still work"));
      return;
    }
    if (!light) {
      beginClaims();
    }
    try {
      super.service(req, resp);
    } catch (BadRequest e) {
      sendIfOpen(resp, e.status, e.getMessage());
    } catch (InvalidPathException e) {
      sendIfOpen(resp, 400, "invalid path: " + e.getMessage());
    } catch (Jobs.Claimed e) {
      sendIfOpen(resp, 409, e.getMessage());
    } catch (Jobs.Refused e) {
      resp.setHeader("Retry-After", "60");
      sendIfOpen(resp, 503, e.getMessage());
    } catch (RuntimeException e) {
      if (e.getClass().getSimpleName().equals("BadMessageException")) {
        // the container's own "bad request" (a query that is not valid percent-encoding, say),
        // without a compile-time dependency on the container
        sendIfOpen(resp, 400, "bad request: " + e.getMessage());
        return;
      }
      LOG.error("{} /api{} failed", req.getMethod(), req.getPathInfo(), e);
      sendIfOpen(resp, 500, String.valueOf(e.getMessage()));
    } catch (ServletException e) {
      LOG.error("{} /api{} failed", req.getMethod(), req.getPathInfo(), e);
      sendIfOpen(resp, 500, String.valueOf(e.getMessage()));
    } finally {
      if (!light) {
        releasePrefixes();
        probing.release();
      }
    }
  }

  /** Requests touching paths that may run at once (see {@link #service}). */
  static final int PROBING = 64;

  private final java.util.concurrent.Semaphore probing =
      new java.util.concurrent.Semaphore(PROBING);

  /**
   * An address literal as the container gives it ({@code [::1]} or {@code ::1}), never looked up.
   */
  private static java.net.InetAddress literal(String ip) throws java.net.UnknownHostException {
    String bare = ip.startsWith("[") && ip.endsWith("]") ? ip.substring(1, ip.length() - 1) : ip;
    if (!bare.matches("[0-9A-Fa-f:.%a-zA-Z]+")
        || !(bare.contains(":") || bare.matches("[0-9.]+"))) {
      throw new java.net.UnknownHostException(ip);
    }
    return java.net.InetAddress.getByName(bare);
  }

  /**
   * Why a request must be refused as another local user's, or null: a job runs with the server's
   * rights, so only the user the server runs as, root, and the users {@code granule server
   * --api-users} names may use it (the kernel's socket table says who connected), on whatever
   * address of this host they connected (audit10 rest F1). A client on another host is not told
   * apart from others (see the README).
   */
  static String otherUser(HttpServletRequest req) {
    try {
      return PeerUser.refusal(
          new java.net.InetSocketAddress(literal(req.getRemoteAddr()), req.getRemotePort()),
          new java.net.InetSocketAddress(literal(req.getLocalAddr()), req.getLocalPort()),
          allowedUsers(),
          "start it with --api-users NAME");
    } catch (java.net.UnknownHostException e) {
      return "cannot tell which local user sent this request (address " + e.getMessage() + ")";
    }
  }

  /** {@link #API_USERS} and the uids it names, parsed once per value (not per request). */
  private static volatile Map.Entry<String, java.util.Set<Integer>> allowed;

  /** The uids {@link #API_USERS} lets in besides the server's own user and root. */
  public static java.util.Set<Integer> allowedUsers() {
    String users = System.getProperty(API_USERS, "");
    Map.Entry<String, java.util.Set<Integer>> a = allowed;
    if (a == null || !a.getKey().equals(users)) {
      a = Map.entry(users, java.util.Set.copyOf(PeerUser.parse(users)));
      allowed = a;
    }
    return a.getValue();
  }

  /** The system property {@code granule server --api-users} sets. */
  public static final String API_USERS = "granule.api.users";

  /** Why a request must be refused as cross-site, or null. */
  static String crossSite(HttpServletRequest req) {
    String host = req.getHeader("Host");
    String fetchSite = req.getHeader("Sec-Fetch-Site"); // set by browsers, even without Origin
    if (fetchSite != null
        && !fetchSite.equalsIgnoreCase("same-origin")
        && !fetchSite.equalsIgnoreCase("none")) {
      return "cross-site request (Sec-Fetch-Site: " + fetchSite + ") refused";
    }
    String origin = req.getHeader("Origin");
    if (origin != null) {
      String originHost;
      try {
        URI o = URI.create(origin);
        originHost = o.getRawAuthority();
      } catch (IllegalArgumentException e) {
        originHost = null;
      }
      if (originHost == null || !originHost.equalsIgnoreCase(host)) {
        return "cross-origin request from " + origin + " refused";
      }
    }
    if (isLoopback(req.getLocalAddr()) && host != null && !isLoopbackName(host)) {
      return "this server listens on a loopback address: requests must name it so (Host: "
          + host
          + " refused)";
    }
    return null;
  }

  /**
   * Whether {@code address}, an IP address literal (IPv6 with or without brackets, in any of its
   * spellings, or IPv4-mapped), is a loopback address.
   */
  static boolean isLoopback(String address) {
    if (address == null) {
      return false;
    }
    String a = address.trim();
    if (a.startsWith("[") && a.endsWith("]")) {
      a = a.substring(1, a.length() - 1);
    }
    int zone = a.indexOf('%');
    if (zone >= 0) {
      a = a.substring(0, zone);
    }
    if (a.indexOf(':') >= 0) {
      if (!a.matches("[0-9a-fA-F:.]+")) {
        return false;
      }
      try {
        // an IPv6 literal: parsed, never looked up
        return java.net.InetAddress.getByName("[" + a + "]").isLoopbackAddress();
      } catch (java.net.UnknownHostException | RuntimeException e) {
        return false;
      }
    }
    return isLoopbackIpv4(a);
  }

  /** Whether a Host header ({@code name[:port]}) names this host's loopback interface. */
  static boolean isLoopbackName(String hostHeader) {
    String h = hostHeader.trim().toLowerCase(java.util.Locale.ROOT);
    if (h.startsWith("[")) {
      int end = h.indexOf(']');
      return end > 0 && isLoopback(h.substring(1, end));
    }
    int colon = h.lastIndexOf(':');
    String name = colon >= 0 ? h.substring(0, colon) : h;
    if (colon >= 0 && !h.substring(colon + 1).matches("[0-9]{1,5}")) {
      return false;
    }
    // a name beginning with "127." is not an address: 127.attacker.example can be rebound
    return name.equals("localhost") || name.endsWith(".localhost") || isLoopbackIpv4(name);
  }

  /** Whether {@code s} is a dotted-quad address in 127.0.0.0/8 (and nothing else). */
  private static boolean isLoopbackIpv4(String s) {
    String[] parts = s.split("\\.", -1);
    if (parts.length != 4 || !parts[0].equals("127")) {
      return false;
    }
    for (String p : parts) {
      if (!p.matches("[0-9]{1,3}") || Integer.parseInt(p) > 255) {
        return false;
      }
    }
    return true;
  }

  private static void sendIfOpen(HttpServletResponse resp, int status, String error)
      throws IOException {
    if (!resp.isCommitted()) {
      resp.reset();
      send(resp, status, Map.of("error", error));
    }
  }

  /**
   * As {@link #sendIfOpen}, and the connection is closed after the answer (its input is unread).
   */
  private static void sendClosing(HttpServletResponse resp, int status, String error)
      throws IOException {
    if (!resp.isCommitted()) {
      resp.reset();
      resp.setHeader("Connection", "close");
      send(resp, status, Map.of("error", error));
    }
  }

  @Override
  protected void doDelete(HttpServletRequest req, HttpServletResponse resp) throws IOException {
    String path = req.getPathInfo() == null ? "/" : req.getPathInfo();
    if (!path.startsWith("/jobs/")) {
      send(resp, 404, Map.of("error", "no such endpoint: DELETE /api" + path));
      return;
    }
    String id = path.substring("/jobs/".length());
    var job = jobs.cancel(id);
    if (job.isPresent()) {
      send(resp, 200, job.get());
    } else {
      send(resp, 404, Map.of("error", "no job " + id));
    }
  }

  @Override
  protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
    String path = req.getPathInfo() == null ? "/" : req.getPathInfo();
    try {
      switch (path) {
        case "/version" -> send(resp, 200, Map.of("version", version));
        case "/plugins" -> send(resp, 200, plugins.plugins());
        case "/images/info" -> {
          String file = required(req, resp, "path");
          if (file == null) {
            return;
          }
          send(
              resp,
              200,
              new ImageInspector(formats.leases())
                  .inspect(notARestoreLock(path(file, "path")), req.getParameter("format")));
        }
        case "/snapshots" -> {
          String repo = required(req, resp, "repo");
          if (repo == null) {
            return;
          }
          try (Repository r = openRepository(path(repo, "repo"))) {
            SnapshotFilter filter = filter(req);
            send(resp, 200, r.snapshots().stream().filter(filter::matches).toList());
          }
        }
        case "/catalog" -> {
          String repo = req.getParameter("repo");
          String snap = req.getParameter("snapshot");
          String find = req.getParameter("find");
          if (repo == null || repo.isBlank() || (snap == null && find == null)) {
            send(
                resp,
                400,
                Map.of("error", "parameters 'repo' and 'snapshot' or 'find' are required"));
            return;
          }
          try (Repository r = openRepository(path(repo, "repo"))) {
            // The same shared lock as 'granule catalog': not while a prune runs (409).
            r.lock(LockKind.SHARED, "catalog", Duration.ZERO);
            SnapshotFilter filter = filter(req);
            List<Manifest> snaps =
                snap != null
                    ? List.of(r.resolve(snap, filter, null))
                    : r.snapshots().stream().filter(filter::matches).toList();
            send(
                resp,
                200,
                Catalogs.search(
                    r,
                    snaps,
                    find,
                    req.getParameter("kind"),
                    Catalogs.cacheDir(RepoOption.metadataCache(System::getenv), r)));
          }
        }
        case "/stats" -> {
          String repo = required(req, resp, "repo");
          if (repo == null) {
            return;
          }
          try (Repository r = openRepository(path(repo, "repo"))) {
            send(resp, 200, StatsCommand.json(r.stats(), r.config()));
          }
        }
        case "/jobs" -> send(resp, 200, jobs.list());
        default -> {
          if (path.startsWith("/jobs/")) {
            String id = path.substring("/jobs/".length());
            var job = jobs.get(id);
            if (job.isPresent()) {
              send(resp, 200, job.get());
            } else {
              send(resp, 404, Map.of("error", "no job " + id));
            }
          } else {
            send(resp, 404, Map.of("error", "no such endpoint: /api" + path));
          }
        }
      }
    } catch (RepositoryException e) {
      send(resp, status(Cli.exitCode(e)), Map.of("error", e.getMessage()));
    } catch (ImageException e) {
      send(resp, 422, Map.of("error", e.getMessage()));
    } catch (PluginUnavailableException e) {
      send(resp, 409, Map.of("error", e.getMessage()));
    } catch (InvalidPathException e) {
      send(resp, 400, Map.of("error", "invalid path: " + e.getMessage()));
    }
  }

  @Override
  protected void doPost(HttpServletRequest req, HttpServletResponse resp) throws IOException {
    String path = req.getPathInfo() == null ? "/" : req.getPathInfo();
    if (path.equals("/restores/table")) {
      restoreTable(req, resp);
      return;
    }
    if (path.equals("/restores/disk")) {
      restoreDisk(req, resp);
      return;
    }
    if (path.equals("/verify")) {
      verify(req, resp);
      return;
    }
    if (path.equals("/repair")) {
      repair(req, resp);
      return;
    }
    if (!path.equals("/backups")) {
      send(resp, 404, Map.of("error", "no such endpoint: POST /api" + path));
      return;
    }
    BackupBody body = body(req, resp, BackupBody.class, "a backup request");
    if (body == null) {
      return;
    }
    if (body.repo() == null || body.disks() == null || body.disks().isEmpty()) {
      send(resp, 400, Map.of("error", "'repo' and at least one entry in 'disks' are required"));
      return;
    }
    List<DiskSpec> specs = new ArrayList<>();
    try {
      for (BackupBody.Disk d : body.disks()) {
        if (d == null || d.path() == null) {
          send(resp, 400, Map.of("error", "every disk needs a 'path'"));
          return;
        }
        notARestoreLock(path(d.path(), "disks[].path"));
        specs.add(
            d.name() == null
                ? DiskSpec.parse(d.path(), d.format())
                : new DiskSpec(d.name(), notARestoreLock(Path.of(d.path())), d.format()));
      }
      BackupOperation.checkNames(specs);
      BackupOperation.checkLabel("host", body.host());
      for (String t : body.tags() == null ? List.<String>of() : body.tags()) {
        BackupOperation.checkLabel("tag", t);
      }
    } catch (IllegalArgumentException e) {
      send(resp, 400, Map.of("error", e.getMessage()));
      return;
    }
    noNulls(body.tags(), "tags");
    noNulls(body.freeze(), "freeze");
    noNulls(body.apps(), "apps");
    Path repo = path(body.repo(), "repo");
    List<URI> apps = new ArrayList<>();
    try {
      for (String a : body.apps() == null ? List.<String>of() : body.apps()) {
        apps.add(AppUrls.parse(a));
      }
    } catch (IllegalArgumentException e) {
      send(resp, 400, Map.of("error", e.getMessage()));
      return;
    }
    AppSpec appSpec =
        apps.isEmpty()
            ? null
            : new AppSpec(
                apps,
                Duration.ofSeconds(
                    body.appMaxHoldSeconds() == null ? 600 : body.appMaxHoldSeconds()));
    BackupOperation op =
        new BackupOperation(formats.leases(), snapshotProviders.leases(), applications.leases())
            .withChangeTracking(Boolean.TRUE.equals(body.changeTracking()))
            .withReadLocks(DiskRestore::lockForReading);
    if (body.freezeTimeoutSeconds() != null && body.freezeTimeoutSeconds() < 1) {
      throw new BadRequest(400, "'freezeTimeoutSeconds' must be at least 1");
    }
    long maxHold = BackupOperation.MAX_HOLD.toSeconds();
    if ((body.freezeTimeoutSeconds() != null && body.freezeTimeoutSeconds() > maxHold)
        || (body.appMaxHoldSeconds() != null && body.appMaxHoldSeconds() > maxHold)) {
      throw new BadRequest(
          400, "'freezeTimeoutSeconds' and 'appMaxHoldSeconds' are at most " + maxHold);
    }
    if (body.appMaxHoldSeconds() != null && body.appMaxHoldSeconds() < 1) {
      throw new BadRequest(400, "'appMaxHoldSeconds' must be at least 1");
    }
    ConsistencySpec consistency =
        body.freeze() == null || body.freeze().isEmpty()
            ? null
            : new ConsistencySpec(
                FsFreeze.NAME,
                body.freeze().stream().map(f -> path(f, "freeze")).toList(),
                Duration.ofSeconds(
                    body.freezeTimeoutSeconds() == null ? 120 : body.freezeTimeoutSeconds()));
    Jobs.Job job =
        jobs.submit(
            "backup",
            "backup of " + specs.stream().map(DiskSpec::name).toList() + " into " + repo,
            repo,
            j -> {
              try (Repository r = openRepository(repo)) {
                // The same shared lock as 'granule backup': a prune elsewhere makes it fail (409).
                r.lock(LockKind.SHARED, "backup", Duration.ZERO);
                BackupResult res =
                    op.run(
                        r,
                        specs,
                        List.of(),
                        consistency,
                        appSpec,
                        body.host(),
                        body.tags() == null ? List.of() : body.tags(),
                        p -> {
                          if (j.cancelled()) { // the reader does not wait interruptibly
                            throw new java.util.concurrent.CancellationException("cancelled");
                          }
                          j.progress(progress(p));
                        });
                Map<String, Object> out = new java.util.LinkedHashMap<>();
                out.put("snapshot", res.manifest().id());
                out.put("bytesRead", res.progress().bytesRead());
                out.put("bytesNew", res.progress().bytesNew());
                out.put("bytesStored", res.progress().bytesNew());
                out.put("bytesUnchanged", res.progress().bytesUnchanged());
                out.put("notes", op.notes());
                return out;
              }
            });
    resp.setHeader("Location", "/api/jobs/" + job.id());
    send(resp, 202, job.view());
  }

  /** Backup progress as the API shows it. */
  static Map<String, Object> progress(BackupProgress p) {
    Map<String, Object> m = new java.util.LinkedHashMap<>();
    m.put("disk", p.disk());
    m.put("bytesTotal", p.bytesTotal());
    m.put("bytesRead", p.bytesRead());
    m.put("bytesNew", p.bytesNew()); // as bytesStored (the name of earlier versions)
    m.put("bytesStored", p.bytesNew());
    m.put("bytesDeduplicated", p.bytesDeduplicated());
    m.put("bytesZero", p.bytesZero());
    m.put("bytesUnchanged", p.bytesUnchanged());
    m.put("bytesPerSecond", (long) p.rate());
    m.put("etaSeconds", p.eta() == null ? null : p.eta().toSeconds());
    m.put("done", p.done());
    return m;
  }

  /** The body of {@code POST /api/backups}. */
  record BackupBody(
      String repo,
      List<Disk> disks,
      String host,
      List<String> tags,
      List<String> freeze,
      Long freezeTimeoutSeconds,
      List<String> apps,
      Long appMaxHoldSeconds,
      Boolean changeTracking) {
    record Disk(String name, String path, String format) {}
  }

  /** The body of {@code POST /api/restores/disk}. */
  record DiskRestoreBody(
      String repo,
      String snapshot,
      String disk,
      String to,
      String format,
      Boolean force,
      Boolean inPlace,
      String host,
      List<String> tags) {}

  private void restoreDisk(HttpServletRequest req, HttpServletResponse resp) throws IOException {
    DiskRestoreBody body = body(req, resp, DiskRestoreBody.class, "a disk restore");
    if (body == null) {
      return;
    }
    if (body.repo() == null || body.snapshot() == null || body.to() == null) {
      send(resp, 400, Map.of("error", "'repo', 'snapshot' and 'to' are required"));
      return;
    }
    Path to = path(body.to(), "to");
    DiskRestore restore;
    try {
      restore =
          DiskRestore.prepare(
              formats.leases(),
              to,
              Boolean.TRUE.equals(body.force()),
              body.format(),
              Boolean.TRUE.equals(body.inPlace()));
    } catch (CommandException e) {
      send(resp, status(e.exitCode()), Map.of("error", e.getMessage()));
      return;
    }
    noNulls(body.tags(), "tags");
    Path repo = path(body.repo(), "repo");
    Jobs.Job job =
        jobs.submit(
            "restore-disk",
            "restore of "
                + body.snapshot()
                + (body.disk() == null ? "" : ":" + body.disk())
                + " to "
                + to
                + " ("
                + restore.format()
                + ")",
            repo,
            "restore target " + canonical(to),
            j -> {
              try (Repository r = openRepository(repo)) {
                r.lock(LockKind.SHARED, "restore", Duration.ZERO);
                Manifest snap =
                    r.resolve(
                        body.snapshot(), new SnapshotFilter(body.host(), body.tags()), body.disk());
                String disk = DiskRestore.diskName(snap, body.disk());
                long t0 = System.nanoTime();
                RestoreResult res;
                try {
                  res =
                      restore.run(
                          r,
                          snap,
                          disk,
                          (done, total) -> j.progress(restoreProgress(disk, done, total, t0)),
                          line -> {});
                } catch (IOException | RuntimeException e) {
                  String note = restore.partRestoredNote();
                  if (note == null) {
                    throw e;
                  }
                  // the job's error says what a failure in place left behind
                  throw new Jobs.Failed(
                      (e.getMessage() == null ? e.toString() : e.getMessage()) + "; " + note,
                      Cli.exitCode(e),
                      null);
                }
                j.progress(restoreProgress(disk, res.bytes(), res.bytes(), t0));
                Map<String, Object> out = new java.util.LinkedHashMap<>();
                out.put("snapshot", snap.id());
                out.put("disk", disk);
                out.put("target", to.toString());
                out.put("format", restore.format());
                out.put("bytes", res.bytes());
                out.put("chunksFetched", res.chunksFetched());
                out.put("zeroChunks", res.zeroChunks());
                out.put("seconds", (System.nanoTime() - t0) / 1e9);
                return out;
              }
            });
    resp.setHeader("Location", "/api/jobs/" + job.id());
    send(resp, 202, job.view());
  }

  /** A disk restore's progress as the API shows it. */
  static Map<String, Object> restoreProgress(String disk, long done, long total, long t0) {
    double secs = (System.nanoTime() - t0) / 1e9;
    double rate = secs > 0.5 ? done / secs : 0;
    Map<String, Object> m = new java.util.LinkedHashMap<>();
    m.put("disk", disk);
    m.put("bytesTotal", total);
    m.put("bytesDone", done);
    m.put("bytesPerSecond", (long) rate);
    m.put("etaSeconds", rate > 0 ? (long) ((total - done) / rate) : null);
    m.put("done", done >= total);
    return m;
  }

  /**
   * Reads a POST's body without holding a container thread while the client sends it (non-blocking
   * reads), then dispatches the request again with the body as {@link #BODY_ATTRIBUTE}, for {@link
   * #body} to parse. A body over {@link #MAX_BODY_BYTES} is read and dropped (up to {@link
   * #DRAIN_BYTES}, so the client reads the answer rather than a connection closed under its upload)
   * and answered 413; one not received within {@link #BODY_TIMEOUT_MS}, or cut off, 408.
   */
  private static void readBodyThenDispatch(HttpServletRequest req, HttpServletResponse resp)
      throws IOException {
    jakarta.servlet.AsyncContext async = req.startAsync();
    async.setTimeout(BODY_TIMEOUT_MS);
    jakarta.servlet.ServletInputStream in = req.getInputStream();
    boolean declaredTooLarge = req.getContentLengthLong() > MAX_BODY_BYTES;
    java.util.concurrent.atomic.AtomicBoolean ended =
        new java.util.concurrent.atomic.AtomicBoolean();
    async.addListener(
        new jakarta.servlet.AsyncListener() {
          @Override
          public void onTimeout(jakarta.servlet.AsyncEvent event) throws IOException {
            if (ended.compareAndSet(false, true)) {
              sendClosing(resp, 408, "request body not received within " + BODY_TIMEOUT_MS + " ms");
              async.complete();
            }
          }

          @Override
          public void onError(jakarta.servlet.AsyncEvent event) {
            ended.set(true);
          }

          @Override
          public void onComplete(jakarta.servlet.AsyncEvent event) {}

          @Override
          public void onStartAsync(jakarta.servlet.AsyncEvent event) {}
        });
    in.setReadListener(
        new jakarta.servlet.ReadListener() {
          private final java.io.ByteArrayOutputStream body = new java.io.ByteArrayOutputStream();
          private final byte[] buffer = new byte[16 << 10];
          private long received;

          @Override
          public void onDataAvailable() throws IOException {
            while (!ended.get() && in.isReady()) {
              int n = in.read(buffer);
              if (n < 0) {
                return;
              }
              received += n;
              if (received > MAX_BODY_BYTES + DRAIN_BYTES) {
                // past what is worth draining: answer and close the connection
                end(413);
                return;
              }
              if (!declaredTooLarge && received <= MAX_BODY_BYTES) {
                body.write(buffer, 0, n);
              }
            }
          }

          @Override
          public void onAllDataRead() throws IOException {
            if (declaredTooLarge || received > MAX_BODY_BYTES) {
              end(413);
            } else if (ended.compareAndSet(false, true)) {
              req.setAttribute(BODY_ATTRIBUTE, body.toByteArray());
              async.dispatch();
            }
          }

          @Override
          public void onError(Throwable t) {
            // a client that went away or sent a malformed body; answered if it can still read
            try {
              if (ended.compareAndSet(false, true)) {
                sendClosing(resp, 408, "request body not received: " + t);
                async.complete();
              }
            } catch (IOException | RuntimeException e) {
              LOG.debug("answering a failed request body read", e);
            }
          }

          private void end(int status) throws IOException {
            if (ended.compareAndSet(false, true)) {
              String error = "request body over " + MAX_BODY_BYTES + " bytes";
              if (received > MAX_BODY_BYTES + DRAIN_BYTES) {
                sendClosing(resp, status, error);
              } else {
                sendIfOpen(resp, status, error);
              }
              async.complete();
            }
          }
        });
  }

  /**
   * The JSON body of {@code req} as {@code type}, or null once a 400 saying it is not {@code what}
   * is sent.
   */
  private static <T> T body(
      HttpServletRequest req, HttpServletResponse resp, Class<T> type, String what)
      throws IOException {
    byte[] bytes = (byte[]) req.getAttribute(BODY_ATTRIBUTE);
    if (bytes == null) {
      throw new IllegalStateException("the request body was not read before " + req.getPathInfo());
    }
    T body;
    try {
      body = Json.strictReader(type).readValue(bytes);
    } catch (IOException e) {
      send(resp, 400, Map.of("error", "request body is not " + what + ": " + e.getMessage()));
      return null;
    }
    if (body == null) {
      send(resp, 400, Map.of("error", "request body is not " + what + ": it is empty or null"));
    }
    return body;
  }

  /**
   * {@code value} of field {@code field} as an absolute path; 400 otherwise: a relative path would
   * resolve against the server's working directory, not the client's, and the API has no S3
   * repositories yet (the CLI has).
   */
  static Path path(String value, String field) {
    if (value.startsWith("s3:")) {
      throw new BadRequest(
          400,
          "'"
              + field
              + "': S3 repositories are not served by the REST API yet; use the CLI ('granule"
              + " … --repo "
              + value
              + "')");
    }
    Path p = Path.of(value);
    if (!p.isAbsolute()) {
      throw new BadRequest(
          400,
          "'"
              + field
              + "' must be an absolute path, not '"
              + value
              + "' (it would name a file in the server's working directory)");
    }
    claimPrefix(p);
    return p;
  }

  /** Requests naming paths under one top directory (see {@link #claimPrefix}) that may wait. */
  static final int PER_PREFIX = 8;

  private static final java.util.concurrent.ConcurrentHashMap<Path, java.util.concurrent.Semaphore>
      PREFIXES = new java.util.concurrent.ConcurrentHashMap<>();

  /**
   * The prefixes this request thread claimed, each once; null outside a request (a job naming a
   * path).
   */
  private static final ThreadLocal<Map<Path, java.util.concurrent.Semaphore>> CLAIMED =
      new ThreadLocal<>();

  /**
   * Counts this request against the paths under {@code p}'s first two directories (/mnt/nfs), once
   * however many of its paths are there (a backup of 12 disks in one directory is one request): at
   * most {@link #PER_PREFIX} requests at once, so that a filesystem that does not answer (a dead
   * NFS mount a monitor keeps polling) holds that many of the {@link #PROBING} threads, not all of
   * them, and other repositories are still served. Told by name only: touching the path is what may
   * hang.
   */
  static void claimPrefix(Path p) {
    Path n = p.normalize();
    Path key = n.getNameCount() <= 2 ? n : n.getRoot().resolve(n.subpath(0, 2));
    Map<Path, java.util.concurrent.Semaphore> claimed = CLAIMED.get();
    if (claimed == null || claimed.containsKey(key)) {
      return;
    }
    java.util.concurrent.Semaphore s =
        PREFIXES.computeIfAbsent(key, k -> new java.util.concurrent.Semaphore(PER_PREFIX));
    if (!s.tryAcquire()) {
      throw new BadRequest(
          503,
          PER_PREFIX
              + " requests are already waiting on paths under "
              + key
              + " (a filesystem that does not answer?): try again later");
    }
    claimed.put(key, s);
  }

  /** Starts counting this request thread's paths (see {@link #claimPrefix}). */
  static void beginClaims() {
    CLAIMED.set(new HashMap<>());
  }

  /** Releases what {@link #claimPrefix} took for this request. */
  static void releasePrefixes() {
    Map<Path, java.util.concurrent.Semaphore> held = CLAIMED.get();
    if (held != null) {
      held.values().forEach(java.util.concurrent.Semaphore::release);
    }
    CLAIMED.remove();
  }

  /**
   * {@code p} with the symbolic links of its directory resolved, so one file reached under two
   * names is one restore target.
   */
  private static Path canonical(Path p) {
    Path abs = p.toAbsolutePath();
    try {
      return abs.toRealPath(); // an existing target: a link to it is the same target
    } catch (IOException e) {
      // a new file: its directory's links (and "..") resolved
    }
    Path dir = abs.getParent();
    try {
      return dir == null ? abs.normalize() : dir.toRealPath().resolve(abs.getFileName());
    } catch (IOException e) {
      return abs.normalize(); // no such directory: the restore fails on its own
    }
  }

  /** Refuses (409) the lock file of a restore this server runs: opening it would drop the lock. */
  private static Path notARestoreLock(Path p) {
    if (DiskRestore.isRestoreLock(p)) {
      throw new BadRequest(409, "'" + p + "' is the lock file of a running restore, not a disk");
    }
    return p;
  }

  /** Refuses (400) a list holding null. */
  private static void noNulls(List<?> list, String field) {
    if (list != null && list.contains(null)) {
      throw new BadRequest(400, "'" + field + "' holds null");
    }
  }

  /**
   * Query parameter {@code name} of {@code req}, or null once a 400 naming it is sent when it is
   * missing or blank.
   */
  private static String required(HttpServletRequest req, HttpServletResponse resp, String name)
      throws IOException {
    String v = req.getParameter(name);
    if (v == null || v.isBlank()) {
      send(resp, 400, Map.of("error", "parameter '" + name + "' is required"));
      return null;
    }
    return v;
  }

  /**
   * The snapshots a GET considers: parameters {@code host} and {@code tag} (repeated: all of them),
   * as the CLI's {@code --host} and {@code --tag}.
   */
  private static SnapshotFilter filter(HttpServletRequest req) {
    String[] tags = req.getParameterValues("tag");
    return new SnapshotFilter(req.getParameter("host"), tags == null ? List.of() : List.of(tags));
  }

  /** The body of {@code POST /api/verify}. */
  record VerifyBody(String repo, Boolean readData, String readDataSubset) {}

  private void verify(HttpServletRequest req, HttpServletResponse resp) throws IOException {
    VerifyBody body = body(req, resp, VerifyBody.class, "a verify request");
    if (body == null) {
      return;
    }
    if (body.repo() == null || body.repo().isBlank()) {
      send(resp, 400, Map.of("error", "'repo' is required"));
      return;
    }
    DataSubset subset;
    try {
      subset =
          DataSubset.of(
              Boolean.TRUE.equals(body.readData()),
              body.readDataSubset(),
              "'readData'",
              "'readDataSubset'");
    } catch (IllegalArgumentException e) {
      send(resp, 400, Map.of("error", e.getMessage()));
      return;
    }
    Path repo = path(body.repo(), "repo");
    Jobs.Job job =
        jobs.submit(
            "verify",
            "verify of "
                + repo
                + (subset == DataSubset.NONE ? "" : " reading data (" + subset + ")"),
            repo,
            j -> {
              try (Repository r = openRepository(repo)) {
                r.lock(LockKind.SHARED, "verify", Duration.ZERO);
                VerifyReport report =
                    r.verify(
                        subset,
                        (file, done, total) -> j.progress(verifyProgress(file, done, total)));
                if (!report.ok()) {
                  throw new Jobs.Failed(
                      "damage found in "
                          + report.damages().size()
                          + " files; snapshots affected: "
                          + (report.affectedSnapshots().isEmpty()
                              ? "none"
                              : String.join(
                                  ", ", new java.util.TreeSet<>(report.affectedSnapshots()))),
                      ExitCodes.DAMAGED,
                      report);
                }
                return report;
              }
            });
    resp.setHeader("Location", "/api/jobs/" + job.id());
    send(resp, 202, job.view());
  }

  /**
   * Verify's progress as the API shows it: the phase (packs, then index blobs, then snapshots), the
   * file just checked, and how many of the phase's files are done.
   */
  static Map<String, Object> verifyProgress(String file, int done, int total) {
    Map<String, Object> m = new java.util.LinkedHashMap<>();
    int slash = file.indexOf('/');
    m.put("phase", slash < 0 ? "" : file.substring(0, slash));
    m.put("file", file);
    m.put("filesDone", done);
    m.put("filesTotal", total);
    return m;
  }

  /** The body of {@code POST /api/repair}. */
  record RepairBody(String repo, Boolean dryRun, List<String> packs) {}

  /**
   * {@code POST /api/repair}: {@code granule repair} as a job, under the repository's exclusive
   * lock (another process's lock fails the job with exit code 9, as on the command line). What
   * would make the command exit with 5 (snapshots that use lost chunks, damage that is not in
   * packs, a dry run that found damaged packs) fails the job with exit code 5, its report kept as
   * the result, as verify's damage does.
   */
  private void repair(HttpServletRequest req, HttpServletResponse resp) throws IOException {
    RepairBody body = body(req, resp, RepairBody.class, "a repair request");
    if (body == null) {
      return;
    }
    if (body.repo() == null || body.repo().isBlank()) {
      send(resp, 400, Map.of("error", "'repo' is required"));
      return;
    }
    boolean dryRun = Boolean.TRUE.equals(body.dryRun());
    Set<String> packs;
    try {
      packs = Repository.packNames(body.packs() == null ? Set.of() : Set.copyOf(body.packs()));
    } catch (IllegalArgumentException | NullPointerException e) {
      send(
          resp,
          400,
          Map.of(
              "error", "'packs': " + (e.getMessage() == null ? "a name is null" : e.getMessage())));
      return;
    }
    Path repo = path(body.repo(), "repo");
    Jobs.Job job =
        jobs.submit(
            "repair",
            (dryRun ? "repair (dry run) of " : "repair of ") + repo,
            repo,
            j -> {
              try (Repository r = openRepository(repo)) {
                // a dry run changes nothing: a shared lock, as a verify's
                r.lock(
                    dryRun ? LockKind.SHARED : LockKind.EXCLUSIVE,
                    dryRun ? RepairCommand.DRY_RUN : "repair",
                    Duration.ZERO);
                Repository.RepairResult result =
                    r.repair(
                        dryRun,
                        packs,
                        (phase, done, total) -> {
                          if (j.cancelled()) {
                            // safe at any point: the repository stays valid, a repair finishes
                            throw new java.util.concurrent.CancellationException("cancelled");
                          }
                          j.progress(repairProgress(phase, done, total));
                        });
                Map<String, Object> out = RepairCommand.json(result);
                if (RepairCommand.damaged(result)) {
                  throw new Jobs.Failed(repairFailure(result), ExitCodes.DAMAGED, out);
                }
                return out;
              }
            });
    resp.setHeader("Location", "/api/jobs/" + job.id());
    send(resp, 202, job.view());
  }

  /** Repair's progress as the API shows it: the phase and how many of its items are done. */
  static Map<String, Object> repairProgress(String phase, long done, long total) {
    Map<String, Object> m = new java.util.LinkedHashMap<>();
    m.put("phase", phase);
    m.put("done", done);
    m.put("total", total);
    return m;
  }

  /** The error of a repair job that ends with exit code 5: what is left and what to do next. */
  static String repairFailure(Repository.RepairResult result) {
    Repairer.Report p = result.repair();
    List<String> parts = new ArrayList<>();
    if (p.dryRun() && !result.putBack().isEmpty()) {
      parts.add(
          "dry run: metadata the storage damaged or lost would be put back from this host's"
              + " cache: "
              + String.join(", ", result.putBack())
              + "; nothing was changed");
    }
    if (p.dryRun() && !result.keptIndexed().isEmpty()) {
      parts.add(
          "dry run: records of damaged packs that copies this host kept of index blobs locate"
              + " would be indexed: "
              + String.join("; ", result.keptIndexed())
              + "; nothing was changed");
    }
    if (p.dryRun() && !p.damaged().isEmpty()) {
      parts.add(
          "dry run: "
              + p.damaged().size()
              + " damaged packs found, "
              + p.chunksLost()
              + " chunks would be lost; nothing was changed");
    }
    if (!p.snapshots().isEmpty()) {
      parts.add(
          (p.dryRun()
                  ? "snapshots that would use lost chunks: "
                  : "snapshots that use lost chunks: ")
              + String.join(", ", p.snapshots())
              + " (back up their disks again, or forget them)");
    }
    if (!p.unlistedIndexes().isEmpty()) {
      parts.add(
          "indexes no snapshot read names that use lost chunks (a crashed backup's, or a snapshot's"
              + " that was not listed: verify once the storage is healthy): "
              + String.join(", ", p.unlistedIndexes()));
    }
    if (!p.leftAlone().isEmpty()) {
      parts.add(
          "damaged packs left alone (not all their records can be located): "
              + String.join("; ", p.leftAlone()));
    }
    if (!p.damagedCopies().isEmpty()) {
      parts.add(
          "damaged too (a copy of a chunk there does not read; repair them next): "
              + String.join(", ", p.damagedCopies()));
    }
    if (!result.otherDamage().isEmpty()) {
      parts.add(
          "damaged, not packs (repair leaves them): "
              + String.join(", ", result.otherDamage())
              + (result.otherSnapshots().isEmpty()
                  ? ""
                  : "; snapshots they affect: " + String.join(", ", result.otherSnapshots())));
    }
    return String.join("; ", parts);
  }

  /** The body of {@code POST /api/restores/table}. */
  record TableRestoreBody(
      String repo,
      String snapshot,
      String object,
      String to,
      String as,
      Boolean replace,
      String instance,
      Map<String, String> options,
      String host,
      List<String> tags) {}

  private void restoreTable(HttpServletRequest req, HttpServletResponse resp) throws IOException {
    TableRestoreBody body = body(req, resp, TableRestoreBody.class, "a table restore");
    if (body == null) {
      return;
    }
    if (body.repo() == null
        || body.snapshot() == null
        || body.object() == null
        || body.to() == null) {
      send(resp, 400, Map.of("error", "'repo', 'snapshot', 'object' and 'to' are required"));
      return;
    }
    noNulls(body.tags(), "tags");
    if (body.options() != null && body.options().containsValue(null)) {
      throw new BadRequest(400, "'options' holds null values: give each option a string");
    }
    URI target;
    try {
      ObjectRestore.checkObject(body.object());
      target = AppUrls.parse(body.to());
    } catch (IllegalArgumentException e) {
      send(resp, 400, Map.of("error", e.getMessage()));
      return;
    }
    Path repo = path(body.repo(), "repo");
    Jobs.Job job =
        jobs.submit(
            "restore-table",
            "restore of "
                + body.object()
                + " from "
                + body.snapshot()
                + " into "
                + AppUrls.redact(target),
            repo,
            j -> {
              try (Repository r = openRepository(repo)) {
                r.lock(LockKind.SHARED, "restore table", Duration.ZERO);
                ObjectRestore.Result res =
                    ObjectRestore.run(
                        r,
                        r.resolve(
                            body.snapshot(), new SnapshotFilter(body.host(), body.tags()), null),
                        body.object(),
                        target,
                        body.as(),
                        Boolean.TRUE.equals(body.replace()),
                        body.options(),
                        body.instance(),
                        applications.leases(),
                        fileSystems.leases(),
                        Catalogs.cacheDir(RepoOption.metadataCache(System::getenv), r),
                        (phase, detail) -> {
                          Map<String, Object> p = new java.util.LinkedHashMap<>();
                          p.put("phase", phase);
                          p.put("detail", detail == null ? null : AppUrls.redact(detail));
                          j.progress(p);
                        });
                return res.summary();
              }
            });
    resp.setHeader("Location", "/api/jobs/" + job.id());
    send(resp, 202, job.view());
  }

  private static int status(int exitCode) {
    return switch (exitCode) {
      case ExitCodes.NOT_FOUND -> 404;
      case ExitCodes.REPOSITORY, ExitCodes.SOURCE, ExitCodes.USAGE, ExitCodes.DAMAGED -> 422;
      case ExitCodes.PLUGIN, ExitCodes.LOCKED, ExitCodes.TARGET -> 409;
      case ExitCodes.AUTH -> 403;
      default -> 500;
    };
  }

  private static void send(HttpServletResponse resp, int status, Object body) throws IOException {
    resp.setStatus(status);
    resp.setContentType("application/json");
    resp.setCharacterEncoding("UTF-8");
    Json.MAPPER.writeValue(resp.getOutputStream(), body);
  }

  /**
   * Opens the repository at {@code repo}, its chunk index kept in the user's cache between uses.
   */
  private static Repository openRepository(Path repo) {
    Path cache = RepoOption.metadataCache(System::getenv);
    Repository r = Repository.open(repo, PasswordSource.ofServer(System::getenv), cache);
    // an unencrypted repository of a user who may not use this server is refused as on the
    // command line: someone who can write the directory above a client's may have put his there
    RepoOption.refuseOthersUnencrypted(System::getenv, allowedUsers(), r);
    return r.keepIndexUnder(cache);
  }
}
