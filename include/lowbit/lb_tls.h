/*
 * lb_tls.h: TLS 1.2/1.3 on OpenSSL 3, sans-I/O.
 *
 * A connection never touches a socket. The caller moves bytes:
 *
 *   ciphertext from the peer  -> lb_tls_feed()        -> (read BIO)
 *   (write BIO)               -> lb_tls_take_out()     -> ciphertext to the peer
 *   plaintext to send         -> lb_tls_write()
 *   plaintext received        <- lb_tls_read()
 *
 * After every call that may produce output (handshake, read, write,
 * shutdown) the caller sends whatever lb_tls_pending_out() reports. A call
 * that returns LB_EAGAIN wants more ciphertext from the peer (first send the
 * pending output: the peer may be waiting for it).
 *
 * Contexts (lb_tls_ctx) hold the configuration: certificates, trust, ALPN,
 * versions, and for servers a registry of per-name contexts chosen by the
 * client's SNI inside OpenSSL's callback (no call back into the caller).
 * Contexts are reference counted: lb_tls_new and lb_tls_ctx_add_sni take a
 * reference, so the caller may lb_tls_ctx_free its own reference at any time.
 * Neither contexts nor connections may be used from two threads at once.
 *
 * Return codes: 0 or a byte count on success, LB_EAGAIN (need more
 * ciphertext), LB_ETLS (protocol failure or fatal alert, see
 * lb_tls_last_error), LB_ETLSVERIFY (the peer's certificate did not verify),
 * LB_ECERT (a certificate, key or CA given to a context is unusable),
 * LB_EINVAL, LB_ESTATE, LB_ENOMEM.
 */
#ifndef LOWBIT_LB_TLS_H
#define LOWBIT_LB_TLS_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h"
#endif

typedef struct lb_tls_ctx lb_tls_ctx;
typedef struct lb_tls lb_tls;

enum {
  /* lb_tls_ctx_set_verify modes. Clients default to PEER (the server's
   * chain and, with a server name, its host name are checked); servers
   * default to NONE (no client certificate asked for). */
  LB_TLS_VERIFY_NONE = 0,
  LB_TLS_VERIFY_PEER = 1,    /* server: ask for a client cert, check it if sent */
  LB_TLS_VERIFY_REQUIRE = 2, /* server: also fail when the client sends none */
  /* Protocol versions for lb_tls_ctx_set_versions and lb_tls_version_id. */
  LB_TLS_VERSION_1_2 = 0x0303,
  LB_TLS_VERSION_1_3 = 0x0304,
  /* Longest message lb_tls_last_error / lb_tls_ctx_last_error keep. */
  LB_TLS_ERROR_MAX = 256,
  /* Longest ALPN wire list accepted (RFC 7301 limits it to 2^16 - 1). */
  LB_TLS_ALPN_MAX = 1024
};

/* ---- contexts ---------------------------------------------------------- */

/* A new context for servers (is_server != 0) or clients, holding one
 * reference. Defaults: TLS 1.2 minimum, renegotiation off, clients verify
 * the peer against the system CA store unless a CA is loaded; servers
 * choose the cipher suite by their own preference, and offer TLS 1.2
 * suites with ECDHE and AEAD only (ECDHE-ECDSA/RSA with AES-GCM or
 * ChaCha20-Poly1305). Host names are checked against the subjectAltName
 * only, never the subject's Common Name. Returns NULL when memory runs
 * out. */
lb_tls_ctx *lb_tls_ctx_new(int is_server);

/* Drops one reference; the context is freed with its last one. NULL is
 * ignored. */
void lb_tls_ctx_free(lb_tls_ctx *c);

/* 1 for a server context, 0 for a client one. */
int lb_tls_ctx_is_server(const lb_tls_ctx *c);

/* Loads the certificate chain (PEM: leaf first, then intermediates) and the
 * private key from files, and checks that they match. Returns 0, LB_EINVAL
 * (NULL argument), LB_ECERT (unreadable file, bad PEM, key mismatch; see
 * lb_tls_ctx_last_error). */
int lb_tls_ctx_use_cert_file(lb_tls_ctx *c, const char *cert_file, const char *key_file);

/* The same from PEM text in memory (cert_pem: leaf first, then any
 * intermediates). The buffers are not kept. Returns as above. */
