/* hop_relay.c — the floor of one proxy hop on this machine (bench only).
 *
 *   build/bench/hop_relay LISTEN_PORT UPSTREAM_PORT [busy]
 *
 * Accepts on 127.0.0.1:LISTEN_PORT; each accepted client gets its own
 * connection to 127.0.0.1:UPSTREAM_PORT, and bytes are copied both ways as
 * they come — no parsing, no buffering beyond one read, no allocation after
 * accept. It is not a proxy (it cannot route, retry or log): it is what any
 * proxy must at least pay per request, two more socket reads, two more
 * writes and two more wake-ups, so that `make bench` can say how much of
 * sluice's added latency is the hop itself. With `busy` it never sleeps:
 * epoll_wait with a zero timeout, spinning as sluice does while traffic flows
 * under server.busy_poll_us (the floor of a hop whose core never halts).
 * Stops by itself after 600 s. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_FDS = 65536 };

static int peer[MAX_FDS]; /* fd -> the other side's fd, 0: none */

static int tcp_socket(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s >= 0)
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void close_pair(int ep, int fd)
{
    int other = peer[fd];
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    peer[fd] = 0;
    if (other > 0 && other < MAX_FDS) {
        epoll_ctl(ep, EPOLL_CTL_DEL, other, NULL);
        close(other);
        peer[other] = 0;
    }
}

static void watch(int ep, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static void accept_one(int ep, int ls, int up_port)
{
    int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int u = tcp_socket();
    struct sockaddr_in a = loopback(up_port);
    if (u < 0 || c >= MAX_FDS || u >= MAX_FDS || connect(u, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c);
        if (u >= 0)
            close(u);
        return;
    }
    peer[c] = u;
    peer[u] = c;
    watch(ep, c);
    watch(ep, u);
}

/* One read, written whole to the other side (blocking write: the relay is a
 * floor measurement, its peers read promptly). */
static void relay(int ep, int fd)
{
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
        close_pair(ep, fd);
        return;
    }
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(peer[fd], buf + off, (size_t)(n - off));
        if (w <= 0) {
            close_pair(ep, fd);
            return;
        }
        off += w;
    }
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "busy") != 0)) {
        fprintf(stderr, "usage: hop_relay LISTEN_PORT UPSTREAM_PORT [busy]\n");
        return 2;
    }
    int wait_ms = argc == 4 ? 0 : 1000;
    int port = atoi(argv[1]), up_port = atoi(argv[2]);
    int ls = tcp_socket(), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = loopback(port);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 1024) != 0) {
        perror("hop_relay: listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    watch(ep, ls);
    time_t end = time(NULL) + 600;
    while (time(NULL) < end) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, wait_ms);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == ls)
                accept_one(ep, ls, up_port);
            else if (peer[evs[i].data.fd])
                relay(ep, evs[i].data.fd);
        }
    }
    return 0;
}
