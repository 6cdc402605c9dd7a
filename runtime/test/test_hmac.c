#include "lb_test.h"
#include "lowbit/lb_hmac.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t rnd(void) { return lb_test_xorshift(&rng_state); }

static void to_hex(const uint8_t *p, size_t n, char *out) {
  lb_hex_encode(p, n, out);
  out[2 * n] = 0;
}

/* HMAC with a key of `klen` copies of byte kb (or the given key), compared
 * with the RFC's hex. */
static int mac_hex_is(const uint8_t *key, size_t klen, const void *msg, size_t n,
                      const char *want) {
  lb_hmac *h = lb_hmac_new(key, klen);
  if (h == NULL) return 0;
  uint8_t out[32];
  char hex[65];
  int rc = lb_hmac_sha256(h, msg, n, out);
  lb_hmac_free(h);
  to_hex(out, 32, hex);
  if (rc != 0 || strcmp(hex, want) != 0) {
    fprintf(stderr, "  got %s\n  want %s\n", hex, want);
    return 0;
  }
  return 1;
}

/* ---- RFC 4231 ----------------------------------------------------------- */

static void test_rfc4231_case1(void) {
  uint8_t key[20];
  memset(key, 0x0b, sizeof key);
  LB_CHECK(mac_hex_is(key, 20, "Hi There", 8,
                      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));
}

