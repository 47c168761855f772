/*
 * The crypto half of libgranule-native: JNI bindings of
 * io.granule.engine.internal.repo.crypto.NativeCrypto to the system's OpenSSL 3 libcrypto
 * (SHA-256, HMAC-SHA-256, AES-256-GCM, scrypt).
 *
 * Why: the JVM runs these at hardware speed (SHA and AES instructions) only in code its C2
 * compiler has compiled, which costs a short-lived command seconds of CPU; through libcrypto they
 * run at that speed from the first call, in any JIT mode. See docs/design.md, "Native crypto".
 *
 * libcrypto is opened with dlopen at init, not linked: the library builds with a C compiler and
 * the JDK's headers only, and where libcrypto.so.3 is missing, init fails and Granule uses the
 * JDK's implementations instead. The few OpenSSL 3 functions used are declared here (their ABI is
 * versioned OPENSSL_3.0.0 and stable).
 *
 * Byte arrays are accessed with Get/ReleasePrimitiveArrayCritical: no copy; the GC waits for the
 * call (at most a few milliseconds for the largest chunk).
 */
#include <dlfcn.h>
#include <jni.h>

#include "blake3/blake3.h"
#include "blake3/blake3_impl.h"
#include "io_granule_engine_internal_repo_crypto_NativeCrypto.h"
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct evp_md_st EVP_MD;
typedef struct evp_md_ctx_st EVP_MD_CTX;
typedef struct evp_cipher_st EVP_CIPHER;
typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
typedef struct engine_st ENGINE;

#define EVP_CTRL_GCM_GET_TAG 0x10
#define EVP_CTRL_GCM_SET_TAG 0x11

static unsigned long (*p_OpenSSL_version_num)(void);
static const char *(*p_OpenSSL_version)(int);
static EVP_MD *(*p_EVP_MD_fetch)(void *, const char *, const char *);
static EVP_CIPHER *(*p_EVP_CIPHER_fetch)(void *, const char *, const char *);
static int (*p_EVP_Digest)(const void *, size_t, unsigned char *, unsigned int *, const EVP_MD *,
                           ENGINE *);
static EVP_MD_CTX *(*p_EVP_MD_CTX_new)(void);
static void (*p_EVP_MD_CTX_free)(EVP_MD_CTX *);
static int (*p_EVP_DigestInit_ex)(EVP_MD_CTX *, const EVP_MD *, ENGINE *);
static int (*p_EVP_DigestUpdate)(EVP_MD_CTX *, const void *, size_t);
static int (*p_EVP_DigestFinal_ex)(EVP_MD_CTX *, unsigned char *, unsigned int *);
static EVP_CIPHER_CTX *(*p_EVP_CIPHER_CTX_new)(void);
static void (*p_EVP_CIPHER_CTX_free)(EVP_CIPHER_CTX *);
static int (*p_EVP_CIPHER_CTX_ctrl)(EVP_CIPHER_CTX *, int, int, void *);
static int (*p_EVP_EncryptInit_ex)(EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *,
                                   const unsigned char *, const unsigned char *);
static int (*p_EVP_EncryptUpdate)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *,
                                  int);
static int (*p_EVP_EncryptFinal_ex)(EVP_CIPHER_CTX *, unsigned char *, int *);
static int (*p_EVP_DecryptInit_ex)(EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *,
                                   const unsigned char *, const unsigned char *);
static int (*p_EVP_DecryptUpdate)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *,
                                  int);
static int (*p_EVP_DecryptFinal_ex)(EVP_CIPHER_CTX *, unsigned char *, int *);
static int (*p_EVP_PBE_scrypt)(const char *, size_t, const unsigned char *, size_t, uint64_t,
                               uint64_t, uint64_t, uint64_t, unsigned char *, size_t);

static const EVP_MD *sha256;
static const EVP_CIPHER *aes256gcm;
static char failure[256] = "not initialised";

