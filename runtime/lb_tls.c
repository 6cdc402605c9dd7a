/*
 * lb_tls.c: TLS over OpenSSL 3 with memory BIOs.
 *
 * Each connection owns an SSL object whose BIO (one for both ways) works
 * on two byte queues of its own (a BIO method of this file, cheaper than
 * memory BIOs: OpenSSL asks its BIOs a dozen questions per record):
 * lb_tls_feed appends to the input queue, which the BIO's reads drain, and
 * its writes append to the output queue, which lb_tls_take_out drains. An empty input queue reports
 * "retry" (not EOF), so OpenSSL turns "no more input" into
 * SSL_ERROR_WANT_READ, which becomes LB_EAGAIN here. Writes into the output
 * queue always succeed (it grows), so SSL_ERROR_WANT_WRITE never happens
 * and SSL_write never writes part of its input.
 *
 * OpenSSL's error queue is per thread. Clearing it costs hundreds of
 * instructions (it walks all its slots), so the per-record calls (read,
 * write, feed, take_out) do not clear it first: every lb_tls call leaves it
 * empty after a failure, and a stale entry left by unrelated code cannot
 * turn "wants more input" into a failure because that case is recognized
 * by the SSL object's state (SSL_want) before the queue is looked at.
 * Context setup, handshakes and shutdowns clear it before each call, by
 * clear_errors: ERR_clear_error only when ERR_peek_error finds an entry
 * (clearing an empty queue walks it all the same). A failure's message is
 * copied into the object right away.
 */
#include "lowbit/lb_tls.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* One SNI registry entry: an exact lower-case name, or for a wildcard
 * "*.example.com" the suffix ".example.com". */
typedef struct lb__sni {
  char *name;
  size_t len;
  int wildcard;
  lb_tls_ctx *child;
} lb__sni;

struct lb_tls_ctx {
  SSL_CTX *ssl;
  int is_server;
  int refs;
  int verify_mode;
  int ca_loaded;     /* a CA was loaded: the system store is not implied */
  int system_ca;     /* the system store has been added */
  int shared_store;  /* the trust store is the process-wide system one */
  uint8_t *alpn;     /* wire format; servers select from it */
  size_t alpn_len;
  lb__sni *sni;
  size_t nsni, capsni;
  char err[LB_TLS_ERROR_MAX];
};

/* A byte queue: bytes [off, len) of buf are queued. */
typedef struct lb__queue {
  uint8_t *buf;
  size_t off, len, cap;
} lb__queue;

struct lb_tls {
  SSL *ssl;
  lb__queue in, out; /* ciphertext from / to the peer */
  lb_tls_ctx *ctx;   /* the context the connection was made on (a reference) */
  lb_tls_ctx *active;/* the SNI-chosen context, or NULL (no reference: ctx's
                        registry keeps it alive) */
  int is_server;
  int done;          /* handshake complete */
  int failed;        /* sticky LB_ETLS / LB_ETLSVERIFY after a fatal error */
  int peer_closed;   /* close_notify received */
  int sent_shutdown; /* close_notify queued */
  /* Record framing of the input, tracked here because OpenSSL does not
   * say whether it holds part of a record (RFC 8446 5.1: 5-byte header
   * whose last two bytes are the body length). */
  uint8_t hdr[5];
  size_t hdr_have;
  size_t body_left;
  char *server_name;
  char err[LB_TLS_ERROR_MAX];
};

/* ---- helpers ------------------------------------------------------------- */

static void copy_msg(char *dst, const char *a, const char *b) {
  if (b != NULL && b[0] != '\0')
    snprintf(dst, LB_TLS_ERROR_MAX, "%s: %s", a, b);
  else
    snprintf(dst, LB_TLS_ERROR_MAX, "%s", a);
}

/* The reason of the oldest queued OpenSSL error (the root cause: later
 * entries are the callers' "while doing X" layers), or fallback. Clears the
 * queue. */
static const char *queue_reason(const char *fallback, unsigned long *code) {
  unsigned long e = ERR_get_error();
  const char *r = NULL;
  if (code) *code = e;
  if (e != 0) r = ERR_reason_error_string(e);
  ERR_clear_error();
  return r != NULL ? r : fallback;
}

/* Empties OpenSSL's error queue before a call whose failure is read from
 * it. ERR_clear_error walks all the queue's slots (some 800 instructions)
 * even when the queue is empty, which it nearly always is: look first. */