int lb_tls_ctx_use_cert_pem(lb_tls_ctx *c, const char *cert_pem, size_t cert_len,
                            const char *key_pem, size_t key_len);

/* Adds intermediate certificates (PEM, one or more) sent after the leaf.
 * Call after lb_tls_ctx_use_cert_*. Returns 0, LB_EINVAL, LB_ECERT. */
int lb_tls_ctx_add_chain_pem(lb_tls_ctx *c, const char *pem, size_t len);

/* Trusts the CA certificates of a PEM file / PEM text (clients: for the
 * server's chain; servers: for client certificates). Once one is loaded the
 * system store is no longer used by default. Returns 0, LB_EINVAL, LB_ECERT. */
int lb_tls_ctx_load_ca_file(lb_tls_ctx *c, const char *path);
int lb_tls_ctx_load_ca_pem(lb_tls_ctx *c, const char *pem, size_t len);

/* Trusts the system CA store (OpenSSL's default paths, honouring
 * SSL_CERT_FILE and SSL_CERT_DIR) as well. Without other CAs the context
 * shares the process-wide copy (see lb_tls_system_store_loads). Returns 0
 * or LB_ECERT. */
int lb_tls_ctx_use_system_ca(lb_tls_ctx *c);

/* How many times this process has loaded the system CA store. Client
 * contexts trusting only the system store (the default) share one copy,
 * loaded on first use and again only when the SSL_CERT_FILE or
 * SSL_CERT_DIR environment variables have changed since. */
long lb_tls_system_store_loads(void);

/* Sets the verification mode (LB_TLS_VERIFY_*). For a client, NONE is
 * "insecure skip verify": any certificate is accepted. Returns 0 or
 * LB_EINVAL. */
int lb_tls_ctx_set_verify(lb_tls_ctx *c, int mode);

/* ALPN in wire format (each name prefixed by its length byte, e.g.
 * "\x08http/1.1"). Clients offer the list; servers pick the first of their
 * list that the client offers and end the handshake with a
 * no_application_protocol alert when there is none (RFC 7301 section 3.2).
 * len 0 clears it. Returns 0, LB_EINVAL (malformed list or longer than
 * LB_TLS_ALPN_MAX), LB_ENOMEM. */
int lb_tls_ctx_set_alpn(lb_tls_ctx *c, const uint8_t *wire, size_t len);

/* Limits the protocol versions (LB_TLS_VERSION_*; 0 = no limit on that
 * side). Returns 0 or LB_EINVAL. */
int lb_tls_ctx_set_versions(lb_tls_ctx *c, int min_version, int max_version);

/* Server contexts: serves `child` (a server context with its own
 * certificate) to clients whose SNI is `name`. `name` is a host name
 * ("api.example.com", matched without regard to case) or a wildcard
 * "*.example.com" matching exactly one more label ("a.example.com", not
 * "example.com" nor "a.b.example.com"). Exact names win over wildcards;
 * unknown or absent names get `c` itself. The registry holds a reference
 * to child. Adding a name again replaces its context. Returns 0,
 * LB_EINVAL (not two server contexts, bad name, child == c or child has
 * its own registry), LB_ENOMEM. */
int lb_tls_ctx_add_sni(lb_tls_ctx *c, const char *name, lb_tls_ctx *child);

/* Copies the message of the last failure of a context call into dst (NUL
 * terminated, truncated to cap - 1). Returns its length, 0 when there is
 * none. */
ptrdiff_t lb_tls_ctx_last_error(const lb_tls_ctx *c, char *dst, size_t cap);

/* ---- connections --------------------------------------------------------- */

/* A new connection on ctx, holding a reference to it. is_server must match
 * the context. For clients, server_name (may be NULL) is sent as SNI (unless
 * it is an IP literal, RFC 6066 section 3) and checked against the server's
 * certificate when verification is on (DNS names or IP addresses in its
 * subjectAltName). Returns NULL on a role mismatch or when memory runs out. */
lb_tls *lb_tls_new(lb_tls_ctx *ctx, int is_server, const char *server_name);

/* Frees the connection (no close_notify is sent); NULL is ignored. */
void lb_tls_free(lb_tls *t);