#define SYM(name)                                                                     \
  do {                                                                                \
    *(void **)(&p_##name) = dlsym(lib, #name);                                        \
    if (p_##name == NULL) {                                                           \
      snprintf(failure, sizeof failure, "%s lacks %s", path, #name);                 \
      return NULL;                                                                    \
    }                                                                                 \
  } while (0)

static const char *bind(const char *path) {
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    const char *e = dlerror();
    snprintf(failure, sizeof failure, "%s", e != NULL ? e : path);
    return NULL;
  }
  SYM(OpenSSL_version_num);
  if (p_OpenSSL_version_num() < 0x30000000UL) {
    snprintf(failure, sizeof failure, "%s is OpenSSL %lx, not 3.x", path, p_OpenSSL_version_num());
    return NULL;
  }
  SYM(OpenSSL_version);
  SYM(EVP_MD_fetch);
  SYM(EVP_CIPHER_fetch);
  SYM(EVP_Digest);
  SYM(EVP_MD_CTX_new);
  SYM(EVP_MD_CTX_free);
  SYM(EVP_DigestInit_ex);
  SYM(EVP_DigestUpdate);
  SYM(EVP_DigestFinal_ex);
  SYM(EVP_CIPHER_CTX_new);
  SYM(EVP_CIPHER_CTX_free);
  SYM(EVP_CIPHER_CTX_ctrl);
  SYM(EVP_EncryptInit_ex);
  SYM(EVP_EncryptUpdate);
  SYM(EVP_EncryptFinal_ex);
  SYM(EVP_DecryptInit_ex);
  SYM(EVP_DecryptUpdate);
  SYM(EVP_DecryptFinal_ex);
  SYM(EVP_PBE_scrypt);
  sha256 = p_EVP_MD_fetch(NULL, "SHA256", NULL);
  aes256gcm = p_EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
  if (sha256 == NULL || aes256gcm == NULL) {
    snprintf(failure, sizeof failure, "%s offers no SHA256 or AES-256-GCM", path);
    return NULL;
  }
  return path;
}

/* NativeCrypto.init(): binds libcrypto; returns null, or why it cannot. */
JNIEXPORT jstring JNICALL Java_io_granule_engine_internal_repo_crypto_NativeCrypto_init(
    JNIEnv *env, jclass cls) {
  (void)cls;
  if (bind("libcrypto.so.3") != NULL) {
    return NULL;
  }
  return (*env)->NewStringUTF(env, failure);
}

/* NativeCrypto.libraryVersion(): libcrypto's version text, e.g. "OpenSSL 3.0.19 27 Jan 2026". */
JNIEXPORT jstring JNICALL Java_io_granule_engine_internal_repo_crypto_NativeCrypto_libraryVersion(
    JNIEnv *env, jclass cls) {
  (void)cls;
  return (*env)->NewStringUTF(env, p_OpenSSL_version(0 /* OPENSSL_VERSION */));
}

/* SHA-256 of len bytes at p into md; 1 on success. */
static int sha256_of(const unsigned char *p, size_t len, unsigned char md[32]) {
  unsigned int n = 0;
  return p_EVP_Digest(p, len, md, &n, sha256, NULL) == 1 && n == 32;
}

/*
 * HMAC (RFC 2104) over libcrypto's SHA-256 of len bytes at p, for keys of at most 64 bytes (one
 * SHA-256 block): H((K ^ opad) || H((K ^ ipad) || data)). 1 on success.
 */
static int hmac_of(const unsigned char *key, size_t keyLen, const unsigned char *p, size_t len,
                   unsigned char mac[32]) {
  unsigned char ipad[64], opad[64], inner[32];
  if (keyLen > 64) {
    return 0;
  }
  memset(ipad, 0, sizeof ipad);
  memcpy(ipad, key, keyLen);
  memcpy(opad, ipad, sizeof opad);
  for (int i = 0; i < 64; i++) {
    ipad[i] ^= 0x36;
    opad[i] ^= 0x5c;
  }
  EVP_MD_CTX *ctx = p_EVP_MD_CTX_new();
  if (ctx == NULL) {
    return 0;
  }
  unsigned int n = 0;
  int ok = p_EVP_DigestInit_ex(ctx, sha256, NULL) == 1 && p_EVP_DigestUpdate(ctx, ipad, 64) == 1 &&
           p_EVP_DigestUpdate(ctx, p, len) == 1 && p_EVP_DigestFinal_ex(ctx, inner, &n) == 1 &&
           n == 32;
  ok = ok && p_EVP_DigestInit_ex(ctx, sha256, NULL) == 1 && p_EVP_DigestUpdate(ctx, opad, 64) == 1 &&
       p_EVP_DigestUpdate(ctx, inner, 32) == 1 && p_EVP_DigestFinal_ex(ctx, mac, &n) == 1 && n == 32;
  p_EVP_MD_CTX_free(ctx);
  memset(ipad, 0, sizeof ipad);
  memset(opad, 0, sizeof opad);
  return ok;
}

/*
 * The bytes of a Java byte[] or of a direct java.nio.Buffer. JNI allows no other JNI call while an
 * array is pinned (critical), so every region's direct address is looked up first, then arrays are
 * pinned, used and released.
 */
typedef struct {
  jobject obj;
  unsigned char *addr;
  int pinned;
} region;

static void lookup(JNIEnv *env, region *r, jobject obj) {
  r->obj = obj;
  r->pinned = 0;
  r->addr = (unsigned char *)(*env)->GetDirectBufferAddress(env, obj);
}

static int pin(JNIEnv *env, region *r) {
  if (r->addr == NULL) {
    r->addr = (unsigned char *)(*env)->GetPrimitiveArrayCritical(env, (jarray)r->obj, NULL);
    if (r->addr == NULL) {
      return 0;
    }
    r->pinned = 1;
  }
  return 1;
}

static void unpin(JNIEnv *env, region *r, jint mode) {
  if (r->pinned) {
    (*env)->ReleasePrimitiveArrayCritical(env, (jarray)r->obj, r->addr, mode);
    r->pinned = 0;
  }
}

/*
 * digest(key, data, off, len, out32): SHA-256 when key is null, else HMAC-SHA-256 under key (at
 * most 64 bytes), of len bytes at off of data, a byte[] or a direct buffer. 0, or -1 on failure.
 */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_repo_crypto_NativeCrypto_digest(
    JNIEnv *env, jclass cls, jbyteArray key, jobject data, jint off, jint len, jbyteArray out) {
  (void)cls;
  unsigned char k[64], md[32];
  jsize keyLen = 0;
  if (key != NULL) {
    keyLen = (*env)->GetArrayLength(env, key);
    if (keyLen > 64) {
      return -1;
    }
    (*env)->GetByteArrayRegion(env, key, 0, keyLen, (jbyte *)k);
  }
  region d;
  lookup(env, &d, data);
  if (!pin(env, &d)) {
    return -1;
  }
  const unsigned char *p = d.addr + off;
  int ok = key == NULL ? sha256_of(p, (size_t)len, md)
                       : hmac_of(k, (size_t)keyLen, p, (size_t)len, md);
  unpin(env, &d, JNI_ABORT);
  memset(k, 0, sizeof k);
  if (!ok) {
    return -1;
  }
  (*env)->SetByteArrayRegion(env, out, 0, 32, (const jbyte *)md);
  return 0;
}

/*
 * aesGcm(encrypt, key32, nonce12, aad, src, srcOff, len, dst, dstOff): AES-256-GCM with a 16-byte
 * tag; src and dst are each a byte[] or a direct buffer. Encrypting writes len bytes of ciphertext
 * and then the tag at dst[dstOff]; returns len + 16. Decrypting reads len bytes of ciphertext
 * followed by the tag at src[srcOff] and writes len - 16 bytes of plaintext; returns len - 16, or
 * -2 if authentication fails (the plaintext written is then zeroed). -1 on other failures.
 */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_repo_crypto_NativeCrypto_aesGcm(
    JNIEnv *env, jclass cls, jboolean encrypt, jbyteArray key, jbyteArray nonce, jbyteArray aad,
    jobject src, jint srcOff, jint len, jobject dst, jint dstOff) {
  (void)cls;
  unsigned char k[32], iv[12];
  if ((*env)->GetArrayLength(env, key) != 32 || (*env)->GetArrayLength(env, nonce) != 12) {
    return -1;
  }
  if (!encrypt && len < 16) {
    return -2;
  }
  (*env)->GetByteArrayRegion(env, key, 0, 32, (jbyte *)k);
  (*env)->GetByteArrayRegion(env, nonce, 0, 12, (jbyte *)iv);
  jsize aadLen = (*env)->GetArrayLength(env, aad);
  EVP_CIPHER_CTX *ctx = p_EVP_CIPHER_CTX_new();
  if (ctx == NULL) {
    memset(k, 0, sizeof k);
    return -1;
  }
  int result = -1;
  int n = 0, fin = 0;
  int dataLen = encrypt ? len : len - 16;
  region a, s, d;
  lookup(env, &a, aad);
  lookup(env, &s, src);
  lookup(env, &d, dst);
  if (pin(env, &a) && pin(env, &s) && pin(env, &d)) {
    unsigned char *in = s.addr + srcOff;
    unsigned char *out = d.addr + dstOff;
    if (encrypt) {
      if (p_EVP_EncryptInit_ex(ctx, aes256gcm, NULL, k, iv) == 1 &&
          p_EVP_EncryptUpdate(ctx, NULL, &n, a.addr, aadLen) == 1 &&
          p_EVP_EncryptUpdate(ctx, out, &n, in, dataLen) == 1 &&
          p_EVP_EncryptFinal_ex(ctx, out + n, &fin) == 1 &&
          p_EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + n + fin) == 1) {
        result = n + fin + 16;
      }
    } else {
      if (p_EVP_DecryptInit_ex(ctx, aes256gcm, NULL, k, iv) == 1 &&
          p_EVP_DecryptUpdate(ctx, NULL, &n, a.addr, aadLen) == 1 &&
          p_EVP_DecryptUpdate(ctx, out, &n, in, dataLen) == 1 &&
          p_EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, in + dataLen) == 1) {
        result = p_EVP_DecryptFinal_ex(ctx, out + n, &fin) == 1 ? n + fin : -2;
        if (result == -2) {
          memset(out, 0, (size_t)dataLen); /* never hand out unauthenticated plaintext */
        }
      }
    }
  }
  unpin(env, &d, 0);
  unpin(env, &s, JNI_ABORT);
  unpin(env, &a, JNI_ABORT);
  p_EVP_CIPHER_CTX_free(ctx);
  memset(k, 0, sizeof k);
  return result;
}