static void test_rfc4231_case2_short_key(void) {
  LB_CHECK(mac_hex_is((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28,
                      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
}

static void test_rfc4231_case3(void) {
  uint8_t key[20], data[50];
  memset(key, 0xaa, sizeof key);
  memset(data, 0xdd, sizeof data);
  LB_CHECK(mac_hex_is(key, 20, data, 50,
                      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"));
}

static void test_rfc4231_case4(void) {
  uint8_t key[25], data[50];
  for (int i = 0; i < 25; i++) key[i] = (uint8_t)(i + 1);
  memset(data, 0xcd, sizeof data);
  LB_CHECK(mac_hex_is(key, 25, data, 50,
                      "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"));
}

static void test_rfc4231_case6_long_key(void) {
  uint8_t key[131];
  memset(key, 0xaa, sizeof key);
  const char *m = "Test Using Larger Than Block-Size Key - Hash Key First";
  LB_CHECK(mac_hex_is(key, 131, m, strlen(m),
                      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
}

static void test_rfc4231_case7_long_key_long_data(void) {
  uint8_t key[131];
  memset(key, 0xaa, sizeof key);
  const char *m = "This is a test using a larger than block-size key and a larger "
                  "than block-size data. The key needs to be hashed before being "
                  "used by the HMAC algorithm.";
  LB_CHECK(mac_hex_is(key, 131, m, strlen(m),
                      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"));
}

/* ---- against OpenSSL's HMAC() ------------------------------------------- */

static void test_matches_openssl_for_many_key_and_message_lengths(void) {
  uint8_t key[200], msg[300];
  for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)rnd();
  for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)rnd();
  static const size_t klens[] = {1, 31, 32, 63, 64, 65, 128, 200};
  for (size_t a = 0; a < sizeof klens / sizeof klens[0]; a++) {
    lb_hmac *h = lb_hmac_new(key, klens[a]);
    LB_CHECK(h != NULL);
    if (h == NULL) return;
    for (size_t n = 0; n <= sizeof msg; n += 11) {
      uint8_t got[32], want[32];
      unsigned wl = 0;
      HMAC(EVP_sha256(), key, (int)klens[a], msg, n, want, &wl);
      LB_CHECK_EQ(lb_hmac_sha256(h, msg, n, got), 0);
      LB_CHECK(wl == 32 && memcmp(got, want, 32) == 0);
    }
    lb_hmac_free(h);
  }
}

static void test_empty_message(void) {
  lb_hmac *h = lb_hmac_new((const uint8_t *)"key", 3);
  uint8_t a[32], b[32], want[32];
  unsigned wl = 0;
  HMAC(EVP_sha256(), "key", 3, (const uint8_t *)"", 0, want, &wl);
  LB_CHECK_EQ(lb_hmac_sha256(h, NULL, 0, a), 0);
  LB_CHECK_EQ(lb_hmac_sha256_parts(h, NULL, 0, b), 0);
  LB_CHECK(memcmp(a, want, 32) == 0);
  LB_CHECK(memcmp(b, want, 32) == 0);
  char hex[65];
  to_hex(a, 32, hex);
  LB_CHECK(strcmp(hex, "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0") == 0);
  lb_hmac_free(h);
}

static void test_state_is_reusable(void) {
  /* Wikipedia's example, computed twice with one state and interleaved
   * with another message: the precomputed key state is never consumed. */
  lb_hmac *h = lb_hmac_new((const uint8_t *)"key", 3);
  const char *m = "The quick brown fox jumps over the lazy dog";
  uint8_t out[32];
  char hex[65];
  for (int i = 0; i < 3; i++) {
    LB_CHECK_EQ(lb_hmac_sha256(h, m, strlen(m), out), 0);
    to_hex(out, 32, hex);
    LB_CHECK(strcmp(hex, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8") == 0);
    LB_CHECK_EQ(lb_hmac_sha256(h, "other", 5, out), 0);
  }
  lb_hmac_free(h);
}

static void test_parts_equal_concatenation(void) {
  lb_hmac *h = lb_hmac_new((const uint8_t *)"secret", 6);
  const char *msg = "cdn.example.com:/files/report.pdf:1747123456:format=pdf&x=1";
  size_t n = strlen(msg);
  uint8_t want[32], got[32];
  LB_CHECK_EQ(lb_hmac_sha256(h, msg, n, want), 0);
  /* Every split into three parts (including empty ones). */
  for (size_t i = 0; i <= n; i++) {
    for (size_t j = i; j <= n; j += 3) {
      lb_hmac_part parts[3] = {
        {(const uint8_t *)msg, i},
        {(const uint8_t *)msg + i, j - i},
        {(const uint8_t *)msg + j, n - j},
      };
      LB_CHECK_EQ(lb_hmac_sha256_parts(h, parts, 3, got), 0);
      LB_CHECK(memcmp(got, want, 32) == 0);
    }
  }
  /* The urlsign shape: host ":" path ":" exp ":" query, with NULL empties. */
  lb_hmac_part us[8] = {
    {(const uint8_t *)"cdn.example.com", 15}, {(const uint8_t *)":", 1},
    {(const uint8_t *)"/files/report.pdf", 17}, {(const uint8_t *)":", 1},
    {(const uint8_t *)"1747123456", 10}, {(const uint8_t *)":", 1},
    {(const uint8_t *)"format=pdf&x=1", 14}, {NULL, 0},
  };
  LB_CHECK_EQ(lb_hmac_sha256_parts(h, us, 8, got), 0);
  LB_CHECK(memcmp(got, want, 32) == 0);
  lb_hmac_free(h);
}

/* ---- verify ------------------------------------------------------------- */

static void test_verify_hex(void) {
  lb_hmac *h = lb_hmac_new((const uint8_t *)"secret", 6);
  lb_hmac_part parts[2] = {{(const uint8_t *)"host:/path:", 11},
                           {(const uint8_t *)"123:q=1", 7}};
  uint8_t mac[32];
  char sig[65];
  LB_CHECK_EQ(lb_hmac_sha256_parts(h, parts, 2, mac), 0);
  to_hex(mac, 32, sig);

  LB_CHECK_EQ(lb_hmac_verify_hex(h, parts, 2, sig, 64), 1);

  /* Tampered: each position changed to another hex digit. */
  for (int i = 0; i < 64; i++) {
    char t[64];
    memcpy(t, sig, 64);
    t[i] = t[i] == '0' ? '1' : '0';
    LB_CHECK_EQ(lb_hmac_verify_hex(h, parts, 2, t, 64), 0);
  }
  /* Tampered message, same signature. */
  lb_hmac_part other[2] = {{(const uint8_t *)"host:/path:", 11},
                           {(const uint8_t *)"124:q=1", 7}};
  LB_CHECK_EQ(lb_hmac_verify_hex(h, other, 2, sig, 64), 0);
  /* Wrong lengths: short, long, empty, NULL. */
  LB_CHECK_EQ(lb_hmac_verify_hex(h, parts, 2, sig, 63), 0);
  char longer[66];
  memcpy(longer, sig, 64);
  longer[64] = '0';
  LB_CHECK_EQ(lb_hmac_verify_hex(h, parts, 2, longer, 65), 0);
  LB_CHECK_EQ(lb_hmac_verify_hex(h, parts, 2, "", 0), 0);
  LB_CHECK_EQ(lb_hmac_verify_hex(h, parts, 2, NULL, 64), 0);
  /* Non-hex characters. */
  char bad[64];
  memcpy(bad, sig, 64);
  bad[10] = 'g';
  LB_CHECK_EQ(lb_hmac_verify_hex(h, parts, 2, bad, 64), 0);
  memcpy(bad, sig, 64);
  bad[63] = ' ';
  LB_CHECK_EQ(lb_hmac_verify_hex(h, parts, 2, bad, 64), 0);
  /* Upper-case hex is not accepted (documented: lower-case only). */
  char upper[64];
  int has_letter = 0;
  for (int i = 0; i < 64; i++) {
    upper[i] = sig[i] >= 'a' && sig[i] <= 'f' ? (char)(sig[i] - 32) : sig[i];
    has_letter |= sig[i] >= 'a';
  }
  if (has_letter) LB_CHECK_EQ(lb_hmac_verify_hex(h, parts, 2, upper, 64), 0);
  lb_hmac_free(h);
}

static void test_argument_errors(void) {
  LB_CHECK(lb_hmac_new((const uint8_t *)"", 0) == NULL);    /* empty key */
  LB_CHECK(lb_hmac_new(NULL, 5) == NULL);
  lb_hmac_free(NULL);
  uint8_t out[32];
  LB_CHECK_EQ(lb_hmac_sha256(NULL, "x", 1, out), LB_EINVAL);
  lb_hmac *h = lb_hmac_new((const uint8_t *)"k", 1);
  LB_CHECK_EQ(lb_hmac_sha256(h, NULL, 1, out), LB_EINVAL);
  LB_CHECK_EQ(lb_hmac_sha256_parts(h, NULL, 1, out), LB_EINVAL);
  lb_hmac_part p[1] = {{NULL, 3}};
  LB_CHECK_EQ(lb_hmac_sha256_parts(h, p, 1, out), LB_EINVAL);
  LB_CHECK_EQ(lb_hmac_verify_hex(h, p, 1, "00", 2), LB_EINVAL);
  LB_CHECK_EQ(lb_hmac_verify_hex(NULL, NULL, 0, "00", 2), LB_EINVAL);
  lb_hmac_free(h);
}

/* ---- hex, digests -------------------------------------------------------- */

static void test_hex_encode_every_byte(void) {
  uint8_t all[256];
  char hex[513], want[3];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
  LB_CHECK_EQ(lb_hex_encode(all, 256, hex), 512);
  for (int i = 0; i < 256; i++) {
    snprintf(want, sizeof want, "%02x", i);
    LB_CHECK(hex[2 * i] == want[0] && hex[2 * i + 1] == want[1]);
  }
  LB_CHECK_EQ(lb_hex_encode(NULL, 0, hex), 0);
}

static void test_sha256_and_sha1(void) {
  uint8_t d[32];
  char hex[65];
  LB_CHECK_EQ(lb_sha256("abc", 3, d), 0);
  to_hex(d, 32, hex);
  LB_CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
  LB_CHECK_EQ(lb_sha256(NULL, 0, d), 0);
  to_hex(d, 32, hex);
  LB_CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
  LB_CHECK_EQ(lb_sha1("abc", 3, d), 0);
  to_hex(d, 20, hex);
  LB_CHECK(strcmp(hex, "a9993e364706816aba3e25717850c26c9cd0d89d") == 0);
  LB_CHECK_EQ(lb_sha1(NULL, 0, d), 0);
  to_hex(d, 20, hex);
  LB_CHECK(strcmp(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709") == 0);
  /* WebSocket accept key (RFC 6455 section 1.3) is SHA-1 based. */
  const char *k = "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  LB_CHECK_EQ(lb_sha1(k, strlen(k), d), 0);
  to_hex(d, 20, hex);
  LB_CHECK(strcmp(hex, "b37a4f2cc0624f1690f64606cf385945b2bec4ea") == 0);
  LB_CHECK_EQ(lb_sha256(NULL, 1, d), LB_EINVAL);
}

int main(void) {
  LB_RUN(test_rfc4231_case1);
  LB_RUN(test_rfc4231_case2_short_key);
  LB_RUN(test_rfc4231_case3);
  LB_RUN(test_rfc4231_case4);
  LB_RUN(test_rfc4231_case6_long_key);
  LB_RUN(test_rfc4231_case7_long_key_long_data);
  LB_RUN(test_matches_openssl_for_many_key_and_message_lengths);
  LB_RUN(test_empty_message);
  LB_RUN(test_state_is_reusable);
  LB_RUN(test_parts_equal_concatenation);
  LB_RUN(test_verify_hex);
  LB_RUN(test_argument_errors);
  LB_RUN(test_hex_encode_every_byte);
  LB_RUN(test_sha256_and_sha1);
  return LB_DONE();
}
