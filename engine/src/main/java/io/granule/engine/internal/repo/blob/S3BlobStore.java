package io.granule.engine.internal.repo.blob;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ReadableByteChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Callable;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.awscore.retry.AwsRetryStrategy;
import software.amazon.awssdk.core.ResponseInputStream;
import software.amazon.awssdk.core.checksums.RequestChecksumCalculation;
import software.amazon.awssdk.core.checksums.ResponseChecksumValidation;
import software.amazon.awssdk.core.exception.AbortedException;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.regions.providers.DefaultAwsRegionProviderChain;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.CompletedMultipartUpload;
import software.amazon.awssdk.services.s3.model.CompletedPart;
import software.amazon.awssdk.services.s3.model.GetObjectResponse;
import software.amazon.awssdk.services.s3.model.HeadObjectResponse;
import software.amazon.awssdk.services.s3.model.ListObjectsV2Request;
import software.amazon.awssdk.services.s3.model.ListObjectsV2Response;
import software.amazon.awssdk.services.s3.model.NoSuchKeyException;
import software.amazon.awssdk.services.s3.model.S3Exception;
import software.amazon.awssdk.services.s3.model.S3Object;

/**
 * A {@link BlobStore} in an S3 bucket (AWS or any S3-compatible server), under a key prefix, with
 * the same layout as {@link LocalBlobStore} ({@code config}, {@code keys/…}, {@code data/3f/3fa2…},
 * {@code index/…}, …) so a repository can be copied between the two with any file or S3 tool.
 *
 * <p>Contract notes: an S3 PUT is atomic per object (readers see the old object or the whole new
 * one, never a part), and a multipart upload becomes visible only when it is completed, so {@link
 * #save} is atomic; durability is the service's. Since 2020 AWS S3 lists and reads strongly
 * consistently; other servers may not. Blobs from {@link #multipartThreshold} bytes on are uploaded
 * in parts of that size (an aborted upload leaves no object). Every PUT carries Content-MD5, so the
 * server rejects bytes damaged on the way.
 *
 * <p>This class makes one attempt per call: errors come back as {@link IOException}s ({@link
 * NoSuchFileException} for a missing blob, {@link EOFException} for a range past the end, {@link
 * AccessDeniedException} for 401/403, {@link TransientBlobStoreException} for 5xx, throttling and
 * network errors); wrap it in a {@link RetryingBlobStore} for retries with backoff. Credentials
 * come from the AWS default chain (environment, system properties, profile files, container or
 * instance roles); the region from the default chain, else us-east-1. Thread-safe.
 */
public final class S3BlobStore implements BlobStore {
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(S3BlobStore.class);

  /**
   * Default part size and threshold for multipart uploads: 32 MiB, so packs of the default size (16
   * MiB) are single PUTs and larger configured packs go in parts.
   */
  public static final int DEFAULT_PART_SIZE = 32 << 20;

  private final S3Location where;
  private final S3Client s3;
  private final int multipartThreshold;
  private volatile int pageSize = 1000;
  private volatile int maxPages = MAX_PAGES;
  private volatile int maxKeys = MAX_KEYS;

  private S3BlobStore(S3Location where, S3Client s3, int multipartThreshold) {
    this.where = where;
    this.s3 = s3;
    this.multipartThreshold = multipartThreshold;
  }

  /** A store at {@code where} with the default credential and region chains. */
  public static S3BlobStore open(S3Location where) {
    return open(where, DefaultCredentialsProvider.builder().build(), DEFAULT_PART_SIZE);
  }