/* scrypt(password, salt, n, r, p, out): 0, or -1 (e.g. parameters past libcrypto's limits). */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_repo_crypto_NativeCrypto_scrypt(
    JNIEnv *env, jclass cls, jbyteArray password, jbyteArray salt, jlong n, jint r, jint p,
    jbyteArray out) {
  (void)cls;
  jsize pl = (*env)->GetArrayLength(env, password);
  jsize sl = (*env)->GetArrayLength(env, salt);
  jsize ol = (*env)->GetArrayLength(env, out);
  jbyte *pw = (*env)->GetByteArrayElements(env, password, NULL);
  jbyte *sa = (*env)->GetByteArrayElements(env, salt, NULL);
  jbyte *o = (*env)->GetByteArrayElements(env, out, NULL);
  int ok = -1;
  if (pw != NULL && sa != NULL && o != NULL) {
    /* memory: 128 * r * (n + p + 2) bytes; allow what the parameters need */
    uint64_t maxmem = 128ULL * (uint64_t)r * ((uint64_t)n + (uint64_t)p + 2) + (1ULL << 20);
    ok = p_EVP_PBE_scrypt((const char *)pw, (size_t)pl, (unsigned char *)sa, (size_t)sl,
                          (uint64_t)n, (uint64_t)r, (uint64_t)p, maxmem, (unsigned char *)o,
                          (size_t)ol) == 1
             ? 0
             : -1;
  }
  if (o != NULL) {
    (*env)->ReleaseByteArrayElements(env, out, o, ok == 0 ? 0 : JNI_ABORT);
  }
  if (sa != NULL) {
    (*env)->ReleaseByteArrayElements(env, salt, sa, JNI_ABORT);
  }
  if (pw != NULL) {
    (*env)->ReleaseByteArrayElements(env, password, pw, JNI_ABORT);
  }
  return ok;
}

