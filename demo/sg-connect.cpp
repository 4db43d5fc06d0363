// sg-connect: one TCP connect from a chosen source address, for the demo.
// Usage: sg-connect SRC DST PORT [TIMEOUT_MS]; prints connected, refused or
// timed out, and exits 0, 1 or 2 accordingly (3 on other errors).
//        sg-connect --listen PORT: accepts and closes connections (IPv4 and
//        IPv6) until killed: the demo's stand-in for a mail server.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

static int listen_forever(int port) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 64) != 0) {
    std::perror("sg-connect --listen");
    return 3;
  }
  while (true) {
    int c = accept(fd, nullptr, nullptr);
    if (c >= 0) close(c);
  }
}

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--listen") return listen_forever(std::atoi(argv[2]));
  if (argc < 4) {
    std::fprintf(stderr, "usage: sg-connect SRC DST PORT [TIMEOUT_MS]\n");
    return 3;
  }
  bool v6 = std::strchr(argv[2], ':') != nullptr;
  int timeout_ms = argc > 4 ? std::atoi(argv[4]) : 1500;
  sockaddr_storage s{}, d{};
  socklen_t len;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&s);
    auto* b = reinterpret_cast<sockaddr_in6*>(&d);
    a->sin6_family = b->sin6_family = AF_INET6;
    b->sin6_port = htons(std::atoi(argv[3]));
    if (inet_pton(AF_INET6, argv[1], &a->sin6_addr) != 1 || inet_pton(AF_INET6, argv[2], &b->sin6_addr) != 1) return 3;
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&s);
    auto* b = reinterpret_cast<sockaddr_in*>(&d);
    a->sin_family = b->sin_family = AF_INET;
    b->sin_port = htons(std::atoi(argv[3]));
    if (inet_pton(AF_INET, argv[1], &a->sin_addr) != 1 || inet_pton(AF_INET, argv[2], &b->sin_addr) != 1) return 3;
    len = sizeof(sockaddr_in);
  }
  int fd = socket(s.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&s), len) != 0) {
    std::perror("sg-connect");
    return 3;
  }
  int err = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&d), len) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, timeout_ms) == 0) {
        std::puts("timed out");
        return 2;
      }
      socklen_t el = sizeof(err);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    }
  }
  close(fd);
  if (err == 0) {
    std::puts("connected");
    return 0;
  }
  if (err == ECONNREFUSED) {
    std::puts("refused");
    return 1;
  }
  std::printf("error: %s\n", std::strerror(err));
  return 3;
}
