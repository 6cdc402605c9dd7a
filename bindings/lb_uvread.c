/* lb_uvread: see include/lowbit/lb_uvread.h. */
#include "lowbit/lb_uvread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

/* Readers by descriptor: libuv's callbacks get the stream, and the stream's
 * data field belongs to luv. */
static lb_uvread **by_fd;
static size_t by_fd_cap;

static int32_t *ready;
static size_t ready_n, ready_cap;

/* Reads land here first, then move to the reader's buffer sized to fit:
 * an idle connection holds no read buffer. */
static char slab[64 * 1024];

static lb_uvread *lookup(const uv_handle_t *h) {
  uv_os_fd_t fd;
  if (uv_fileno(h, &fd) != 0 || fd < 0 || (size_t)fd >= by_fd_cap) return NULL;
  return by_fd[fd];
}

static void push_ready(lb_uvread *r) {
  if (r->queued) return;
  if (ready_n == ready_cap) {
    size_t cap = ready_cap ? 2 * ready_cap : 256;
    int32_t *p = realloc(ready, cap * sizeof *p);
    if (p == NULL) abort(); /* a lost wake-up would hang its reader */
    ready = p;
    ready_cap = cap;
  }
  ready[ready_n++] = r->id;
  r->queued = 1;
}

/* Buffers given back by readers that were drained, for the next ones
 * (at most SPARES of up to 256 KiB: 16 MiB held at worst):
 * streams of large messages would otherwise malloc and free 64 KiB or
 * more for every read. Bounded, so idle connections hold nothing. */
#define SPARES 64
static char *spare[SPARES];
static size_t spare_cap[SPARES];
static int nspare;

/* Room for n more bytes in r's buffer, plus slack for what usually
 * follows (the rest of a message). 0 or UV_ENOMEM. */
static int reserve(lb_uvread *r, size_t n) {
  if (r->cap - r->len >= n) return 0;
  size_t want = r->len + n + 16 * 1024;
  if (r->buf == NULL) {
    for (int i = nspare - 1; i >= 0; i--) {
      if (spare_cap[i] >= want) {
        r->buf = spare[i];
        r->cap = spare_cap[i];
        spare[i] = spare[nspare - 1];
        spare_cap[i] = spare_cap[nspare - 1];
        nspare--;
        return 0;
      }
    }
  }
  /* Sized to fit in 16 KiB steps, not doubled: a 64 KiB message gets an
   * 80 KiB buffer, which malloc takes from its heap, where 128 KiB would
   * be a fresh mmap (and page faults) for every message. */
  size_t cap = r->cap + r->cap / 2;
  if (cap < want) cap = want;
  cap = (cap + 16 * 1024 - 1) & ~(size_t)(16 * 1024 - 1);
  char *p = realloc(r->buf, cap);
  if (p == NULL) return UV_ENOMEM;
  r->buf = p;
  r->cap = cap;
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  lb_uvread *r = lookup(h);
  /* A reader that already holds unread bytes with room to spare reads
   * straight into its buffer (a large message arriving in pieces). */
  if (r != NULL && r->len > 0 && r->cap - r->len >= 16 * 1024) {
    buf->base = r->buf + r->len;
    buf->len = r->cap - r->len;
    return;
  }
  buf->base = slab;
  buf->len = sizeof slab;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  lb_uvread *r = lookup((const uv_handle_t *)s);
  if (r == NULL) { uv_read_stop(s); return; }
  if (nread == 0) return; /* EAGAIN */
  if (nread > 0) {
    if (buf->base == slab) {
      int rc = reserve(r, (size_t)nread);
      if (rc != 0) {
        r->status = rc;
        uv_read_stop(s);
        push_ready(r);
        return;
      }
      memcpy(r->buf + r->len, slab, (size_t)nread);
    }
    r->len += (size_t)nread;
    /* Backpressure: libuv reads a ready socket up to 32 times in one pass,
     * so the bound must hold here, not only when the caller collects. */
    if (r->high != 0 && r->len >= r->high) {
      uv_read_stop(s);
      r->paused = 1;
    }
  } else {
    r->status = (int32_t)nread;
    uv_read_stop(s);
  }
  push_ready(r);
}

/* Which of the two layouts below luv's handle userdata have, once a
 * stream was found by its descriptor: 0 unknown, else 1 + the index. One
 * luv per process, so one layout. */
static int ud_layout;

/* The stream behind a luv userdata payload, if it is a TCP or pipe stream
 * on descriptor fd. */
static uv_stream_t *stream_of(void *ud, int fd) {
  uv_handle_t *cand[2] = {*(uv_handle_t **)ud, (uv_handle_t *)ud};
  for (int i = 0; i < 2; i++) {
    uv_handle_t *h = cand[i];
    if (h == NULL) continue;
    uv_handle_type t = uv_handle_get_type(h);
    if (t != UV_TCP && t != UV_NAMED_PIPE) continue;
    uv_os_fd_t got;
    if (uv_fileno(h, &got) == 0 && got == fd) {
      ud_layout = 1 + i;
      return (uv_stream_t *)h;
    }
  }
  return NULL;
}