static void clear_errors(void) {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

static int ctx_fail(lb_tls_ctx *c, const char *what) {
  copy_msg(c->err, what, queue_reason("failed", NULL));
  return LB_ECERT;
}

/* Encrypted keys are not supported: never prompt on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf; (void)size; (void)rwflag; (void)u;
  return 0;
}

static ptrdiff_t copy_out(char *dst, size_t cap, const char *s, size_t n, int truncate) {
  if (dst == NULL || cap == 0) return n == 0 ? 0 : LB_ENOSPACE;
  if (n >= cap) {
    if (!truncate) return LB_ENOSPACE;
    n = cap - 1;
  }
  memcpy(dst, s, n);
  dst[n] = '\0';
  return (ptrdiff_t)n;
}

/* ---- the system CA store, loaded once per process ------------------------ */

/* Loading the system store parses the whole CA bundle (a few hundred
 * certificates, tens of ms): client contexts that trust only the system
 * store share one X509_STORE instead (reference counted by OpenSSL), loaded
 * on first use and again only when SSL_CERT_FILE or SSL_CERT_DIR change. */
static pthread_mutex_t sys_lock = PTHREAD_MUTEX_INITIALIZER;
static X509_STORE *sys_store;
static char *sys_file_env, *sys_dir_env; /* their values when it was loaded */
static long sys_loads;

static int same_env(const char *cached, const char *now) {
  if (cached == NULL || now == NULL) return cached == now;
  return strcmp(cached, now) == 0;
}

static char *dup_env(const char *s, int *fail) {
  if (s == NULL) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d == NULL) { *fail = 1; return NULL; }
  memcpy(d, s, n);
  return d;
}

/* The shared system store with a reference for the caller, or NULL. */
static X509_STORE *system_store_locked(void) {
  const char *fe = getenv(X509_get_default_cert_file_env());
  const char *de = getenv(X509_get_default_cert_dir_env());
  if (sys_store != NULL && same_env(sys_file_env, fe) && same_env(sys_dir_env, de))
    return X509_STORE_up_ref(sys_store) == 1 ? sys_store : NULL;
  int fail = 0;
  char *f = dup_env(fe, &fail), *d = dup_env(de, &fail);
  X509_STORE *st = fail ? NULL : X509_STORE_new();
  if (st == NULL || X509_STORE_set_default_paths(st) != 1) {
    X509_STORE_free(st);
    free(f);
    free(d);
    return NULL;
  }
  X509_STORE_free(sys_store); /* contexts using the old one keep their reference */
  free(sys_file_env);
  free(sys_dir_env);
  sys_store = st;
  sys_file_env = f;
  sys_dir_env = d;
  sys_loads++;
  return X509_STORE_up_ref(st) == 1 ? st : NULL;
}

static X509_STORE *system_store(void) {
  pthread_mutex_lock(&sys_lock);
  X509_STORE *st = system_store_locked();
  pthread_mutex_unlock(&sys_lock);
  return st;
}

long lb_tls_system_store_loads(void) {
  pthread_mutex_lock(&sys_lock);
  long n = sys_loads;
  pthread_mutex_unlock(&sys_lock);
  return n;
}

/* ---- SNI and ALPN callbacks (run inside SSL_do_handshake) ------------------ */

/* The connection of an SSL object, from its BIO (no ex_data slot per
 * connection: SSL_set_app_data allocates one, and SSL_free frees it). */
static void *conn_of(SSL *ssl) {
  BIO *b = SSL_get_rbio(ssl);
  return b != NULL ? BIO_get_data(b) : NULL;
}

static lb_tls_ctx *sni_lookup(const lb_tls_ctx *c, const char *name) {
  char low[256];
  size_t n = strlen(name);
  if (n == 0 || n >= sizeof low) return NULL;
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    low[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
  }
  low[n] = '\0';
  for (size_t i = 0; i < c->nsni; i++)
    if (!c->sni[i].wildcard && c->sni[i].len == n && memcmp(c->sni[i].name, low, n) == 0)
      return c->sni[i].child;
  /* A wildcard covers exactly one label: compare what follows the first
   * dot, which must not be the first character. */
  const char *dot = strchr(low, '.');
  if (dot == NULL || dot == low) return NULL;
  size_t sl = n - (size_t)(dot - low);
  for (size_t i = 0; i < c->nsni; i++)
    if (c->sni[i].wildcard && c->sni[i].len == sl && memcmp(c->sni[i].name, dot, sl) == 0)
      return c->sni[i].child;
  return NULL;
}

