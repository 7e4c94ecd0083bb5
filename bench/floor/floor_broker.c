// floor_broker: the least an MQTT 3.1.1 broker can do for shardmq-bench's
// p2p/fanout scenarios at QoS 0, used to measure the floor of broker CPU per
// message on this host (bench/RESULTS.md, "low-rate efficiency").
//
// One thread, level-triggered epoll, one read() per readable socket and one
// write() per forwarded PUBLISH, no queues, no validation, exact-topic
// subscriptions only (a linear list), no QoS 1/2, no retained, no wills.
// Whatever it costs per message is (almost all) the kernel's: recv, send,
// loopback TCP delivery and waking the receiving client. It is not a broker:
// it drops bytes it cannot write at once and trusts every client.
//
//   cc -O2 -o floor_broker bench/floor/floor_broker.c
//   floor_broker PORT
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FD 65536
#define BUF 65536

struct conn {
  unsigned char in[BUF];
  size_t len;
};
struct sub {
  char topic[128];
  uint16_t topic_len;
  int fd;
};

static struct conn* conns[MAX_FD];
static struct sub* subs;
static size_t nsubs, capsubs;

static void add_sub(int fd, const unsigned char* t, uint16_t n) {
  if (n >= sizeof subs[0].topic) return;
  if (nsubs == capsubs) {
    capsubs = capsubs ? capsubs * 2 : 1024;
    subs = realloc(subs, capsubs * sizeof *subs);
  }
  memcpy(subs[nsubs].topic, t, n);
  subs[nsubs].topic_len = n;
  subs[nsubs].fd = fd;
  ++nsubs;
}

static void drop_subs(int fd) {
  for (size_t i = 0; i < nsubs;) {
    if (subs[i].fd == fd) {
      subs[i] = subs[--nsubs];
    } else {
      ++i;
    }
  }
}

// Returns bytes consumed from p (one packet), 0 if incomplete.
static size_t handle(int fd, const unsigned char* p, size_t n) {
  if (n < 2) return 0;
  size_t rem = 0, mul = 1, i = 1;
  for (;; ++i) {
    if (i >= n) return 0;
    rem += (p[i] & 127) * mul;
    mul *= 128;
    if (!(p[i] & 128)) break;
  }
  const size_t hdr = i + 1, total = hdr + rem;
  if (n < total) return 0;
  const unsigned type = p[0] >> 4;
  const unsigned char* body = p + hdr;
  if (type == 1) {  // CONNECT
    static const unsigned char connack[] = {0x20, 2, 0, 0};
    (void)!write(fd, connack, sizeof connack);
  } else if (type == 8) {  // SUBSCRIBE: packet id, one filter, options
    const uint16_t tl = (uint16_t)(body[2] << 8 | body[3]);
    add_sub(fd, body + 4, tl);
    const unsigned char suback[] = {0x90, 3, body[0], body[1], 0};
    (void)!write(fd, suback, sizeof suback);
  } else if (type == 3) {  // PUBLISH (QoS 0): forward the bytes as they are
    const uint16_t tl = (uint16_t)(body[0] << 8 | body[1]);
    for (size_t s = 0; s < nsubs; ++s) {
      if (subs[s].topic_len == tl && memcmp(subs[s].topic, body + 2, tl) == 0) {
        (void)!write(subs[s].fd, p, total);
      }
    }
  } else if (type == 12) {  // PINGREQ
    static const unsigned char pingresp[] = {0xD0, 0};
    (void)!write(fd, pingresp, sizeof pingresp);
  }
  return total;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: floor_broker PORT\n");
    return 2;
  }
  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr*)&a, sizeof a) != 0 || listen(lfd, 4096) != 0) {
    perror("bind/listen");
    return 1;
  }
  const int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event evs[256];
  for (;;) {
    const int k = epoll_wait(ep, evs, 256, -1);
    for (int e = 0; e < k; ++e) {
      const int fd = evs[e].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          if (c >= MAX_FD) {
            close(c);
            continue;
          }
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conns[c] = calloc(1, sizeof(struct conn));
          struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      struct conn* c = conns[fd];
      const ssize_t r = read(fd, c->in + c->len, BUF - c->len);
      if (r <= 0) {
        drop_subs(fd);
        close(fd);
        free(c);
        conns[fd] = NULL;
        continue;
      }
      c->len += (size_t)r;
      size_t off = 0, used;
      while ((used = handle(fd, c->in + off, c->len - off)) > 0) off += used;
      memmove(c->in, c->in + off, c->len - off);
      c->len -= off;
    }
  }
}