int lb_uvread_is_closing(void *ud) {
  if (ud == NULL || ud_layout == 0) return -1;
  uv_handle_t *h = ud_layout == 1 ? *(uv_handle_t **)ud : (uv_handle_t *)ud;
  if (h == NULL) return -1;
  return uv_is_closing(h) ? 1 : 0;
}

int lb_uvread_fileno(void *ud) {
  if (ud == NULL || ud_layout == 0) return -1;
  uv_handle_t *h = ud_layout == 1 ? *(uv_handle_t **)ud : (uv_handle_t *)ud;
  if (h == NULL) return -1;
  uv_handle_type t = uv_handle_get_type(h);
  if (t != UV_TCP && t != UV_NAMED_PIPE) return -1;
  uv_os_fd_t fd;
  if (uv_fileno(h, &fd) != 0 || fd < 0) return -1;
  return fd;
}

int lb_uvread_start(void *ud, int fd, lb_uvread *r, int32_t id, size_t high) {
  if (fd < 0) return UV_EBADF;
  r->id = id;
  r->high = high;
  uv_stream_t *stream = r->stream;
  if (stream == NULL) stream = stream_of(ud, fd);
  if (stream == NULL) return UV_EINVAL;
  r->stream = stream;
  if ((size_t)fd >= by_fd_cap) {
    size_t cap = by_fd_cap ? by_fd_cap : 1024;
    while (cap <= (size_t)fd) cap *= 2;
    lb_uvread **p = realloc(by_fd, cap * sizeof *p);
    if (p == NULL) return UV_ENOMEM;
    memset(p + by_fd_cap, 0, (cap - by_fd_cap) * sizeof *p);
    by_fd = p;
    by_fd_cap = cap;
  }
  by_fd[fd] = r;
  r->fd = fd;
  r->paused = 0;
  return uv_read_start(stream, on_alloc, on_read);
}

int lb_uvread_stop(lb_uvread *r) {
  if (r->stream != NULL) uv_read_stop((uv_stream_t *)r->stream); /* (always 0) */
  return r->queued;
}

size_t lb_uvread_collect(lb_uvread *r) {
  r->queued = 0;
  return r->len;
}

int lb_uvread_collected(lb_uvread *r) {
  if (r->len > 0) lb_uvread_release(r);
  if (r->status != 0) return r->status;
  return r->paused ? 1 : 0;
}

void lb_uvread_release(lb_uvread *r) {
  if (r->buf != NULL && r->cap >= 16 * 1024 && r->cap <= 256 * 1024 && nspare < SPARES) {
    spare[nspare] = r->buf;
    spare_cap[nspare] = r->cap;
    nspare++;
    r->buf = NULL;
  }
  free(r->buf);
  r->buf = NULL;
  r->len = 0;
  r->cap = 0;
}

void lb_uvread_forget(lb_uvread *r) {
  if (r->fd >= 0 && (size_t)r->fd < by_fd_cap && by_fd[r->fd] == r) by_fd[r->fd] = NULL;
  r->fd = -1;
  r->stream = NULL;
  lb_uvread_release(r);
}

size_t lb_uvread_take(int32_t *ids, size_t max) {
  size_t n = ready_n < max ? ready_n : max;
  memcpy(ids, ready, n * sizeof *ids);
  memmove(ready, ready + n, (ready_n - n) * sizeof *ready);
  ready_n -= n;
  return n;
}

/* Writes v in decimal at p; returns the end. */
static char *put_uint(char *p, unsigned v) {
  char tmp[10];
  int n = 0;
  do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v != 0);
  while (n > 0) *p++ = tmp[--n];
  return p;
}

int lb_uvread_sockname(int fd, int peer, char *dst, size_t cap) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (fd < 0) return UV_EBADF;
  int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len) : getsockname(fd, (struct sockaddr *)&ss, &len);
  if (rc != 0) return uv_translate_sys_error(errno);
  /* Formatted by hand: glibc's inet_ntop and snprintf cost thousands of
   * instructions for an IPv4 address (servers ask once per connection). */
  char buf[INET6_ADDRSTRLEN + 8], *p = buf;
  unsigned port;
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
    const unsigned char *b = (const unsigned char *)&a->sin_addr;
    for (int i = 0; i < 4; i++) {
      if (i > 0) *p++ = '.';
      p = put_uint(p, b[i]);
    }
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
    *p++ = '[';
    if (inet_ntop(AF_INET6, &a->sin6_addr, p, INET6_ADDRSTRLEN) == NULL) return UV_EINVAL;
    p += strlen(p);
    *p++ = ']';
    port = ntohs(a->sin6_port);
  } else {
    return UV_EAFNOSUPPORT;
  }
  *p++ = ':';
  p = put_uint(p, port);
  size_t n = (size_t)(p - buf);
  if (n >= cap) return UV_ENOBUFS;
  memcpy(dst, buf, n);
  dst[n] = '\0';
  return (int)n;
}

const char *lb_uvread_err_name(int code) { return uv_err_name(code); }
const char *lb_uvread_strerror(int code) { return uv_strerror(code); }