static int on_servername(SSL *ssl, int *al, void *arg) {
  (void)al; (void)arg;
  lb_tls *t = conn_of(ssl);
  if (t == NULL || t->ctx->nsni == 0) return SSL_TLSEXT_ERR_OK;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == NULL) return SSL_TLSEXT_ERR_OK;
  lb_tls_ctx *child = sni_lookup(t->ctx, name);
  if (child != NULL && SSL_set_SSL_CTX(ssl, child->ssl) != NULL) t->active = child;
  return SSL_TLSEXT_ERR_OK;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  (void)arg;
  lb_tls *t = conn_of(ssl);
  if (t == NULL) return SSL_TLSEXT_ERR_NOACK;
  const lb_tls_ctx *c = (t->active != NULL && t->active->alpn_len > 0) ? t->active : t->ctx;
  if (c->alpn_len == 0) return SSL_TLSEXT_ERR_NOACK;
  /* Server preference: the first of our names that the client offers. */
  for (size_t i = 0; i < c->alpn_len; i += 1 + (size_t)c->alpn[i]) {
    size_t sl = c->alpn[i];
    for (unsigned int j = 0; j < inlen;) {
      unsigned int cl = in[j];
      if (cl == 0 || j + 1 + cl > inlen) break; /* malformed client list */
      if (cl == sl && memcmp(in + j + 1, c->alpn + i + 1, sl) == 0) {
        *out = in + j + 1;
        *outlen = (unsigned char)cl;
        return SSL_TLSEXT_ERR_OK;
      }
      j += 1 + cl;
    }
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol, RFC 7301 3.2 */
}

/* ---- contexts ---------------------------------------------------------- */

#define LB_TLS12_SERVER_CIPHERS                                                   \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                    \
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                    \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

#define LB_TLS13_SERVER_SUITES "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"

lb_tls_ctx *lb_tls_ctx_new(int is_server) {
  lb_tls_ctx *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->ssl = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
  if (c->ssl == NULL) { ERR_clear_error(); free(c); return NULL; }
  c->is_server = is_server ? 1 : 0;
  c->refs = 1;
  SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
  SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_default_passwd_cb(c->ssl, no_passphrase);
  if (c->is_server) {
    static const unsigned char sid[] = "lowbit";
    SSL_CTX_set_session_id_context(c->ssl, sid, sizeof sid - 1);
    SSL_CTX_set_tlsext_servername_callback(c->ssl, on_servername);
    SSL_CTX_set_alpn_select_cb(c->ssl, on_alpn, NULL);
    SSL_CTX_set_num_tickets(c->ssl, 1);
    /* TLS 1.2: forward secrecy and AEAD only, the server's order (a client
     * offering AES128-SHA first still gets ECDHE-GCM). TLS 1.3 suites are
     * all AEAD with (EC)DHE; the server's order is Go's (AES-128-GCM
     * first: as strong in practice, and cheaper per handshake and byte). */
    SSL_CTX_set_options(c->ssl, SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(c->ssl, LB_TLS12_SERVER_CIPHERS) != 1 ||
        SSL_CTX_set_ciphersuites(c->ssl, LB_TLS13_SERVER_SUITES) != 1) {
      ERR_clear_error();
      SSL_CTX_free(c->ssl);
      free(c);
      return NULL;
    }
    c->verify_mode = LB_TLS_VERIFY_NONE;
    SSL_CTX_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
  } else {
    c->verify_mode = LB_TLS_VERIFY_PEER;
    SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
  }
  return c;
}

void lb_tls_ctx_free(lb_tls_ctx *c) {
  if (c == NULL || --c->refs > 0) return;
  for (size_t i = 0; i < c->nsni; i++) {
    free(c->sni[i].name);
    lb_tls_ctx_free(c->sni[i].child);
  }
  free(c->sni);
  free(c->alpn);
  SSL_CTX_free(c->ssl);
  free(c);
}

int lb_tls_ctx_is_server(const lb_tls_ctx *c) { return c != NULL && c->is_server; }

static int check_key(lb_tls_ctx *c) {
  if (SSL_CTX_check_private_key(c->ssl) != 1) return ctx_fail(c, "private key does not match the certificate");
  return 0;
}

int lb_tls_ctx_use_cert_file(lb_tls_ctx *c, const char *cert_file, const char *key_file) {
  if (c == NULL || cert_file == NULL || key_file == NULL) return LB_EINVAL;
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(c->ssl, cert_file) != 1) return ctx_fail(c, "certificate file");
  if (SSL_CTX_use_PrivateKey_file(c->ssl, key_file, SSL_FILETYPE_PEM) != 1) return ctx_fail(c, "key file");
  return check_key(c);
}

static BIO *mem_bio(const char *p, size_t n) {
  if (n > INT_MAX) return NULL;
  return BIO_new_mem_buf(p, (int)n);
}

/* Reads every certificate left in b; calls fn for each (which takes
 * ownership). Returns the count, or -1 after a malformed one. */
static int each_cert(BIO *b, lb_tls_ctx *c, int (*fn)(lb_tls_ctx *, X509 *)) {
  int count = 0;
  for (;;) {
    X509 *x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
    if (x == NULL) {
      unsigned long e = ERR_peek_last_error();
      if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error(); /* the normal end: no more PEM blocks */
        return count;
      }
      return -1;
    }
    if (fn(c, x) != 1) return -1;
    count++;
  }
}

