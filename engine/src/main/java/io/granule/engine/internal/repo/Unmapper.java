package io.granule.engine.internal.repo;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Releases a memory mapping now instead of when the garbage collector gets to its buffer: a table
 * that doubles (the chunk index) would otherwise keep every smaller copy of itself mapped, and
 * counted in the process's memory, until a collection that may not come. Through {@code
 * sun.misc.Unsafe.invokeCleaner} (module jdk.unsupported, loaded by the system class loader, which
 * the OSGi framework does not stand in front of); where that is missing, the collector does it.
 *
 * <p>The caller guarantees that nothing touches the buffer (or any duplicate or slice of it)
 * afterwards: an access to an unmapped buffer crashes the JVM.
 */
public final class Unmapper {
  private static final Logger LOG = LoggerFactory.getLogger(Unmapper.class);
  private static final MethodHandle CLEANER = cleaner();

  private Unmapper() {}

  private static MethodHandle cleaner() {
    try {
      Class<?> unsafeClass =
          Class.forName("sun.misc.Unsafe", true, ClassLoader.getSystemClassLoader());
      Field f = unsafeClass.getDeclaredField("theUnsafe");
      f.setAccessible(true);
      Object unsafe = f.get(null);
      return MethodHandles.lookup()
          .findVirtual(
              unsafeClass, "invokeCleaner", MethodType.methodType(void.class, ByteBuffer.class))
          .bindTo(unsafe);
    } catch (ReflectiveOperationException | RuntimeException e) {
      LOG.debug("mappings are released by the garbage collector only: {}", e.toString());
      return null;
    }
  }

  /** Whether mappings can be released now. */
  public static boolean available() {
    return CLEANER != null;
  }

  /** Releases the mapping of {@code mapped} (a direct buffer made by {@code FileChannel.map}). */
  public static void unmap(ByteBuffer mapped) {
    if (CLEANER == null || mapped == null || !mapped.isDirect()) {
      return;
    }
    try {
      CLEANER.invokeExact(mapped);
    } catch (Throwable e) {
      LOG.debug("unable to release a mapping now: {}", e.toString());
    }
  }
}
