package io.granule.engine.internal.nbd;

import static io.granule.engine.internal.nbd.NbdProtocol.BASE_ALLOCATION;
import static io.granule.engine.internal.nbd.NbdProtocol.CMD_BLOCK_STATUS;
import static io.granule.engine.internal.nbd.NbdProtocol.CMD_DISC;
import static io.granule.engine.internal.nbd.NbdProtocol.CMD_FLAG_DF;
import static io.granule.engine.internal.nbd.NbdProtocol.CMD_FLAG_FUA;
import static io.granule.engine.internal.nbd.NbdProtocol.CMD_FLAG_NO_HOLE;
import static io.granule.engine.internal.nbd.NbdProtocol.CMD_FLAG_REQ_ONE;
import static io.granule.engine.internal.nbd.NbdProtocol.CMD_FLUSH;
import static io.granule.engine.internal.nbd.NbdProtocol.CMD_READ;
import static io.granule.engine.internal.nbd.NbdProtocol.CMD_TRIM;
import static io.granule.engine.internal.nbd.NbdProtocol.CMD_WRITE;
import static io.granule.engine.internal.nbd.NbdProtocol.CMD_WRITE_ZEROES;
import static io.granule.engine.internal.nbd.NbdProtocol.EINVAL;
import static io.granule.engine.internal.nbd.NbdProtocol.EIO;
import static io.granule.engine.internal.nbd.NbdProtocol.ENOSPC;
import static io.granule.engine.internal.nbd.NbdProtocol.EPERM;
import static io.granule.engine.internal.nbd.NbdProtocol.FLAG_CAN_MULTI_CONN;
import static io.granule.engine.internal.nbd.NbdProtocol.FLAG_C_FIXED_NEWSTYLE;
import static io.granule.engine.internal.nbd.NbdProtocol.FLAG_C_NO_ZEROES;
import static io.granule.engine.internal.nbd.NbdProtocol.FLAG_FIXED_NEWSTYLE;
import static io.granule.engine.internal.nbd.NbdProtocol.FLAG_HAS_FLAGS;
import static io.granule.engine.internal.nbd.NbdProtocol.FLAG_NO_ZEROES;
import static io.granule.engine.internal.nbd.NbdProtocol.FLAG_READ_ONLY;
import static io.granule.engine.internal.nbd.NbdProtocol.FLAG_SEND_DF;
import static io.granule.engine.internal.nbd.NbdProtocol.FLAG_SEND_FLUSH;
import static io.granule.engine.internal.nbd.NbdProtocol.FLAG_SEND_FUA;
import static io.granule.engine.internal.nbd.NbdProtocol.FLAG_SEND_TRIM;
import static io.granule.engine.internal.nbd.NbdProtocol.FLAG_SEND_WRITE_ZEROES;
import static io.granule.engine.internal.nbd.NbdProtocol.IHAVEOPT;
import static io.granule.engine.internal.nbd.NbdProtocol.INFO_BLOCK_SIZE;
import static io.granule.engine.internal.nbd.NbdProtocol.INFO_EXPORT;
import static io.granule.engine.internal.nbd.NbdProtocol.INFO_NAME;
import static io.granule.engine.internal.nbd.NbdProtocol.NBDMAGIC;
import static io.granule.engine.internal.nbd.NbdProtocol.OPTION_REPLY_MAGIC;
import static io.granule.engine.internal.nbd.NbdProtocol.OPT_ABORT;
import static io.granule.engine.internal.nbd.NbdProtocol.OPT_EXPORT_NAME;
import static io.granule.engine.internal.nbd.NbdProtocol.OPT_GO;
import static io.granule.engine.internal.nbd.NbdProtocol.OPT_INFO;
import static io.granule.engine.internal.nbd.NbdProtocol.OPT_LIST;
import static io.granule.engine.internal.nbd.NbdProtocol.OPT_LIST_META_CONTEXT;
import static io.granule.engine.internal.nbd.NbdProtocol.OPT_SET_META_CONTEXT;
import static io.granule.engine.internal.nbd.NbdProtocol.OPT_STRUCTURED_REPLY;
import static io.granule.engine.internal.nbd.NbdProtocol.REPLY_FLAG_DONE;
import static io.granule.engine.internal.nbd.NbdProtocol.REPLY_TYPE_BLOCK_STATUS;
import static io.granule.engine.internal.nbd.NbdProtocol.REPLY_TYPE_ERROR;
import static io.granule.engine.internal.nbd.NbdProtocol.REPLY_TYPE_NONE;
import static io.granule.engine.internal.nbd.NbdProtocol.REPLY_TYPE_OFFSET_DATA;
import static io.granule.engine.internal.nbd.NbdProtocol.REP_ACK;
import static io.granule.engine.internal.nbd.NbdProtocol.REP_ERR_INVALID;
import static io.granule.engine.internal.nbd.NbdProtocol.REP_ERR_TOO_BIG;
import static io.granule.engine.internal.nbd.NbdProtocol.REP_ERR_UNKNOWN;
import static io.granule.engine.internal.nbd.NbdProtocol.REP_ERR_UNSUP;
import static io.granule.engine.internal.nbd.NbdProtocol.REP_INFO;
import static io.granule.engine.internal.nbd.NbdProtocol.REP_META_CONTEXT;
import static io.granule.engine.internal.nbd.NbdProtocol.REP_SERVER;
import static io.granule.engine.internal.nbd.NbdProtocol.REQUEST_MAGIC;
import static io.granule.engine.internal.nbd.NbdProtocol.SIMPLE_REPLY_MAGIC;
import static io.granule.engine.internal.nbd.NbdProtocol.STATE_HOLE;
import static io.granule.engine.internal.nbd.NbdProtocol.STATE_ZERO;
import static io.granule.engine.internal.nbd.NbdProtocol.STRUCTURED_REPLY_MAGIC;