static int add_chain_cert(lb_tls_ctx *c, X509 *x) {
  if (SSL_CTX_add0_chain_cert(c->ssl, x) != 1) { X509_free(x); return 0; }
  return 1;
}

int lb_tls_ctx_use_cert_pem(lb_tls_ctx *c, const char *cert_pem, size_t cert_len,
                            const char *key_pem, size_t key_len) {
  if (c == NULL || cert_pem == NULL || key_pem == NULL) return LB_EINVAL;
  ERR_clear_error();
  BIO *b = mem_bio(cert_pem, cert_len);
  if (b == NULL) return LB_ENOMEM;
  X509 *leaf = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
  if (leaf == NULL) { BIO_free(b); return ctx_fail(c, "certificate"); }
  int ok = SSL_CTX_use_certificate(c->ssl, leaf);
  X509_free(leaf);
  if (ok != 1) { BIO_free(b); return ctx_fail(c, "certificate"); }
  SSL_CTX_clear_chain_certs(c->ssl);
  int n = each_cert(b, c, add_chain_cert);
  BIO_free(b);
  if (n < 0) return ctx_fail(c, "certificate chain");
  b = mem_bio(key_pem, key_len);
  if (b == NULL) return LB_ENOMEM;
  EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
  BIO_free(b);
  if (k == NULL) return ctx_fail(c, "private key");
  ok = SSL_CTX_use_PrivateKey(c->ssl, k);
  EVP_PKEY_free(k);
  if (ok != 1) return ctx_fail(c, "private key");
  return check_key(c);
}

int lb_tls_ctx_add_chain_pem(lb_tls_ctx *c, const char *pem, size_t len) {
  if (c == NULL || pem == NULL) return LB_EINVAL;
  ERR_clear_error();
  BIO *b = mem_bio(pem, len);
  if (b == NULL) return LB_ENOMEM;
  int n = each_cert(b, c, add_chain_cert);
  BIO_free(b);
  if (n < 0) return ctx_fail(c, "certificate chain");
  if (n == 0) { copy_msg(c->err, "certificate chain", "no certificate found"); return LB_ECERT; }
  return 0;
}

/* Before adding to the trust store: a context still on the shared system
 * store gets a store of its own (with the system CAs, which it trusted). */
static int own_store(lb_tls_ctx *c) {
  if (!c->shared_store) return 0;
  X509_STORE *st = X509_STORE_new();
  if (st == NULL || X509_STORE_set_default_paths(st) != 1) {
    X509_STORE_free(st);
    return ctx_fail(c, "system CA store");
  }
  SSL_CTX_set_cert_store(c->ssl, st); /* takes st, frees its shared reference */
  c->shared_store = 0;
  return 0;
}

int lb_tls_ctx_load_ca_file(lb_tls_ctx *c, const char *path) {
  if (c == NULL || path == NULL) return LB_EINVAL;
  ERR_clear_error();
  if (own_store(c) != 0) return LB_ECERT;
  if (SSL_CTX_load_verify_locations(c->ssl, path, NULL) != 1) return ctx_fail(c, "CA file");
  c->ca_loaded = 1;
  return 0;
}

static int add_trusted(lb_tls_ctx *c, X509 *x) {
  int ok = X509_STORE_add_cert(SSL_CTX_get_cert_store(c->ssl), x);
  X509_free(x); /* the store keeps its own reference */
  return ok;
}

int lb_tls_ctx_load_ca_pem(lb_tls_ctx *c, const char *pem, size_t len) {
  if (c == NULL || pem == NULL) return LB_EINVAL;
  ERR_clear_error();
  if (own_store(c) != 0) return LB_ECERT;
  BIO *b = mem_bio(pem, len);
  if (b == NULL) return LB_ENOMEM;
  int n = each_cert(b, c, add_trusted);
  BIO_free(b);
  if (n < 0) return ctx_fail(c, "CA certificate");
  if (n == 0) { copy_msg(c->err, "CA certificate", "no certificate found"); return LB_ECERT; }
  c->ca_loaded = 1;
  return 0;
}

int lb_tls_ctx_use_system_ca(lb_tls_ctx *c) {
  if (c == NULL) return LB_EINVAL;
  if (c->system_ca) return 0;
  ERR_clear_error();
  if (!c->ca_loaded) {
    /* Nothing else trusted yet: share the process-wide store. */
    X509_STORE *st = system_store();
    if (st == NULL) return ctx_fail(c, "system CA store");
    SSL_CTX_set_cert_store(c->ssl, st); /* takes the reference */
    c->shared_store = 1;
  } else if (SSL_CTX_set_default_verify_paths(c->ssl) != 1) {
    return ctx_fail(c, "system CA store");
  }
  c->system_ca = 1;
  return 0;
}