/* Advances the handshake with the input fed so far. Returns 0 when it is
 * complete (also on later calls), LB_EAGAIN when it needs more input,
 * LB_ETLSVERIFY or LB_ETLS when it failed (any alert for the peer is then
 * pending output; later calls fail the same way). */
int lb_tls_handshake(lb_tls *t);

/* 1 once the handshake is complete. */
int lb_tls_handshake_done(const lb_tls *t);

/* Appends n bytes of ciphertext received from the peer. Returns n,
 * LB_EINVAL (NULL with n > 0) or LB_ENOMEM. */
ptrdiff_t lb_tls_feed(lb_tls *t, const void *in, size_t n);

/* Bytes of ciphertext waiting to be sent to the peer. */
size_t lb_tls_pending_out(const lb_tls *t);

/* Moves up to cap bytes of pending ciphertext into dst. Returns the count
 * (0 when nothing is pending) or LB_EINVAL. */
ptrdiff_t lb_tls_take_out(lb_tls *t, void *dst, size_t cap);

/* Decrypts into dst as much plaintext as the input fed so far holds, up to
 * cap bytes (several records when they are there). Completes the handshake
 * first if needed, and handles post-handshake messages (TLS 1.3 session
 * tickets, key updates: their answers become pending output). Returns the
 * byte count (> 0); 0 once the peer's close_notify has been read (and on
 * every later call); LB_EAGAIN when more input is needed; LB_ETLS,
 * LB_ETLSVERIFY; LB_EINVAL (cap == 0). */
ptrdiff_t lb_tls_read(lb_tls *t, void *dst, size_t cap);

/* At least as many bytes as lb_tls_read can return before it needs more
 * input (ciphertext fed and not yet decrypted, plus plaintext decrypted
 * and not yet read): a buffer of this size (at least 1) takes all of it. */
size_t lb_tls_read_bound(const lb_tls *t);

/* Plaintext already decrypted and readable without more input. */
size_t lb_tls_readable(const lb_tls *t);

/* 1 when input was fed that does not make a whole record yet (the peer
 * stopped mid-record), 0 otherwise. */
int lb_tls_partial_input(const lb_tls *t);

/* Encrypts n bytes of plaintext into pending output (records of up to
 * 16 KiB). Returns n, LB_ESTATE (handshake not complete, or close_notify
 * already sent), LB_ETLS, LB_EINVAL, LB_ENOMEM. */
ptrdiff_t lb_tls_write(lb_tls *t, const void *src, size_t n);

/* Queues a close_notify alert (the peer's reads then end cleanly); reading
 * may go on. Returns 0, LB_ESTATE (handshake not complete), LB_ETLS. */
int lb_tls_shutdown(lb_tls *t);

/* 1 once the peer's close_notify has been read. */
int lb_tls_peer_closed(const lb_tls *t);

/* Copies the negotiated ALPN protocol into dst (NUL terminated). Returns
 * its length, 0 when none was agreed, LB_ENOSPACE when cap is too small. */
ptrdiff_t lb_tls_alpn(const lb_tls *t, char *dst, size_t cap);

/* The negotiated version as a static string ("TLSv1.3"), or "" before the
 * handshake is complete. */
const char *lb_tls_version(const lb_tls *t);

/* The negotiated version as LB_TLS_VERSION_*, 0 before the handshake. */
int lb_tls_version_id(const lb_tls *t);

/* The server name: on a server, the SNI the client sent; on a client, the
 * one given to lb_tls_new. Copied into dst (NUL terminated). Returns its
 * length, 0 when there is none, LB_ENOSPACE when cap is too small. */
ptrdiff_t lb_tls_server_name(const lb_tls *t, char *dst, size_t cap);

/* The peer certificate's subject in RFC 2253 form ("CN=localhost"). Returns
 * its length (truncated to cap - 1, NUL terminated), 0 when the peer sent
 * no certificate. */
ptrdiff_t lb_tls_peer_subject(const lb_tls *t, char *dst, size_t cap);

/* Copies the message of the last failure (OpenSSL's reason, e.g.
 * "certificate verify failed: hostname mismatch", "wrong version number")
 * into dst, NUL terminated, truncated to cap - 1. Returns its length, 0 when
 * there was no failure. */
ptrdiff_t lb_tls_last_error(const lb_tls *t, char *dst, size_t cap);

#endif
