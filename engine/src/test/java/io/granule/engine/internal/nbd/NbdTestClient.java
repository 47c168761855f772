package io.granule.engine.internal.nbd;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** A small NBD client written from the protocol document, to test the server byte by byte. */
final class NbdTestClient implements AutoCloseable {
  final Socket socket;
  final DataInputStream in;
  final DataOutputStream out;
  final int handshakeFlags;

  record OptionReply(int option, int type, byte[] data) {
    String text() {
      return new String(data, StandardCharsets.UTF_8);
    }
  }

  /** A reply: simple (type -1) or one structured chunk. */
  record Reply(long cookie, int error, int flags, int type, byte[] data) {}

  NbdTestClient(InetSocketAddress server) throws IOException {
    socket = new Socket();
    socket.connect(server, 5000);
    socket.setSoTimeout(10_000);
    in = new DataInputStream(socket.getInputStream());
    out = new DataOutputStream(socket.getOutputStream());
    if (in.readLong() != NbdProtocol.NBDMAGIC || in.readLong() != NbdProtocol.IHAVEOPT) {
      throw new IOException("not a newstyle NBD server");
    }
    handshakeFlags = in.readUnsignedShort();
    out.writeInt(NbdProtocol.FLAG_C_FIXED_NEWSTYLE | NbdProtocol.FLAG_C_NO_ZEROES);
  }

  void sendOption(int option, byte[] data) throws IOException {
    out.writeLong(NbdProtocol.IHAVEOPT);
    out.writeInt(option);
    out.writeInt(data.length);
    out.write(data);
    out.flush();
  }

  OptionReply readOptionReply() throws IOException {
    long magic = in.readLong();
    if (magic != NbdProtocol.OPTION_REPLY_MAGIC) {
      throw new IOException("bad option reply magic " + Long.toHexString(magic));
    }
    int option = in.readInt();
    int type = in.readInt();
    byte[] data = new byte[in.readInt()];
    in.readFully(data);
    return new OptionReply(option, type, data);
  }

  /** Sends an option and reads replies up to and including the ACK or an error. */
  List<OptionReply> option(int option, byte[] data) throws IOException {
    sendOption(option, data);
    List<OptionReply> replies = new ArrayList<>();
    while (true) {
      OptionReply r = readOptionReply();
      replies.add(r);
      if (r.type() == NbdProtocol.REP_ACK || r.type() < 0) {
        return replies;
      }
    }
  }

  static byte[] nameAndRequests(String name, int... infos) {
    byte[] n = name.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(4 + n.length + 2 + 2 * infos.length);
    b.putInt(n.length).put(n).putShort((short) infos.length);
    for (int i : infos) {
      b.putShort((short) i);
    }
    return b.array();
  }

  static byte[] metaContext(String name, String... queries) {
    ByteBuffer b = ByteBuffer.allocate(8192);
    byte[] n = name.getBytes(StandardCharsets.UTF_8);
    b.putInt(n.length).put(n).putInt(queries.length);
    for (String q : queries) {
      byte[] qb = q.getBytes(StandardCharsets.UTF_8);
      b.putInt(qb.length).put(qb);
    }
    return java.util.Arrays.copyOf(b.array(), b.position());
  }

  /** Structured replies, base:allocation, then NBD_OPT_GO; returns the export size. */
  long goStructured(String name) throws IOException {
    option(NbdProtocol.OPT_STRUCTURED_REPLY, new byte[0]);
    option(NbdProtocol.OPT_SET_META_CONTEXT, metaContext(name, NbdProtocol.BASE_ALLOCATION));
    return go(name);
  }

  /** NBD_OPT_GO; returns the export size. */
  long go(String name) throws IOException {
    long size = -1;
    for (OptionReply r : option(NbdProtocol.OPT_GO, nameAndRequests(name))) {
      if (r.type() < 0) {
        throw new IOException("NBD_OPT_GO refused: " + r.text());
      }
      if (r.type() == NbdProtocol.REP_INFO && ByteBuffer.wrap(r.data()).getShort() == 0) {
        size = ByteBuffer.wrap(r.data()).getLong(2);
        transmissionFlags = ByteBuffer.wrap(r.data()).getShort(10) & 0xffff;
      }
    }
    return size;
  }

  int transmissionFlags;

  void request(int type, int flags, long cookie, long offset, long length, byte[] payload)
      throws IOException {
    out.writeInt(NbdProtocol.REQUEST_MAGIC);
    out.writeShort(flags);
    out.writeShort(type);
    out.writeLong(cookie);
    out.writeLong(offset);
    out.writeInt((int) length);
    if (payload != null) {
      out.write(payload);
    }
    out.flush();
  }

  /** Reads one reply; {@code readLength} is the data length a simple read reply carries. */
  Reply reply(int readLength) throws IOException {
    int magic = in.readInt();
    if (magic == NbdProtocol.SIMPLE_REPLY_MAGIC) {
      int error = in.readInt();
      long cookie = in.readLong();
      byte[] data = new byte[error == 0 ? readLength : 0];
      in.readFully(data);
      return new Reply(cookie, error, 0, -1, data);
    }
    if (magic != NbdProtocol.STRUCTURED_REPLY_MAGIC) {
      throw new IOException("bad reply magic " + Integer.toHexString(magic));
    }
    int flags = in.readUnsignedShort();
    int type = in.readUnsignedShort();
    long cookie = in.readLong();
    byte[] data = new byte[in.readInt()];
    in.readFully(data);
    int error = 0;
    if ((type & 0x8000) != 0) {
      error = ByteBuffer.wrap(data).getInt();
    }
    return new Reply(cookie, error, flags, type, data);
  }

  byte[] read(long offset, int length) throws IOException {
    request(NbdProtocol.CMD_READ, 0, 7, offset, length, null);
    Reply r = reply(length);
    if (r.error() != 0) {
      throw new IOException("read failed with error " + r.error());
    }
    if (r.type() == NbdProtocol.REPLY_TYPE_OFFSET_DATA) {
      return java.util.Arrays.copyOfRange(r.data(), 8, r.data().length);
    }
    return r.data();
  }

  @Override
  public void close() throws IOException {
    socket.close();
  }
}