int lb_tls_ctx_set_verify(lb_tls_ctx *c, int mode) {
  if (c == NULL) return LB_EINVAL;
  int m;
  switch (mode) {
  case LB_TLS_VERIFY_NONE: m = SSL_VERIFY_NONE; break;
  case LB_TLS_VERIFY_PEER: m = SSL_VERIFY_PEER; break;
  case LB_TLS_VERIFY_REQUIRE:
    m = SSL_VERIFY_PEER | (c->is_server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    break;
  default: return LB_EINVAL;
  }
  SSL_CTX_set_verify(c->ssl, m, NULL);
  c->verify_mode = mode;
  return 0;
}

int lb_tls_ctx_set_alpn(lb_tls_ctx *c, const uint8_t *wire, size_t len) {
  if (c == NULL || (wire == NULL && len > 0) || len > LB_TLS_ALPN_MAX) return LB_EINVAL;
  /* Every name is 1..255 bytes and the last one ends exactly at len. */
  for (size_t i = 0; i < len; i += 1 + (size_t)wire[i])
    if (wire[i] == 0 || i + 1 + wire[i] > len) return LB_EINVAL;
  uint8_t *copy = NULL;
  if (len > 0) {
    copy = malloc(len);
    if (copy == NULL) return LB_ENOMEM;
    memcpy(copy, wire, len);
  }
  if (!c->is_server) {
    /* SSL_CTX_set_alpn_protos returns 0 on success (unlike most calls). */
    if (SSL_CTX_set_alpn_protos(c->ssl, len ? copy : NULL, (unsigned int)len) != 0) {
      free(copy);
      ERR_clear_error();
      return LB_ENOMEM;
    }
  }
  free(c->alpn);
  c->alpn = copy;
  c->alpn_len = len;
  return 0;
}

static int valid_version(int v) {
  return v == 0 || v == LB_TLS_VERSION_1_2 || v == LB_TLS_VERSION_1_3;
}

int lb_tls_ctx_set_versions(lb_tls_ctx *c, int min_version, int max_version) {
  if (c == NULL || !valid_version(min_version) || !valid_version(max_version)) return LB_EINVAL;
  if (min_version && max_version && min_version > max_version) return LB_EINVAL;
  if (SSL_CTX_set_min_proto_version(c->ssl, min_version ? min_version : TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(c->ssl, max_version) != 1) {
    ERR_clear_error();
    return LB_EINVAL;
  }
  return 0;
}

/* Host name characters, or "*." then a host name. Returns the stored form
 * (lower case; a wildcard keeps only ".rest"), or NULL. */
static char *sni_key(const char *name, int *wildcard) {
  size_t n = strlen(name);
  *wildcard = 0;
  if (n >= 2 && name[0] == '*' && name[1] == '.') { *wildcard = 1; name++; n--; }
  if (n == 0 || n > 253) return NULL;
  char *k = malloc(n + 1);
  if (k == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';
    if (!ok) { free(k); return NULL; }
    k[i] = ch;
  }
  k[n] = '\0';
  if (*wildcard && n < 2) { free(k); return NULL; } /* "*." alone */
  return k;
}

int lb_tls_ctx_add_sni(lb_tls_ctx *c, const char *name, lb_tls_ctx *child) {
  if (c == NULL || name == NULL || child == NULL || c == child) return LB_EINVAL;
  /* A child with its own registry would be ignored (only the connection's
   * first context is consulted) and could make reference cycles. */
  if (!c->is_server || !child->is_server || child->nsni > 0) return LB_EINVAL;
  int wild;
  char *k = sni_key(name, &wild);
  if (k == NULL) return LB_EINVAL;
  size_t kl = strlen(k);
  for (size_t i = 0; i < c->nsni; i++) {
    if (c->sni[i].wildcard == wild && c->sni[i].len == kl && memcmp(c->sni[i].name, k, kl) == 0) {
      free(k);
      child->refs++;
      lb_tls_ctx_free(c->sni[i].child);
      c->sni[i].child = child;
      return 0;
    }
  }
  if (c->nsni == c->capsni) {
    size_t cap = c->capsni ? c->capsni * 2 : 4;
    lb__sni *p = realloc(c->sni, cap * sizeof *p);
    if (p == NULL) { free(k); return LB_ENOMEM; }
    c->sni = p;
    c->capsni = cap;
  }
  c->sni[c->nsni].name = k;
  c->sni[c->nsni].len = kl;
  c->sni[c->nsni].wildcard = wild;
  c->sni[c->nsni].child = child;
  c->nsni++;
  child->refs++;
  return 0;
}

ptrdiff_t lb_tls_ctx_last_error(const lb_tls_ctx *c, char *dst, size_t cap) {
  if (c == NULL) return 0;
  return copy_out(dst, cap, c->err, strlen(c->err), 1);
}

/* ---- the BIOs: byte queues of the connection ----------------------------- */

/* Room for n more bytes at the end of q (moving the queued bytes to the
 * front first when that is enough). 0 or -1. */
static int queue_reserve(lb__queue *q, size_t n) {
  if (q->cap - q->len >= n) return 0;
  size_t used = q->len - q->off;
  if (q->off > 0 && q->cap - used >= n) {
    memmove(q->buf, q->buf + q->off, used);
    q->off = 0;
    q->len = used;
    return 0;
  }
  if (n > SIZE_MAX / 2 - used) return -1;
  size_t cap = q->cap ? q->cap : 4096;
  while (cap - used < n) cap *= 2;
  uint8_t *p = malloc(cap);
  if (p == NULL) return -1;
  if (used > 0) memcpy(p, q->buf + q->off, used);
  free(q->buf);
  q->buf = p;
  q->cap = cap;
  q->off = 0;
  q->len = used;
  return 0;
}

static size_t queue_take(lb__queue *q, void *dst, size_t cap) {
  size_t n = q->len - q->off;
  if (n > cap) n = cap;
  if (n == 0) return 0;
  memcpy(dst, q->buf + q->off, n);
  q->off += n;
  if (q->off == q->len) q->off = q->len = 0;
  return n;
}

static int bio_read(BIO *b, char *dst, size_t cap, size_t *got) {
  lb_tls *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (t->in.len == t->in.off) {
    BIO_set_retry_read(b); /* "later", not EOF */
    *got = 0;
    return 0;
  }
  *got = queue_take(&t->in, dst, cap);
  return 1;
}

static int bio_write(BIO *b, const char *src, size_t n, size_t *put) {
  lb_tls *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (queue_reserve(&t->out, n) != 0) { *put = 0; return 0; }
  memcpy(t->out.buf + t->out.len, src, n);
  t->out.len += n;
  *put = n;
  return 1;
}

/* OpenSSL asks some 90 questions per connection, most of them with an
 * answer of 0 (kTLS...): the connection is looked up only when needed. */
static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)num; (void)ptr;
  lb_tls *t;
  switch (cmd) {
  case BIO_CTRL_FLUSH: return 1;
  case BIO_CTRL_PENDING: /* input queued (one BIO reads and writes) */
    t = BIO_get_data(b);
    return t == NULL ? 0 : (long)(t->in.len - t->in.off);
  case BIO_CTRL_WPENDING: /* output queued */
    t = BIO_get_data(b);
    return t == NULL ? 0 : (long)(t->out.len - t->out.off);
  default: return 0; /* no kTLS, no EOF, nothing else to say */
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *bio_method;
static CRYPTO_ONCE bio_once = CRYPTO_ONCE_STATIC_INIT;

static void bio_method_init(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "lowbit queue");
  if (m == NULL) return;
  if (BIO_meth_set_read_ex(m, bio_read) != 1 || BIO_meth_set_write_ex(m, bio_write) != 1 ||
      BIO_meth_set_ctrl(m, bio_ctrl) != 1 || BIO_meth_set_create(m, bio_create) != 1) {
    BIO_meth_free(m);
    return;
  }
  bio_method = m;
}

static BIO *new_bio(lb_tls *t) {
  if (!CRYPTO_THREAD_run_once(&bio_once, bio_method_init) || bio_method == NULL) return NULL;
  BIO *b = BIO_new(bio_method);
  if (b != NULL) BIO_set_data(b, t);
  return b;
}

/* ---- connections ------------------------------------------------------- */

static int is_ip_literal(const char *s) {
  ASN1_OCTET_STRING *ip = a2i_IPADDRESS(s);
  if (ip == NULL) { ERR_clear_error(); return 0; }
  ASN1_OCTET_STRING_free(ip);
  return 1;
}

lb_tls *lb_tls_new(lb_tls_ctx *ctx, int is_server, const char *server_name) {
  if (ctx == NULL || (is_server != 0) != ctx->is_server) return NULL;
  clear_errors();
  if (!ctx->is_server && ctx->verify_mode != LB_TLS_VERIFY_NONE && !ctx->ca_loaded && !ctx->system_ca)
    (void)lb_tls_ctx_use_system_ca(ctx); /* a failure shows as a verify error */
  lb_tls *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  t->is_server = ctx->is_server;
  if (server_name != NULL && server_name[0] != '\0') {
    size_t n = strlen(server_name);
    t->server_name = malloc(n + 1);
    if (t->server_name == NULL) goto fail;
    memcpy(t->server_name, server_name, n + 1);
  }
  t->ssl = SSL_new(ctx->ssl);
  if (t->ssl == NULL) goto fail;
  /* One BIO both ways (SSL_set_bio takes the one reference): a BIO_new
   * (allocation, ex_data, lock) less per connection than a pair. */
  BIO *bio = new_bio(t);
  if (bio == NULL) goto fail;
  SSL_set_bio(t->ssl, bio, bio); /* the callbacks find t in it (conn_of) */
  if (t->is_server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (t->server_name != NULL) {
      int ip = is_ip_literal(t->server_name);
      if (!ip && SSL_set_tlsext_host_name(t->ssl, t->server_name) != 1) goto fail;
      if (ctx->verify_mode != LB_TLS_VERIFY_NONE) {
        if (ip) {
          if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), t->server_name) != 1) goto fail;
        } else {
          /* Names only from subjectAltName, never from the subject's
           * Common Name (RFC 6125 6.4.4; Go does the same). */
          SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
          if (SSL_set1_host(t->ssl, t->server_name) != 1) goto fail;
        }
      }
    }
  }
  t->ctx = ctx;
  ctx->refs++;
  return t;