  /**
   * A store at {@code where} with {@code credentials}, uploading blobs of {@code partSize} bytes or
   * more in parts of that size (at least 5 MiB, S3's minimum part size).
   */
  public static S3BlobStore open(
      S3Location where, AwsCredentialsProvider credentials, int partSize) {
    if (partSize < 5 << 20) {
      throw new IllegalArgumentException("S3 parts are at least 5 MiB, not " + partSize);
    }
    return withBundleLoader(
        () -> {
          var b =
              S3Client.builder()
                  .httpClient(
                      UrlConnectionHttpClient.builder()
                          .connectionTimeout(Duration.ofSeconds(10))
                          .socketTimeout(Duration.ofSeconds(60))
                          .build())
                  .credentialsProvider(credentials)
                  .region(region(where))
                  // Retries with backoff live in RetryingBlobStore, for every store alike.
                  .overrideConfiguration(o -> o.retryStrategy(AwsRetryStrategy.doNotRetry()))
                  // Integrity is checked by Content-MD5 here and by checksums and AES-GCM above;
                  // the newer flexible checksums are not understood by every S3-compatible server.
                  .requestChecksumCalculation(RequestChecksumCalculation.WHEN_REQUIRED)
                  .responseChecksumValidation(ResponseChecksumValidation.WHEN_REQUIRED)
                  // HttpURLConnection mishandles "Expect: 100-continue" on reused connections
                  // (the server got wrong bytes for a second part; Content-MD5 caught it).
                  .serviceConfiguration(
                      software.amazon.awssdk.services.s3.S3Configuration.builder()
                          .expectContinueEnabled(false)
                          .chunkedEncodingEnabled(false)
                          .build());
          if (where.endpoint() != null) {
            b.endpointOverride(where.endpoint()).forcePathStyle(true);
          }
          return new S3BlobStore(where, b.build(), partSize);
        });
  }

  /**
   * AWS_REGION (or aws.region); for a custom endpoint, us-east-1 without asking the rest of the
   * chain (which may ask an instance metadata service that is not there); else the default chain.
   */
  private static Region region(S3Location where) {
    String r = System.getProperty("aws.region", System.getenv("AWS_REGION"));
    if (r != null && !r.isBlank()) {
      return Region.of(r);
    }
    if (where.endpoint() != null) {
      return Region.US_EAST_1;
    }
    try {
      return new DefaultAwsRegionProviderChain().getRegion();
    } catch (SdkClientException e) {
      return Region.US_EAST_1;
    }
  }

  /** Keys per listing page (S3's maximum and default is 1000); smaller only for tests. */
  void pageSize(int keys) {
    this.pageSize = keys;
  }

  /** For tests: the most pages and kept keys of one listing. */
  void listLimits(int pages, int keys) {
    this.maxPages = pages;
    this.maxKeys = keys;
  }

  /** The part size and multipart threshold in bytes. */
  public int multipartThreshold() {
    return multipartThreshold;
  }

  /**
   * The SDK finds its interceptors and services through the thread context class loader; in OSGi
   * that is not this bundle's, which holds the embedded SDK jars.
   */
  private static <T> T withBundleLoader(Callable<T> call) {
    Thread t = Thread.currentThread();
    ClassLoader old = t.getContextClassLoader();
    t.setContextClassLoader(S3BlobStore.class.getClassLoader());
    try {
      return call.call();
    } catch (RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw new IllegalStateException(e);
    } finally {
      t.setContextClassLoader(old);
    }
  }

  /** The object key of a blob. */
  String key(BlobName name) {
    if (name.type() == BlobType.CONFIG) {
      return where.prefix() + name.name();
    }
    String dir = where.prefix() + name.type().directory() + "/";
    if (name.type() == BlobType.PACK) {
      dir += name.name().substring(0, 2) + "/";
    }
    return dir + name.name();
  }

  @FunctionalInterface
  private interface S3Call<T> {
    T call() throws IOException;
  }

  /** Runs one S3 request, translating SDK exceptions into the contract's IOExceptions. */
  private <T> T request(String what, BlobName name, S3Call<T> call) throws IOException {
    Thread t = Thread.currentThread();
    ClassLoader old = t.getContextClassLoader();
    t.setContextClassLoader(S3BlobStore.class.getClassLoader());
    try {
      return call.call();
    } catch (NoSuchKeyException e) {
      throw noSuch(name, e);
    } catch (S3Exception e) {
      throw translate(what, name, e);
    } catch (AbortedException e) {
      throw (IOException)
          new InterruptedIOException("interrupted while " + what + describe(name)).initCause(e);
    } catch (SdkClientException e) {
      // network errors, timeouts, unreadable responses
      throw new TransientBlobStoreException(
          "unable to reach " + where + " while " + what + describe(name) + ": " + e.getMessage(),
          e);
    } finally {
      t.setContextClassLoader(old);
    }
  }

