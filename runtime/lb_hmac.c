/*
 * lb_hmac.c: HMAC-SHA256 (RFC 2104, FIPS 198-1) on OpenSSL's SHA-256.
 *
 * Why the low-level SHA256_CTX API and not EVP_MAC: an HMAC of a short
 * message is three SHA-256 compressions, and everything around them is
 * overhead. With SHA256_CTX the precomputed inner and outer states are plain
 * structs copied onto the stack per call: no allocation, no provider
 * dispatch, no locking, and concurrent use of one lb_hmac is safe because it
 * is never written after lb_hmac_new. EVP_MAC_CTX_dup from a keyed template
 * allocates and goes through the provider on every call; bench/c/bench_hmac.c
 * measures both (and the naive HMAC() one-shot) on this machine.
 *
 * The SHA256_* functions are marked deprecated in OpenSSL 3.0 but remain
 * part of its API (they call the same assembly, SHA-NI where present).
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "lowbit/lb_hmac.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 64 /* SHA-256 block size: the HMAC key is padded to it */

struct lb_hmac {
  SHA256_CTX inner; /* state after absorbing K ^ ipad */
  SHA256_CTX outer; /* state after absorbing K ^ opad */
};

lb_hmac *lb_hmac_new(const uint8_t *key, size_t len) {
  if (key == NULL || len == 0) return NULL;
  lb_hmac *h = calloc(1, sizeof *h);
  if (h == NULL) return NULL;
  uint8_t k[BLOCK], pad[BLOCK];
  memset(k, 0, sizeof k);
  /* RFC 2104 section 2: keys longer than the block are hashed first. */
  if (len > BLOCK) {
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, key, len);
    SHA256_Final(k, &c);
    OPENSSL_cleanse(&c, sizeof c);
  } else {
    memcpy(k, key, len);
  }
  for (int i = 0; i < BLOCK; i++) pad[i] = k[i] ^ 0x36;
  int ok = SHA256_Init(&h->inner) && SHA256_Update(&h->inner, pad, BLOCK);
  for (int i = 0; i < BLOCK; i++) pad[i] = k[i] ^ 0x5c;
  ok = ok && SHA256_Init(&h->outer) && SHA256_Update(&h->outer, pad, BLOCK);
  OPENSSL_cleanse(k, sizeof k);
  OPENSSL_cleanse(pad, sizeof pad);
  if (!ok) {
    lb_hmac_free(h);
    return NULL;
  }
  return h;
}

void lb_hmac_free(lb_hmac *h) {
  if (h == NULL) return;
  OPENSSL_cleanse(h, sizeof *h);
  free(h);
}

/* Finishes HMAC from an inner context that has absorbed the message. */
static void finish(const lb_hmac *h, SHA256_CTX *in, uint8_t out[32]) {
  uint8_t ih[SHA256_DIGEST_LENGTH];
  SHA256_Final(ih, in);
  SHA256_CTX o = h->outer;
  SHA256_Update(&o, ih, sizeof ih);
  SHA256_Final(out, &o);
  OPENSSL_cleanse(ih, sizeof ih);
  OPENSSL_cleanse(&o, sizeof o);
  OPENSSL_cleanse(in, sizeof *in);
}

int lb_hmac_sha256(const lb_hmac *h, const void *msg, size_t n, uint8_t out[32]) {
  if (h == NULL || (msg == NULL && n > 0)) return LB_EINVAL;
  SHA256_CTX in = h->inner;
  if (n) SHA256_Update(&in, msg, n);
  finish(h, &in, out);
  return 0;
}

int lb_hmac_sha256_parts(const lb_hmac *h, const lb_hmac_part *parts,
                         size_t nparts, uint8_t out[32]) {
  if (h == NULL || (parts == NULL && nparts > 0)) return LB_EINVAL;
  for (size_t i = 0; i < nparts; i++)
    if (parts[i].ptr == NULL && parts[i].len > 0) return LB_EINVAL;
  SHA256_CTX in = h->inner;
  for (size_t i = 0; i < nparts; i++)
    if (parts[i].len) SHA256_Update(&in, parts[i].ptr, parts[i].len);
  finish(h, &in, out);
  return 0;
}

size_t lb_hex_encode(const uint8_t *src, size_t n, char *dst) {
  for (size_t i = 0; i < n; i++) {
    for (int j = 0; j < 2; j++) {
      unsigned v = j == 0 ? src[i] >> 4 : src[i] & 0xF;
      /* v + '0' for 0..9, v - 10 + 'a' for 10..15, without a branch or a
       * lookup indexed by v: (9 - v) >> 8 is all ones exactly when v > 9
       * (unsigned wrap-around), selecting the 'a' - '0' - 10 = 39 offset. */
      unsigned gt9 = ((9u - v) >> 8) & 1u;
      dst[2 * i + (size_t)j] = (char)(v + '0' + (gt9 * 39u));
    }
  }
  return 2 * n;
}

int lb_hmac_verify_hex(const lb_hmac *h, const lb_hmac_part *parts,
                       size_t nparts, const char *sig_hex, size_t sig_len) {
  uint8_t mac[32];
  char want[64];
  int rc = lb_hmac_sha256_parts(h, parts, nparts, mac);
  if (rc < 0) return rc;
  /* The expected length is public (it is in the docs); only the content
   * comparison must be constant-time. */
  if (sig_hex == NULL || sig_len != sizeof want) {
    OPENSSL_cleanse(mac, sizeof mac);
    return 0;
  }
  lb_hex_encode(mac, sizeof mac, want);
  /* Comparing hex text instead of decoded bytes means a non-hex or
   * upper-case digit is just another mismatching byte: no validation
   * branch depends on the attacker's content. */
  int eq = lb_ct_equal(want, sig_hex, sizeof want);
  OPENSSL_cleanse(mac, sizeof mac);
  OPENSSL_cleanse(want, sizeof want);
  return eq;
}

int lb_sha256(const void *p, size_t n, uint8_t out[32]) {
  if (p == NULL && n > 0) return LB_EINVAL;
  SHA256_CTX c;
  if (!SHA256_Init(&c)) return LB_EINTERNAL;
  if (n && !SHA256_Update(&c, p, n)) return LB_EINTERNAL;
  if (!SHA256_Final(out, &c)) return LB_EINTERNAL;
  return 0;
}

int lb_sha1(const void *p, size_t n, uint8_t out[20]) {
  if (p == NULL && n > 0) return LB_EINVAL;
  SHA_CTX c;
  if (!SHA1_Init(&c)) return LB_EINTERNAL;
  if (n && !SHA1_Update(&c, p, n)) return LB_EINTERNAL;
  if (!SHA1_Final(out, &c)) return LB_EINTERNAL;
  return 0;
}