fail:
  ERR_clear_error();
  SSL_free(t->ssl);
  free(t->server_name);
  free(t);
  return NULL;
}

void lb_tls_free(lb_tls *t) {
  if (t == NULL) return;
  SSL_free(t->ssl); /* frees the BIO */
  free(t->in.buf);
  free(t->out.buf);
  lb_tls_ctx_free(t->ctx);
  free(t->server_name);
  free(t);
}

/* Turns an SSL call's failure into a code; records fatal ones. */
static int ssl_result(lb_tls *t, int ret) {
  int e = SSL_get_error(t->ssl, ret);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    clear_errors();
    return LB_EAGAIN;
  }
  if (e == SSL_ERROR_ZERO_RETURN) {
    clear_errors();
    t->peer_closed = 1;
    if (t->done) return 0;
    copy_msg(t->err, "peer closed the connection during the handshake", NULL);
    t->failed = LB_ETLS;
    return LB_ETLS;
  }
  unsigned long code = 0;
  const char *reason = queue_reason(e == SSL_ERROR_SYSCALL ? "unexpected end of input" : "TLS failure", &code);
  long v = SSL_get_verify_result(t->ssl);
  if (ERR_GET_LIB(code) == ERR_LIB_SSL && ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
      v != X509_V_OK) {
    copy_msg(t->err, "certificate verify failed", X509_verify_cert_error_string(v));
    t->failed = LB_ETLSVERIFY;
  } else {
    copy_msg(t->err, reason, NULL);
    t->failed = LB_ETLS;
  }
  return t->failed;
}