  private String describe(BlobName name) {
    return name == null ? "" : " blob " + name;
  }

  private NoSuchFileException noSuch(BlobName name, Exception cause) {
    NoSuchFileException e = new NoSuchFileException(where + "/" + name);
    e.initCause(cause);
    return e;
  }

  private IOException translate(String what, BlobName name, S3Exception e) {
    int status = e.statusCode();
    String code = e.awsErrorDetails() == null ? null : e.awsErrorDetails().errorCode();
    String msg =
        what
            + describe(name)
            + " in "
            + where
            + ": HTTP "
            + status
            + (code == null ? "" : " " + code)
            + ": "
            + e.getMessage();
    if ("NoSuchBucket".equals(code)) {
      return new IOException(
          "bucket '"
              + where.bucket()
              + "' does not exist at "
              + where
              + ": create it first (with the storage's console or 'aws s3 mb'), or check the"
              + " repository URL",
          e);
    }
    if (status == 404 && name != null) {
      return noSuch(name, e);
    }
    if (status == 401 || status == 403) {
      AccessDeniedException d =
          new AccessDeniedException(
              where.toString(),
              null,
              msg + " (check the credentials: AWS_ACCESS_KEY_ID, AWS_PROFILE, ...)");
      d.initCause(e);
      return d;
    }
    if (status >= 500 || status == 408 || status == 429 || e.isThrottlingException()) {
      return new TransientBlobStoreException(msg, e);
    }
    return new IOException(msg, e);
  }

  @Override
  public void save(BlobName name, byte[] data) throws IOException {
    save(name, ByteBuffer.wrap(data)); // streamed from the array
  }

  /**
   * Uploads the bytes remaining in {@code data} straight from the buffer (a pack's direct buffer):
   * no copy on the heap, which six 16 MiB uploads in flight had made the largest part of a backup's
   * memory. The SDK reads it twice (the SigV4 payload hash over http, then the body), each time
   * from a duplicate; the caller's position does not move. From the multipart threshold on, as
   * {@link #save(BlobName, byte[])}.
   */
  @Override
  public void save(BlobName name, ByteBuffer data) throws IOException {
    ByteBuffer body = data.duplicate();
    upload(
        name,
        body.remaining(),
        (off, len) -> new BufferInputStream(body.slice(body.position() + (int) off, (int) len)));
  }

  /**
   * Uploads the first {@code length} bytes of {@code file} read with positional reads, part by part
   * from the multipart threshold on: no copy of the whole on the heap or in a mapping (a large
   * disk's fixed index).
   */
  @Override
  public void save(BlobName name, java.nio.channels.FileChannel file, long length)
      throws IOException {
    upload(name, length, (off, len) -> new ChannelRangeInputStream(file, off, len));
  }

  /** Bytes {@code [offset, offset + length)} of what is uploaded, as a new stream each time. */
  private interface Body {
    InputStream open(long offset, long length) throws IOException;
  }

  /**
   * Uploads {@code length} bytes of {@code body}: one PUT below the multipart threshold, else
   * parts. The SDK reads a body twice (the SigV4 payload hash over http, then the body), each time
   * from a stream of its own.
   */
  private void upload(BlobName name, long length, Body body) throws IOException {
    String key = key(name);
    if (length >= multipartThreshold) {
      saveMultipart(name, key, length, body);
      return;
    }
    String md5 = md5(body.open(0, length));
    request(
        "saving",
        name,
        () ->
            s3.putObject(
                r -> r.bucket(where.bucket()).key(key).contentLength(length).contentMD5(md5),
                RequestBody.fromContentProvider(
                    () -> open(body, 0, length), length, "application/octet-stream")));
  }

