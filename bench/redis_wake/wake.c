/*
 * One PING per round trip to a redis-server, waiting for the reply the way
 * lowbit's loop does (write, epoll_wait, read), with or without one extra
 * step after the write:
 *   plain   write, epoll_wait, read (lowbit: libuv's loop)
 *   readd   + epoll_ctl DEL and ADD of the socket (what redis-benchmark's
 *           ae loop does around each request)
 *   rcu     + close(socket()) (frees an inode through RCU, nothing epoll)
 * Prints microseconds per round trip. Used by bench/redis_wake/run.sh.
 *   wake PORT MODE N
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: wake PORT plain|readd|rcu N\n");
    return 2;
  }
  int port = atoi(argv[1]), n = atoi(argv[3]);
  int mode = strcmp(argv[2], "readd") == 0 ? 1 : strcmp(argv[2], "rcu") == 0 ? 2 : 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(0x7f000001);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("connect");
    return 1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd}, out[8];
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  static const char ping[] = "*1\r\n$4\r\nPING\r\n";
  char buf[4096];
  double t0 = now();
  for (int i = 0; i < n; i++) {
    if (write(fd, ping, sizeof ping - 1) != (ssize_t)(sizeof ping - 1)) {
      perror("write");
      return 1;
    }
    if (mode == 1) {
      epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    } else if (mode == 2) {
      close(socket(AF_INET, SOCK_DGRAM, 0));
    }
    size_t got = 0;
    while (got < 7) { /* +PONG\r\n */
      if (epoll_wait(ep, out, 8, -1) < 0) {
        perror("epoll_wait");
        return 1;
      }
      ssize_t m = read(fd, buf + got, sizeof buf - got);
      if (m > 0) got += (size_t)m;
    }
  }
  printf("%.1f\n", (now() - t0) / n * 1e6);
  return 0;
}