int lb_tls_handshake(lb_tls *t) {
  if (t == NULL) return LB_EINVAL;
  if (t->failed) return t->failed;
  if (t->done) return 0;
  clear_errors();
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) { t->done = 1; return 0; }
  return ssl_result(t, r);
}

int lb_tls_handshake_done(const lb_tls *t) { return t != NULL && t->done; }

ptrdiff_t lb_tls_feed(lb_tls *t, const void *in, size_t n) {
  if (t == NULL || (in == NULL && n > 0)) return LB_EINVAL;
  const uint8_t *q = in;
  for (size_t i = 0; i < n;) {
    if (t->body_left > 0) {
      size_t k = n - i < t->body_left ? n - i : t->body_left;
      t->body_left -= k;
      i += k;
    } else {
      t->hdr[t->hdr_have++] = q[i++];
      if (t->hdr_have == sizeof t->hdr) {
        t->body_left = ((size_t)t->hdr[3] << 8) | t->hdr[4];
        t->hdr_have = 0;
      }
    }
  }
  if (n > 0) {
    if (queue_reserve(&t->in, n) != 0) return LB_ENOMEM;
    memcpy(t->in.buf + t->in.len, in, n);
    t->in.len += n;
  }
  return (ptrdiff_t)n;
}

size_t lb_tls_pending_out(const lb_tls *t) {
  return t == NULL ? 0 : t->out.len - t->out.off;
}

ptrdiff_t lb_tls_take_out(lb_tls *t, void *dst, size_t cap) {
  if (t == NULL || (dst == NULL && cap > 0)) return LB_EINVAL;
  if (cap == 0) return 0;
  size_t n = queue_take(&t->out, dst, cap > (size_t)PTRDIFF_MAX ? (size_t)PTRDIFF_MAX : cap);
  return (ptrdiff_t)n;
}