  /**
   * Saves {@code name} only if no object has that key, atomically where the server supports
   * conditional writes ({@code If-None-Match: *}: AWS S3, MinIO, Ceph): two {@code init}s of one
   * prefix at once both succeeded, and the first password then no longer opened it. A server that
   * answers 412 (or 409, a conflicting conditional write in progress) had one: {@link
   * java.nio.file.FileAlreadyExistsException}. One that ignores the header leaves the check before
   * it, as before.
   */
  @Override
  public void saveNew(BlobName name, byte[] data) throws IOException {
    if (stat(name).isPresent()) {
      throw new java.nio.file.FileAlreadyExistsException(location() + "/" + name);
    }
    String key = key(name);
    String md5 = md5(new java.io.ByteArrayInputStream(data));
    try {
      request(
          "saving",
          name,
          () ->
              s3.putObject(
                  r ->
                      r.bucket(where.bucket())
                          .key(key)
                          .contentLength((long) data.length)
                          .contentMD5(md5)
                          .ifNoneMatch("*"),
                  RequestBody.fromBytes(data)));
    } catch (IOException e) {
      if (e.getCause() instanceof S3Exception s
          && (s.statusCode() == 412 || s.statusCode() == 409)) {
        java.nio.file.FileAlreadyExistsException x =
            new java.nio.file.FileAlreadyExistsException(location() + "/" + name);
        x.initCause(e);
        throw x;
      }
      throw e;
    }
  }

