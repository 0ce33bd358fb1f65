/* Where the host stream comes from: virtio-serial port, vsock or Unix listener. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"

/* ---- transports ------------------------------------------------------------ */

static int read_small(const char *path, char *buf, size_t len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, len - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = 0;
  buf[strcspn(buf, "\n")] = 0;
  return 0;
}

/* Finds the virtio-serial port named PORT_NAME and opens it; -1 if absent. */
int open_virtio_port(void) {
  DIR *d = opendir("/sys/class/virtio-ports");
  if (!d) return -1;
  struct dirent *e;
  int fd = -1;
  while (fd < 0 && (e = readdir(d))) {
    if (e->d_name[0] == '.' || strlen(e->d_name) > 64) continue;
    char path[400], name[128], dev[300];
    snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
    if (read_small(path, name, sizeof name) != 0 || strcmp(name, PORT_NAME) != 0) continue;
    fd = open("/dev/virtio-ports/" PORT_NAME, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) break;
    snprintf(dev, sizeof dev, "/dev/%s", e->d_name);
    fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0 || errno != ENOENT) break;
    /* no devtmpfs node: make one from the major:minor in sysfs */
    char mm[32];
    unsigned maj, min;
    snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/dev", e->d_name);
    if (read_small(path, mm, sizeof mm) == 0 && sscanf(mm, "%u:%u", &maj, &min) == 2 &&
        mknod(dev, S_IFCHR | 0600, makedev(maj, min)) == 0)
      fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  }
  closedir(d);
  return fd;
}

int listen_unix(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    say("socket path %s is too long", path);
    exit(1);
  }
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  unlink(path);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0) {
    say("listen on %s: %s", path, strerror(errno));
    exit(1);
  }
  return fd;
}

int listen_vsock(unsigned port) {
  struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

void accept_host(void) {
  int fd = accept4(A.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return;
  if (A.in_fd >= 0) {
    say("a new host connection replaces the current one");
    conn_close();
  }
  conn_open(fd, fd);
}

/* banger.agent=virtio (default) or banger.agent=vsock:<port> on the kernel command line. */
void mode_from_cmdline(unsigned *vsock_port) {
  char cmdline[4096] = "";
  read_small("/proc/cmdline", cmdline, sizeof cmdline);
  A.mode = M_VIRTIO;
  for (char *tok = strtok(cmdline, " "); tok; tok = strtok(NULL, " ")) {
    if (strncmp(tok, "banger.agent=vsock", 18) == 0) {
      A.mode = M_VSOCK;
      if (tok[18] == ':') *vsock_port = (unsigned)strtoul(tok + 19, NULL, 10);
    }
  }
}