/*
 * blake3SimdDegree(): how many inputs the BLAKE3 code picked at run time hashes at once: 16
 * (AVX-512), 8 (AVX2), 4 (SSE4.1 or SSE2) or 1 (portable C). For granule --version, so that a
 * benchmark's machine says what its hashing ran on.
 */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_repo_crypto_NativeCrypto_blake3SimdDegree(
    JNIEnv *env, jclass cls) {
  (void)env;
  (void)cls;
  return (jint)blake3_simd_degree();
}

/*
 * blake3(key, data, off, len, out32): BLAKE3 of len bytes at off of data, a byte[] or a direct
 * buffer; its keyed_hash mode under key (32 bytes) when key is not null. The vendored reference C
 * implementation (blake3/, 1.3.1) picks SSE2, SSE4.1, AVX2 or AVX-512 at run time. Needs no
 * libcrypto. 0, or -1 on failure.
 */
JNIEXPORT jint JNICALL Java_io_granule_engine_internal_repo_crypto_NativeCrypto_blake3(
    JNIEnv *env, jclass cls, jbyteArray key, jobject data, jint off, jint len, jbyteArray out) {
  (void)cls;
  unsigned char k[BLAKE3_KEY_LEN], md[BLAKE3_OUT_LEN];
  blake3_hasher h;
  if (key != NULL) {
    if ((*env)->GetArrayLength(env, key) != BLAKE3_KEY_LEN) {
      return -1;
    }
    (*env)->GetByteArrayRegion(env, key, 0, BLAKE3_KEY_LEN, (jbyte *)k);
    blake3_hasher_init_keyed(&h, k);
    memset(k, 0, sizeof k);
  } else {
    blake3_hasher_init(&h);
  }
  region d;
  lookup(env, &d, data);
  if (!pin(env, &d)) {
    memset(&h, 0, sizeof h);
    return -1;
  }
  blake3_hasher_update(&h, d.addr + off, (size_t)len);
  unpin(env, &d, JNI_ABORT);
  blake3_hasher_finalize(&h, md, sizeof md);
  memset(&h, 0, sizeof h);
  (*env)->SetByteArrayRegion(env, out, 0, BLAKE3_OUT_LEN, (const jbyte *)md);
  return 0;
}