  private static InputStream open(Body body, long offset, long length) {
    try {
      return body.open(offset, length);
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  /** Reads a range of a file with positional reads (its position untouched). */
  private static final class ChannelRangeInputStream extends InputStream {
    private final java.nio.channels.FileChannel ch;
    private long pos;
    private final long end;

    ChannelRangeInputStream(java.nio.channels.FileChannel ch, long offset, long length) {
      this.ch = ch;
      this.pos = offset;
      this.end = offset + length;
    }

    @Override
    public int read() throws IOException {
      byte[] one = new byte[1];
      return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] dst, int off, int len) throws IOException {
      java.util.Objects.checkFromIndexSize(off, len, dst.length);
      if (len == 0) {
        return 0;
      }
      if (pos >= end) {
        return -1;
      }
      int n = ch.read(ByteBuffer.wrap(dst, off, (int) Math.min(len, end - pos)), pos);
      if (n < 0) {
        throw new EOFException("file ends " + (end - pos) + " bytes short of the upload");
      }
      pos += n;
      return n;
    }

    @Override
    public int available() {
      return (int) Math.min(Integer.MAX_VALUE, end - pos);
    }
  }

  /** Reads a buffer from its position to its limit. */
  private static final class BufferInputStream extends InputStream {
    private final ByteBuffer b;

    BufferInputStream(ByteBuffer b) {
      this.b = b;
    }

    @Override
    public int read() {
      return b.hasRemaining() ? b.get() & 0xff : -1;
    }

    @Override
    public int read(byte[] dst, int off, int len) {
      java.util.Objects.checkFromIndexSize(off, len, dst.length);
      if (len == 0) {
        return 0;
      }
      if (!b.hasRemaining()) {
        return -1;
      }
      int n = Math.min(len, b.remaining());
      b.get(dst, off, n);
      return n;
    }

    @Override
    public int available() {
      return b.remaining();
    }
  }

  private static String md5(InputStream in) throws IOException {
    try (in) {
      MessageDigest md = MessageDigest.getInstance("MD5");
      byte[] b = new byte[64 << 10];
      for (int n; (n = in.read(b)) > 0; ) {
        md.update(b, 0, n);
      }
      return Base64.getEncoder().encodeToString(md.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("md5 is missing from this java runtime", e);
    }
  }

  /**
   * Uploads {@code length} bytes of {@code body} in parts of the multipart threshold, each read
   * from its range of the body (a buffer's slice, a file's range: no copy of the whole).
   */
  private void saveMultipart(BlobName name, String key, long length, Body body) throws IOException {
    String upload =
        request(
            "starting the upload of",
            name,
            () -> s3.createMultipartUpload(r -> r.bucket(where.bucket()).key(key)).uploadId());
    boolean done = false;
    try {
      List<CompletedPart> parts = new ArrayList<>();
      int n = 1;
      for (long off = 0; off < length; off += multipartThreshold, n++) {
        long len = Math.min(multipartThreshold, length - off);
        long partOffset = off;
        int partNumber = n;
        String md5 = md5(body.open(partOffset, len));
        String etag =
            request(
                "uploading part " + n + " of",
                name,
                () ->
                    s3.uploadPart(
                            r ->
                                r.bucket(where.bucket())
                                    .key(key)
                                    .uploadId(upload)
                                    .partNumber(partNumber)
                                    .contentLength(len)
                                    .contentMD5(md5),
                            // from the part's own range (fromByteBuffer would copy a heap
                            // buffer's whole backing array from index 0, ignoring the position:
                            // every part would carry the first part's bytes)
                            RequestBody.fromContentProvider(
                                () -> open(body, partOffset, len), len, "application/octet-stream"))
                        .eTag());
        parts.add(CompletedPart.builder().partNumber(n).eTag(etag).build());
      }
      request(
          "completing the upload of",
          name,
          () ->
              s3.completeMultipartUpload(
                  r ->
                      r.bucket(where.bucket())
                          .key(key)
                          .uploadId(upload)
                          .multipartUpload(
                              CompletedMultipartUpload.builder().parts(parts).build())));
      done = true;
    } finally {
      if (!done) {
        try {
          request(
              "aborting the upload of",
              name,
              () ->
                  s3.abortMultipartUpload(r -> r.bucket(where.bucket()).key(key).uploadId(upload)));
        } catch (IOException ignored) {
          // The upload failed already; an unaborted one is invisible and expires by lifecycle.
        }
      }
    }
  }

  /**
   * The whole blob. A body shorter than the response's Content-Length was cut by the network: a
   * transient error (retried), never bytes returned as if they were the blob (a cut download of a
   * manifest was cached, and looked like damage from then on).
   */
  @Override
  public byte[] load(BlobName name) throws IOException {
    String key = key(name);
    return request(
        "loading",
        name,
        () -> {
          try (ResponseInputStream<GetObjectResponse> in =
              s3.getObject(r -> r.bucket(where.bucket()).key(key))) {
            Long expected = in.response().contentLength();
            if (expected != null) {
              BlobStore.requireLoadable(name, expected, where.toString());
            }
            byte[] all = in.readAllBytes();
            if (expected != null && all.length != expected) {
              throw cut(name, all.length, expected);
            }
            return all;
          } catch (IOException e) {
            if (e instanceof TransientBlobStoreException t) {
              throw t;
            }
            if (e instanceof BlobTooLargeException) {
              throw e; // not transient: the same object is as large the next time
            }
            throw new TransientBlobStoreException(
                "reading" + describe(name) + " from " + where + ": " + e.getMessage(), e);
          }
        });
  }

  /** A response body that ended before its Content-Length: the connection was cut. */
  private TransientBlobStoreException cut(BlobName name, long got, long expected) {
    return new TransientBlobStoreException(
        "reading"
            + describe(name)
            + " from "
            + where
            + ": the response ended after "
            + got
            + " of "
            + expected
            + " bytes (connection cut)",
        null);
  }

  @Override
  public byte[] load(BlobName name, long offset, int length) throws IOException {
    if (offset < 0 || length < 0) {
      throw new IllegalArgumentException(
          "invalid range of blob " + name + ": offset=" + offset + " length=" + length);
    }
    if (length == 0) {
      long size = stat(name).orElseThrow(() -> noSuch(name, null)).size();
      if (offset > size) {
        throw pastEnd(name, size, offset, length);
      }
      return new byte[0];
    }
    byte[] out = new byte[length];
    int n = readRange(name, offset, length, in -> in.readNBytes(out, 0, length));
    if (n != length) {
      throw pastEnd(name, offset + n, offset, length);
    }
    return out;
  }

  /**
   * Reads the range straight into {@code dst} (a chunk's direct buffer, on a restore's path): no
   * array per load for the garbage collector.
   */
  @Override
  public void load(BlobName name, long offset, ByteBuffer dst) throws IOException {
    int length = dst.remaining();
    if (offset < 0 || length == 0) {
      load(name, offset, length); // its checks
      return;
    }
    int n =
        readRange(
            name,
            offset,
            length,
            in -> {
              ReadableByteChannel ch = Channels.newChannel(in);
              int total = 0;
              while (dst.hasRemaining()) {
                int r = ch.read(dst);
                if (r < 0) {
                  break;
                }
                total += r;
              }
              return total;
            });
    if (n != length) {
      throw pastEnd(name, offset + n, offset, length);
    }
  }

  @FunctionalInterface
  private interface BodyReader {
    int read(InputStream in) throws IOException;
  }

  /**
   * One ranged GET of {@code length} bytes at {@code offset}, whose body {@code reader} reads from
   * the connection (no copy into an array of the SDK's first); returns what it read. A body cut
   * short by the network is a transient error, retried by {@link RetryingBlobStore}.
   */
  private int readRange(BlobName name, long offset, int length, BodyReader reader)
      throws IOException {
    String key = key(name);
    String range = "bytes=" + offset + "-" + (offset + length - 1);
    try {
      return request(
          "loading",
          name,
          () -> {
            try (ResponseInputStream<GetObjectResponse> in =
                s3.getObject(r -> r.bucket(where.bucket()).key(key).range(range))) {
              Long promised = in.response().contentLength();
              String answered = in.response().contentRange();
              if (answered == null) {
                // A server (a gateway) that ignores Range sends the whole blob: the range is
                // taken from it, slowly but right, rather than bytes from its start.
                warnRangeIgnored();
                long skipped = skipFully(in, offset);
                if (skipped < offset) {
                  if (promised != null && promised > skipped) {
                    throw cut(name, skipped, promised);
                  }
                  throw new java.io.UncheckedIOException(pastEnd(name, skipped, offset, length));
                }
                promised = promised == null ? null : promised - offset;
              } else if (!answered.startsWith("bytes " + offset + "-")) {
                throw new TransientBlobStoreException(
                    "reading"
                        + describe(name)
                        + " from "
                        + where
                        + ": asked for "
                        + range
                        + ", the server answered with "
                        + answered,
                    null);
              }
              int n = reader.read(in);
              // Fewer bytes than the range: the blob ends there (Content-Length says so too), or
              // the body was cut (Content-Length promised more): retried, not a short blob.
              if (n < length && promised != null && n < promised) {
                throw cut(name, n, promised);
              }
              return n;
            } catch (IOException e) {
              if (e instanceof TransientBlobStoreException t) {
                throw t;
              }
              throw new TransientBlobStoreException(
                  "reading" + describe(name) + " from " + where + ": " + e.getMessage(), e);
            }
          });
    } catch (java.io.UncheckedIOException e) {
      throw e.getCause();
    } catch (IOException e) {
      if (e.getCause() instanceof S3Exception s && s.statusCode() == 416) {
        throw pastEnd(name, stat(name).map(BlobInfo::size).orElse(-1L), offset, length);
      }
      throw e;
    }
  }

  private volatile boolean rangeIgnoredWarned;

  private void warnRangeIgnored() {
    if (!rangeIgnoredWarned) {
      rangeIgnoredWarned = true;
      LOG.warn(
          "the S3 server at {} ignores Range headers (it sends whole blobs): reads of parts of"
              + " packs download the whole pack, which is slow",
          where);
    }
  }

  /** Skips up to {@code n} bytes of {@code in}; how many it skipped (fewer: the body ended). */
  private static long skipFully(InputStream in, long n) throws IOException {
    long left = n;
    byte[] scratch = null;
    while (left > 0) {
      long k = in.skip(left);
      if (k <= 0) {
        if (scratch == null) {
          scratch = new byte[8192];
        }
        int r = in.read(scratch, 0, (int) Math.min(scratch.length, left));
        if (r < 0) {
          break;
        }
        k = r;
      }
      left -= k;
    }
    return n - left;
  }

  private EOFException pastEnd(BlobName name, long size, long offset, int length) {
    return new EOFException(
        "blob "
            + name
            + " in "
            + where
            + " ends at "
            + size
            + ", before the range requested: offset="
            + offset
            + " length="
            + length);
  }

  @Override
  public Optional<BlobInfo> stat(BlobName name) throws IOException {
    String key = key(name);
    try {
      HeadObjectResponse h =
          request("checking", name, () -> s3.headObject(r -> r.bucket(where.bucket()).key(key)));
      return Optional.of(new BlobInfo(name, h.contentLength(), h.lastModified()));
    } catch (NoSuchFileException e) {
      return Optional.empty();
    }
  }

  @Override
  public List<BlobName> list(BlobType type) throws IOException {
    List<BlobName> names = new ArrayList<>();
    for (BlobInfo i : listInfo(type)) {
      names.add(i.name());
    }
    return names;
  }

  /**
   * The most pages one listing follows: 10<sup>5</sup> pages of 1000 keys are 10<sup>8</sup> blobs,
   * far beyond any repository (a petabyte of 16 MiB packs is 6·10<sup>7</sup>). A server that
   * answers forever with new continuation tokens is stopped here (audit10 M5).
   */
  static final int MAX_PAGES = 100_000;

  /**
   * The most blobs one listing keeps: 10<sup>7</sup> (160 TB of 16 MiB packs), and no more than
   * half the heap holds (about 160 bytes each: a million, 16 TB of packs, under the launcher's 320
   * MiB). A server that keeps sending new keys under new tokens is stopped here, not by running out
   * of memory.
   */
  static final int MAX_KEYS =
      (int) Math.min(10_000_000L, Math.max(100_000L, Runtime.getRuntime().maxMemory() / 2 / 160));

  /**
   * The most pages in a row one listing follows that bring no new key (none in the prefix after the
   * greatest one seen so far: S3 lists keys in ascending order, so a key at or before it is one
   * already listed, or a server that does not keep the order). AWS S3 returns a page without keys
   * only in rare cases (many deleted objects scanned within one request), MinIO may end a listing
   * with one empty truncated page; ten in a row is far beyond either, and a server answering empty
   * pages with new tokens forever is stopped after ten (audit12 M2), not after {@link #MAX_PAGES}.
   */
  static final int MAX_EMPTY_PAGES = 10;

  /**
   * The pages one listing may take beyond what its keys need: a listing of k keys in pages of p
   * keys may take at most {@code PAGE_SLACK + 10·k/p} pages (with the default page of 1000 keys, 50
   * pages plus one per 100 keys: ten times what a full page each needs). A server that answers a
   * key or two per page is stopped by this, long before {@link #MAX_PAGES}.
   */
  static final int PAGE_SLACK = 50;

  /** The longest one page of a listing may take, all of it (a server that trickles bytes). */
  static final Duration PAGE_TIMEOUT = Duration.ofMinutes(2);

  /**
   * Lists the blobs of {@code type}, following continuation tokens page by page. A server that
   * breaks the protocol is refused with an {@link IOException} naming bucket and prefix, never
   * followed forever: a continuation token it gave before, a truncated page without a token, more
   * than {@link #MAX_EMPTY_PAGES} pages in a row without a new key, more pages than the keys listed
   * need ({@link #PAGE_SLACK}), more than {@link #MAX_PAGES} pages or {@link #MAX_KEYS} kept keys
   * (each page is bounded by {@link #PAGE_TIMEOUT} too). A key outside the requested prefix is
   * skipped with a warning (audit10 M5: a repeated token hung every command, a key shorter than the
   * prefix crashed it).
   */
  @Override
  public List<BlobInfo> listInfo(BlobType type) throws IOException {
    List<BlobInfo> names = new ArrayList<>();
    if (type == BlobType.CONFIG) {
      stat(BlobName.CONFIG).ifPresent(names::add);
      return names;
    }
    String dir = where.prefix() + type.directory() + "/";
    String what = "listing " + type.directory() + "/";
    java.util.Set<String> tokens = new java.util.HashSet<>();
    String token = null;
    int outside = 0;
    String firstOutside = null;
    // work bounds (audit12 M2): keys in the prefix beyond the greatest seen so far are progress
    String greatest = null;
    long progress = 0;
    long unkept = 0;
    int empty = 0;
    for (int page = 1; ; page++) {
      if (page > maxPages) {
        throw brokenListing(dir, "more than " + maxPages + " pages");
      }
      long budget = PAGE_SLACK + progress * 10 / Math.max(1, pageSize);
      if (page > budget) {
        throw brokenListing(
            dir,
            "more than "
                + budget
                + " pages for "
                + progress
                + " keys (pages of at most "
                + pageSize
                + " keys were asked for)");
      }
      String from = token;
      ListObjectsV2Request req =
          ListObjectsV2Request.builder()
              .bucket(where.bucket())
              .prefix(dir)
              .maxKeys(pageSize)
              .continuationToken(from)
              .overrideConfiguration(o -> o.apiCallTimeout(PAGE_TIMEOUT))
              .build();
      ListObjectsV2Response r = request(what, null, () -> s3.listObjectsV2(req));
      boolean advanced = false;
      for (S3Object o : r.contents()) {
        String key = o.key();
        if (key == null || !key.startsWith(dir)) {
          if (outside++ == 0) {
            firstOutside = key;
          }
          continue;
        }
        if (greatest == null || key.compareTo(greatest) > 0) {
          greatest = key;
          progress++;
          advanced = true;
        }
        String rest = key.substring(dir.length());
        int slash = rest.lastIndexOf('/');
        String n = rest.substring(slash + 1);
        boolean shaped =
            type == BlobType.PACK
                ? slash == 2 && n.length() >= 2 && rest.startsWith(n.substring(0, 2) + "/")
                : slash < 0;
        if (shaped && BlobName.isValid(n)) {
          if (names.size() >= maxKeys) {
            throw brokenListing(
                dir,
                "more than "
                    + maxKeys
                    + " blobs (the most one listing keeps; a larger heap raises it:"
                    + " GRANULE_JAVA_OPTS=-Xmx<size>)");
          }
          names.add(new BlobInfo(new BlobName(type, n), o.size(), o.lastModified()));
        } else if (++unkept > maxKeys) {
          throw brokenListing(
              dir, "more than " + maxKeys + " keys that are not blobs of this repository");
        }
      }
      if (!Boolean.TRUE.equals(r.isTruncated())) {
        break;
      }
      empty = advanced ? 0 : empty + 1;
      if (empty >= MAX_EMPTY_PAGES) {
        throw brokenListing(
            dir,
            empty
                + " truncated pages in a row brought no new key (none after the last one listed;"
                + " S3 lists keys in order) (page "
                + page
                + "): following it might never end");
      }
      token = r.nextContinuationToken();
      if (token == null || token.isEmpty()) {
        throw brokenListing(dir, "page " + page + " says more follow but gives no token");
      }
      if (!tokens.add(token)) {
        throw brokenListing(
            dir,
            "page "
                + page
                + " gives a continuation token it gave before: following it would never end");
      }
    }
    if (outside > 0) {
      LOG.warn(
          "{} of {} answered {} key(s) outside the prefix '{}' asked for, skipped (first: '{}')",
          what,
          where,
          outside,
          dir,
          firstOutside);
    }
    return names;
  }

  private IOException brokenListing(String prefix, String why) {
    return new IOException(
        "the S3 server of "
            + where
            + " broke the listing of bucket '"
            + where.bucket()
            + "' prefix '"
            + prefix
            + "': "
            + why
            + "; listing stopped (a faulty or hostile server: check the endpoint)");
  }

  @Override
  public void delete(BlobName name) throws IOException {
    String key = key(name);
    request("deleting", name, () -> s3.deleteObject(r -> r.bucket(where.bucket()).key(key)));
  }

  @Override
  public String location() {
    return where.toString();
  }

  @Override
  public String place() {
    return where.place();
  }
}