import io.granule.engine.spi.Extent;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** One client: the handshake, then its requests, answered in order on this thread. */
final class NbdConnection implements Runnable {
  private static final Logger LOG = LoggerFactory.getLogger(NbdConnection.class);

  /** Option payloads larger than this are skipped and refused (names are at most 4096 bytes). */
  static final int MAX_OPTION = 64 * 1024;

  /** Descriptors in one block status reply. */
  static final int MAX_DESCRIPTORS = 64 * 1024;

  private static final int BUFFER = 1024 * 1024;
  private static final int ALLOCATION_CONTEXT_ID = 1;

  private final NbdServer server;
  private final Socket socket;
  Thread thread;
  private DataInputStream in;
  private DataOutputStream out;
  private boolean noZeroes;
  private boolean structured;
  private String metaExport;
  private boolean allocationSelected;
  private ByteBuffer buffer;

  NbdConnection(NbdServer server, Socket socket) {
    this.server = server;
    this.socket = socket;
  }

  /** A client broke the protocol: close this connection. */
  private static final class ProtocolException extends IOException {
    private static final long serialVersionUID = 1L;

    ProtocolException(String message) {
      super(message);
    }
  }

  @Override
  public void run() {
    try {
      socket.setTcpNoDelay(true);
      socket.setSoTimeout(NbdServer.HANDSHAKE_TIMEOUT_MS);
      in = new DataInputStream(new BufferedInputStream(socket.getInputStream(), 256 * 1024));
      out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream(), 256 * 1024));
      NbdExport export = handshake();
      if (export != null) {
        socket.setSoTimeout(0);
        transmission(export);
      }
    } catch (ProtocolException e) {
      LOG.info("nbd: closing {}: {}", socket.getRemoteSocketAddress(), e.getMessage());
    } catch (SocketTimeoutException e) {
      LOG.info("nbd: closing {}: handshake timed out", socket.getRemoteSocketAddress());
    } catch (EOFException | SocketException e) {
      // The client went away (or the server is closing): nothing to answer.
    } catch (IOException | RuntimeException e) {
      LOG.warn("nbd: closing {}: {}", socket.getRemoteSocketAddress(), e.toString());
    } finally {
      NbdServer.closeQuietly(socket);
      server.finished(this);
    }
  }

  void abort() {
    NbdServer.closeQuietly(socket);
  }

  // ---------------------------------------------------------------- handshake

  /** Negotiates options; returns the export to serve, or null when the client ends the session. */
  private NbdExport handshake() throws IOException {
    out.writeLong(NBDMAGIC);
    out.writeLong(IHAVEOPT);
    out.writeShort(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    out.flush();
    int clientFlags = in.readInt();
    if ((clientFlags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) != 0) {
      throw new ProtocolException("unknown client flags " + Integer.toHexString(clientFlags));
    }
    noZeroes = (clientFlags & FLAG_C_NO_ZEROES) != 0;
    while (true) {
      long magic = in.readLong();
      if (magic != IHAVEOPT) {
        throw new ProtocolException("bad option magic " + Long.toHexString(magic));
      }
      int option = in.readInt();
      long length = in.readInt() & 0xffffffffL;
      if (length > MAX_OPTION) {
        if (option == OPT_EXPORT_NAME) {
          throw new ProtocolException("export name of " + length + " bytes");
        }
        skip(length);
        replyError(option, REP_ERR_TOO_BIG, "option of " + length + " bytes is too big");
        continue;
      }
      byte[] data = new byte[(int) length];
      in.readFully(data);
      ByteBuffer d = ByteBuffer.wrap(data);
      switch (option) {
        case OPT_EXPORT_NAME -> {
          String name = new String(data, StandardCharsets.UTF_8);
          NbdExport e = server.exports().get(name);
          if (e == null) {
            // This old option has no way to say no but to hang up.
            throw new ProtocolException("unknown export '" + name + "'");
          }
          out.writeLong(e.image().size());
          out.writeShort(transmissionFlags(e));
          if (!noZeroes) {
            out.write(new byte[124]);
          }
          out.flush();
          selectExport(name);
          return e;
        }
        case OPT_ABORT -> {
          reply(option, REP_ACK, new byte[0]);
          return null;
        }
        case OPT_LIST -> {
          if (length != 0) {
            replyError(option, REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
            continue;
          }
          for (String name : server.exports().keySet()) {
            byte[] n = name.getBytes(StandardCharsets.UTF_8);
            reply(option, REP_SERVER, ByteBuffer.allocate(4 + n.length).putInt(n.length).put(n));
          }
          reply(option, REP_ACK, new byte[0]);
        }
        case OPT_INFO, OPT_GO -> {
          NbdExport e = infoOrGo(option, d);
          if (e != null && option == OPT_GO) {
            return e;
          }
        }
        case OPT_STRUCTURED_REPLY -> {
          if (length != 0) {
            replyError(option, REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
            continue;
          }
          structured = true;
          reply(option, REP_ACK, new byte[0]);
        }
        case OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT -> metaContext(option, d);
        default ->
            replyError(option, REP_ERR_UNSUP, "option " + option + " is not supported by granule");
      }
    }
  }

  private NbdExport infoOrGo(int option, ByteBuffer d) throws IOException {
    String name = string(d, d.remaining() - 2);
    if (name == null || d.remaining() < 2) {
      replyError(option, REP_ERR_INVALID, "malformed NBD_OPT_INFO/NBD_OPT_GO");
      return null;
    }
    int requests = d.getShort() & 0xffff;
    if (d.remaining() != 2 * requests) {
      replyError(option, REP_ERR_INVALID, "malformed list of information requests");
      return null;
    }
    boolean wantName = false;
    for (int i = 0; i < requests; i++) {
      wantName |= (d.getShort() & 0xffff) == INFO_NAME;
    }
    NbdExport e = server.exports().get(name);
    if (e == null) {
      replyError(option, REP_ERR_UNKNOWN, "no export named '" + name + "'; " + exportList());
      return null;
    }
    reply(
        option,
        REP_INFO,
        ByteBuffer.allocate(12)
            .putShort((short) INFO_EXPORT)
            .putLong(e.image().size())
            .putShort((short) transmissionFlags(e)));
    reply(
        option,
        REP_INFO,
        ByteBuffer.allocate(14)
            .putShort((short) INFO_BLOCK_SIZE)
            .putInt(1)
            .putInt(OverlayDisk.BLOCK_SIZE)
            .putInt(NbdServer.MAX_REQUEST));
    if (wantName) {
      byte[] n = name.getBytes(StandardCharsets.UTF_8);
      reply(option, REP_INFO, ByteBuffer.allocate(2 + n.length).putShort((short) INFO_NAME).put(n));
    }
    reply(option, REP_ACK, new byte[0]);
    if (option == OPT_GO) {
      selectExport(name);
    }
    return e;
  }

  /** Meta contexts chosen for another export do not carry over to this one. */
  private void selectExport(String name) {
    if (!name.equals(metaExport)) {
      allocationSelected = false;
    }
  }

  private void metaContext(int option, ByteBuffer d) throws IOException {
    boolean set = option == OPT_SET_META_CONTEXT;
    if (set && !structured) {
      replyError(option, REP_ERR_INVALID, "negotiate structured replies first");
      return;
    }
    String name = string(d, d.remaining());
    if (name == null || d.remaining() < 4) {
      replyError(option, REP_ERR_INVALID, "malformed meta context request");
      return;
    }
    int queries = d.getInt();
    List<String> q = new ArrayList<>();
    for (int i = 0; i < queries; i++) {
      String s = string(d, d.remaining());
      if (s == null) {
        replyError(option, REP_ERR_INVALID, "malformed meta context query");
        return;
      }
      q.add(s);
    }
    if (queries < 0 || d.hasRemaining()) {
      replyError(option, REP_ERR_INVALID, "malformed meta context request");
      return;
    }
    if (!server.exports().containsKey(name)) {
      replyError(option, REP_ERR_UNKNOWN, "no export named '" + name + "'; " + exportList());
      return;
    }
    boolean match =
        q.stream()
            .anyMatch(
                s -> s.equals(BASE_ALLOCATION) || (!set && (s.equals("base:") || s.isEmpty())));
    if (!set && q.isEmpty()) {
      match = true;
    }
    if (match) {
      byte[] n = BASE_ALLOCATION.getBytes(StandardCharsets.UTF_8);
      reply(
          option,
          REP_META_CONTEXT,
          ByteBuffer.allocate(4 + n.length).putInt(ALLOCATION_CONTEXT_ID).put(n));
    }
    if (set) {
      allocationSelected = match;
      metaExport = name;
    }
    reply(option, REP_ACK, new byte[0]);
  }

  /** A u32-length-prefixed string within {@code max} bytes, or null if malformed. */
  private static String string(ByteBuffer d, int max) {
    if (d.remaining() < 4 || max < 4) {
      return null;
    }
    long n = d.getInt() & 0xffffffffL;
    if (n > Math.min(max - 4, 4096)) {
      return null;
    }
    byte[] b = new byte[(int) n];
    d.get(b);
    return new String(b, StandardCharsets.UTF_8);
  }

  private String exportList() {
    List<String> names = new ArrayList<>();
    for (String n : server.exports().keySet()) {
      names.add(n.isEmpty() ? "'' (default)" : "'" + n + "'");
    }
    return "exports: " + String.join(", ", names);
  }

  private int transmissionFlags(NbdExport e) {
    // Every connection sees the same image and overlay, so several at once are consistent.
    int f = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_CAN_MULTI_CONN;
    if (structured) {
      // Every read is answered with one data chunk anyway.
      f |= FLAG_SEND_DF;
    }
    if (e.writable()) {
      f |= FLAG_SEND_FUA | FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES;
    } else {
      f |= FLAG_READ_ONLY;
    }
    return f;
  }

  private void reply(int option, int type, ByteBuffer data) throws IOException {
    reply(option, type, java.util.Arrays.copyOf(data.array(), data.position()));
  }

  private void reply(int option, int type, byte[] data) throws IOException {
    out.writeLong(OPTION_REPLY_MAGIC);
    out.writeInt(option);
    out.writeInt(type);
    out.writeInt(data.length);
    out.write(data);
    out.flush();
  }

  private void replyError(int option, int type, String message) throws IOException {
    reply(option, type, message.getBytes(StandardCharsets.UTF_8));
  }

  private void skip(long n) throws IOException {
    long left = n;
    while (left > 0) {
      long k = in.skip(left);
      if (k <= 0) {
        in.readByte();
        k = 1;
      }
      left -= k;
    }
  }

  // ---------------------------------------------------------------- transmission

  private void transmission(NbdExport export) throws IOException {
    long size = export.image().size();
    while (true) {
      int magic = in.readInt();
      if (magic != REQUEST_MAGIC) {
        throw new ProtocolException("bad request magic " + Integer.toHexString(magic));
      }
      int flags = in.readUnsignedShort();
      int type = in.readUnsignedShort();
      long cookie = in.readLong();
      long offset = in.readLong();
      long length = in.readInt() & 0xffffffffL;
      // Unsigned offsets beyond 2^63 come out negative: out of range like any other.
      boolean inside = offset >= 0 && offset <= size && length <= size - offset;
      switch (type) {
        case CMD_READ -> {
          if ((flags & ~(CMD_FLAG_FUA | CMD_FLAG_DF)) != 0) {
            error(cookie, true, EINVAL, "unknown flags for a read");
          } else if (length > NbdServer.MAX_REQUEST) {
            error(cookie, true, EINVAL, "read of " + length + " bytes is too large");
          } else if (!inside) {
            error(cookie, true, EINVAL, "read outside the export");
          } else {
            read(export, cookie, offset, (int) length);
          }
        }
        case CMD_WRITE -> {
          if (length > NbdServer.MAX_REQUEST) {
            throw new ProtocolException("write of " + length + " bytes is too large");
          }
          ByteBuffer b = buffer((int) length);
          in.readFully(b.array(), 0, (int) length);
          if (!export.writable()) {
            error(cookie, false, EPERM, "the export is read-only");
          } else if ((flags & ~CMD_FLAG_FUA) != 0) {
            error(cookie, false, EINVAL, "unknown flags for a write");
          } else if (!inside) {
            error(cookie, false, ENOSPC, "write outside the export");
          } else {
            change(export, cookie, fua(flags), () -> export.overlay().write(offset, b));
          }
        }
        case CMD_DISC -> {
          return;
        }
        case CMD_FLUSH -> {
          if (export.writable()) {
            change(export, cookie, true, () -> {});
          } else {
            ok(cookie);
          }
        }
        case CMD_TRIM, CMD_WRITE_ZEROES -> {
          int allowed = CMD_FLAG_FUA | (type == CMD_WRITE_ZEROES ? CMD_FLAG_NO_HOLE : 0);
          if (!export.writable()) {
            error(cookie, false, EPERM, "the export is read-only");
          } else if ((flags & ~allowed) != 0) {
            error(cookie, false, EINVAL, "unknown flags");
          } else if (!inside) {
            error(cookie, false, ENOSPC, "range outside the export");
          } else {
            change(export, cookie, fua(flags), () -> export.overlay().writeZeroes(offset, length));
          }
        }
        case CMD_BLOCK_STATUS -> {
          if (!structured || !allocationSelected) {
            error(cookie, false, EINVAL, "no meta context negotiated");
          } else if ((flags & ~CMD_FLAG_REQ_ONE) != 0) {
            error(cookie, true, EINVAL, "unknown flags for block status");
          } else if (length == 0 || !inside) {
            error(cookie, true, EINVAL, "block status outside the export");
          } else {
            blockStatus(export, cookie, offset, length, (flags & CMD_FLAG_REQ_ONE) != 0);
          }
        }
        default -> error(cookie, false, EINVAL, "unknown command " + type);
      }
      // Pipelined requests already waiting: answer them before paying for a flush.
      if (in.available() == 0) {
        out.flush();
      }
    }
  }

  private ByteBuffer buffer(int length) {
    if (length > BUFFER) {
      return ByteBuffer.allocate(length);
    }
    if (buffer == null) {
      buffer = ByteBuffer.allocate(BUFFER);
    }
    return buffer.clear().limit(length);
  }

  private void read(NbdExport export, long cookie, long offset, int length) throws IOException {
    ByteBuffer b = buffer(length);
    try {
      export.image().read(offset, b);
    } catch (IOException | RuntimeException e) {
      LOG.warn("nbd: read of {} bytes at offset {} failed: {}", length, offset, e.getMessage());
      error(cookie, true, EIO, "read failed at offset " + offset + ": " + e.getMessage());
      return;
    }
    if (structured) {
      if (length == 0) {
        chunkHeader(REPLY_FLAG_DONE, REPLY_TYPE_NONE, cookie, 0);
        return;
      }
      chunkHeader(REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, cookie, 8 + length);
      out.writeLong(offset);
    } else {
      simpleReply(cookie, 0);
    }
    out.write(b.array(), 0, length);
  }

  private interface Change {
    void run() throws IOException;
  }

  private static boolean fua(int flags) {
    return (flags & CMD_FLAG_FUA) != 0;
  }

  private void change(NbdExport export, long cookie, boolean flush, Change c) throws IOException {
    try {
      c.run();
      if (flush) {
        export.overlay().flush();
      }
    } catch (IOException | RuntimeException e) {
      LOG.warn("nbd: write to the overlay failed: {}", e.getMessage());
      error(cookie, false, EIO, "overlay write failed: " + e.getMessage());
      return;
    }
    ok(cookie);
  }

  private void blockStatus(NbdExport export, long cookie, long offset, long length, boolean one)
      throws IOException {
    List<Extent> allocated;
    try {
      allocated = export.image().allocation(offset, length);
    } catch (IOException | RuntimeException e) {
      // Status 0 (data) is always a correct answer.
      allocated = List.of(new Extent(offset, length));
    }
    List<long[]> descriptors = new ArrayList<>();
    long pos = offset;
    long end = offset + length;
    for (Extent e : allocated) {
      long from = Math.max(e.offset(), pos);
      long to = Math.min(e.end(), end);
      if (to <= from) {
        continue;
      }
      if (from > pos) {
        descriptors.add(new long[] {from - pos, STATE_HOLE | STATE_ZERO});
      }
      descriptors.add(new long[] {to - from, 0});
      pos = to;
    }
    if (pos < end) {
      descriptors.add(new long[] {end - pos, STATE_HOLE | STATE_ZERO});
    }
    int n = one ? 1 : Math.min(descriptors.size(), MAX_DESCRIPTORS);
    chunkHeader(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, cookie, 4 + 8 * n);
    out.writeInt(ALLOCATION_CONTEXT_ID);
    for (int i = 0; i < n; i++) {
      out.writeInt((int) descriptors.get(i)[0]);
      out.writeInt((int) descriptors.get(i)[1]);
    }
  }

  private void ok(long cookie) throws IOException {
    simpleReply(cookie, 0);
  }

  /**
   * Answers with an error: as a structured error chunk when structured replies were negotiated and
   * the command is one that needs them ({@code structuredCommand}), else as a simple reply.
   */
  private void error(long cookie, boolean structuredCommand, int errno, String message)
      throws IOException {
    if (structured && structuredCommand) {
      byte[] m = message.getBytes(StandardCharsets.UTF_8);
      int len = Math.min(m.length, 4096);
      chunkHeader(REPLY_FLAG_DONE, REPLY_TYPE_ERROR, cookie, 6 + len);
      out.writeInt(errno);
      out.writeShort(len);
      out.write(m, 0, len);
    } else {
      simpleReply(cookie, errno);
    }
  }

  private void simpleReply(long cookie, int errno) throws IOException {
    out.writeInt(SIMPLE_REPLY_MAGIC);
    out.writeInt(errno);
    out.writeLong(cookie);
  }

  private void chunkHeader(int flags, int type, long cookie, int length) throws IOException {
    out.writeInt(STRUCTURED_REPLY_MAGIC);
    out.writeShort(flags);
    out.writeShort(type);
    out.writeLong(cookie);
    out.writeInt(length);
  }
}
