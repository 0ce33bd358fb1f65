/* A static IPv4 network without the `ip` binary: ioctl SIOCSIFADDR/SIOCSIFNETMASK/SIOCSIFFLAGS/SIOCADDRT. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "init.h"

static int set_up(int sock, const char *name) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) return -1;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  return ioctl(sock, SIOCSIFFLAGS, &ifr);
}

static int set_addr(int sock, const char *name, unsigned long req, in_addr_t addr) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = {.s_addr = addr}};
  memcpy(&ifr.ifr_addr, &sin, sizeof sin);
  return ioctl(sock, req, &ifr);
}

/* The interface whose MAC address is `mac` (case-insensitive), from /sys/class/net. */
static int iface_by_mac(const char *mac, char *out, size_t len) {
  DIR *d = opendir("/sys/class/net");
  if (!d) return 0;
  struct dirent *e;
  int found = 0;
  while (!found && (e = readdir(d))) {
    if (e->d_name[0] == '.' || strlen(e->d_name) >= IFNAMSIZ) continue;
    char path[300], addr[64] = {0};
    snprintf(path, sizeof path, "/sys/class/net/%s/address", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, addr, sizeof addr - 1);
    close(fd);
    if (n <= 0) continue;
    addr[strcspn(addr, "\n")] = 0;
    size_t n_name = strlen(e->d_name);
    if (strcasecmp(addr, mac) == 0 && n_name < len) {
      memcpy(out, e->d_name, n_name + 1);
      found = 1;
    }
  }
  closedir(d);
  return found;
}

void net_up(const char *mac, const char *cidr, const char *gw) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    say("network: socket: %s", strerror(errno));
    return;
  }
  /* The kernel gives lo 127.0.0.1/8 when it goes up. */
  if (set_up(sock, "lo") != 0) say("network: lo up: %s", strerror(errno));
  if (!mac || !cidr) goto out;

  char ip[64];
  snprintf(ip, sizeof ip, "%s", cidr);
  char *slash = strchr(ip, '/');
  long prefix = 24;
  if (slash) {
    *slash = 0;
    prefix = strtol(slash + 1, NULL, 10);
  }
  struct in_addr addr, gwaddr;
  if (inet_pton(AF_INET, ip, &addr) != 1 || prefix < 0 || prefix > 32) {
    say("network: invalid banger.ip=%s", cidr);
    goto out;
  }
  in_addr_t mask = prefix == 0 ? 0 : htonl(~0u << (32 - prefix));

  /* virtio-net probes asynchronously: wait for the interface up to 10 s. */
  char name[IFNAMSIZ];
  double deadline = now() + 10.0;
  while (!iface_by_mac(mac, name, sizeof name)) {
    if (now() > deadline) {
      say("network: no interface with MAC %s", mac);
      goto out;
    }
    usleep(20000);
  }
  if (set_addr(sock, name, SIOCSIFADDR, addr.s_addr) != 0) say("network: address of %s: %s", name, strerror(errno));
  if (set_addr(sock, name, SIOCSIFNETMASK, mask) != 0) say("network: netmask of %s: %s", name, strerror(errno));
  if (set_up(sock, name) != 0) say("network: %s up: %s", name, strerror(errno));
  if (gw && inet_pton(AF_INET, gw, &gwaddr) == 1) {
    struct rtentry rt;
    memset(&rt, 0, sizeof rt);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr = {.s_addr = INADDR_ANY}};
    struct sockaddr_in via = {.sin_family = AF_INET, .sin_addr = gwaddr};
    memcpy(&rt.rt_dst, &any, sizeof any);
    memcpy(&rt.rt_genmask, &any, sizeof any);
    memcpy(&rt.rt_gateway, &via, sizeof via);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = name;
    if (ioctl(sock, SIOCADDRT, &rt) != 0 && errno != EEXIST) say("network: default route via %s: %s", gw, strerror(errno));
  }
  say("network: %s is %s%s%s", name, cidr, gw ? " via " : "", gw ? gw : "");
out:
  close(sock);
}