ptrdiff_t lb_tls_read(lb_tls *t, void *dst, size_t cap) {
  if (t == NULL || dst == NULL || cap == 0) return LB_EINVAL;
  if (t->failed) return t->failed;
  if (t->peer_closed) return 0;
  size_t got = 0;
  if (!t->done) clear_errors(); /* the handshake's calls clear it */
  while (got < cap) {
    /* Nothing fed and nothing decrypted: SSL_read could only say so. */
    if (t->done && t->in.len == t->in.off && !SSL_has_pending(t->ssl)) {
      if (got > 0) break;
      return LB_EAGAIN;
    }
    size_t n = 0;
    int r = SSL_read_ex(t->ssl, (char *)dst + got, cap - got, &n);
    if (!t->done && SSL_is_init_finished(t->ssl)) t->done = 1;
    if (r == 1) { got += n; continue; }
    /* The read BIO's "retry" leaves the SSL object wanting to read (SSL_read
     * resets that state first): the error queue has nothing to say then,
     * and is not looked at (see the top). */
    if (t->done && SSL_want_read(t->ssl)) {
      if (got > 0) break;
      return LB_EAGAIN;
    }
    /* Record the state (close_notify, fatal error) now; the bytes already
     * read are returned first and the state shows on the next call. */
    int code = ssl_result(t, r);
    if (got > 0) break;
    return code;
  }
  return (ptrdiff_t)got;
}

size_t lb_tls_read_bound(const lb_tls *t) {
  if (t == NULL) return 0;
  size_t b = t->in.len - t->in.off; /* plaintext is never longer than its record */
  int p = SSL_pending(t->ssl);
  if (p > 0) return b + (size_t)p; /* the rest of a decrypted record */
  /* Part of a record already taken from the queue: at most a whole one
   * (TLS 1.2's limit, 2^14 + 2048 bytes after the 5-byte header). */
  if (SSL_has_pending(t->ssl)) b += 5 + 16384 + 2048;
  return b;
}

size_t lb_tls_readable(const lb_tls *t) {
  if (t == NULL) return 0;
  int n = SSL_pending(t->ssl);
  return n > 0 ? (size_t)n : 0;
}

int lb_tls_partial_input(const lb_tls *t) {
  if (t == NULL) return 0;
  return t->hdr_have > 0 || t->body_left > 0;
}

ptrdiff_t lb_tls_write(lb_tls *t, const void *src, size_t n) {
  if (t == NULL || (src == NULL && n > 0)) return LB_EINVAL;
  if (t->failed) return t->failed;
  if (!t->done || t->sent_shutdown) return LB_ESTATE;
  if (n == 0) return 0;
  size_t w = 0;
  if (SSL_write_ex(t->ssl, src, n, &w) == 1) return (ptrdiff_t)w;
  int code = ssl_result(t, 0);
  return code == 0 || code == LB_EAGAIN ? LB_ETLS : code;
}

int lb_tls_shutdown(lb_tls *t) {
  if (t == NULL) return LB_EINVAL;
  if (t->failed) return t->failed; /* no SSL_shutdown after a fatal error */
  if (!t->done) return LB_ESTATE;
  if (t->sent_shutdown) return 0;
  clear_errors();
  int r = SSL_shutdown(t->ssl);
  if (r < 0) {
    int code = ssl_result(t, r);
    if (code == LB_EAGAIN) code = 0; /* close_notify was written */
    if (code != 0) return code;
  }
  t->sent_shutdown = 1;
  return 0;
}

int lb_tls_peer_closed(const lb_tls *t) { return t != NULL && t->peer_closed; }

ptrdiff_t lb_tls_alpn(const lb_tls *t, char *dst, size_t cap) {
  if (t == NULL) return 0;
  const unsigned char *p = NULL;
  unsigned int n = 0;
  SSL_get0_alpn_selected(t->ssl, &p, &n);
  if (p == NULL || n == 0) return 0;
  return copy_out(dst, cap, (const char *)p, n, 0);
}

const char *lb_tls_version(const lb_tls *t) {
  if (t == NULL || !t->done) return "";
  return SSL_get_version(t->ssl);
}

int lb_tls_version_id(const lb_tls *t) {
  if (t == NULL || !t->done) return 0;
  return SSL_version(t->ssl);
}

ptrdiff_t lb_tls_server_name(const lb_tls *t, char *dst, size_t cap) {
  if (t == NULL) return 0;
  const char *s = t->is_server ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : t->server_name;
  if (s == NULL) return 0;
  return copy_out(dst, cap, s, strlen(s), 0);
}

ptrdiff_t lb_tls_peer_subject(const lb_tls *t, char *dst, size_t cap) {
  if (t == NULL || dst == NULL || cap == 0) return 0;
  X509 *x = SSL_get0_peer_certificate(t->ssl);
  if (x == NULL) return 0;
  BIO *b = BIO_new(BIO_s_mem());
  if (b == NULL) return LB_ENOMEM;
  ptrdiff_t r = 0;
  if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    if (n > 0) r = copy_out(dst, cap, p, (size_t)n, 1);
  }
  BIO_free(b);
  ERR_clear_error();
  return r;
}

ptrdiff_t lb_tls_last_error(const lb_tls *t, char *dst, size_t cap) {
  if (t == NULL) return 0;
  return copy_out(dst, cap, t->err, strlen(t->err), 1);
}
