/* Console messages, the kernel command line and disks by serial, for both stages of banger-init. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

#include "init.h"

void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("banger-init: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

void fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("banger-init: FATAL ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fflush(stderr);
  sync();
  reboot(RB_POWER_OFF);
  for (;;) pause();
}

static char cmdline[4096];

void read_cmdline(void) {
  int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
  cmdline[n > 0 ? n : 0] = 0;
  close(fd);
}

const char *param(const char *key, char *buf, size_t len) {
  size_t klen = strlen(key);
  const char *p = cmdline;
  while (*p) {
    while (*p == ' ' || *p == '\n') p++;
    const char *end = p;
    while (*end && *end != ' ' && *end != '\n') end++;
    if ((size_t)(end - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
      size_t n = (size_t)(end - p) - klen - 1;
      if (n >= len) n = len - 1;
      memcpy(buf, p + klen + 1, n);
      buf[n] = 0;
      return buf;
    }
    p = end;
  }
  return NULL;
}

int has_flag(const char *flag) {
  size_t flen = strlen(flag);
  const char *p = cmdline;
  while (*p) {
    while (*p == ' ' || *p == '\n') p++;
    const char *end = p;
    while (*end && *end != ' ' && *end != '\n') end++;
    if ((size_t)(end - p) == flen && strncmp(p, flag, flen) == 0) return 1;
    p = end;
  }
  return 0;
}

int find_by_serial(const char *want, char *out, size_t len) {
  /* Firecracker cannot set serials: there the host names the device itself (banger.root=/dev/vda). */
  if (strncmp(want, "/dev/", 5) == 0) {
    if (access(want, F_OK) != 0) return 0;
    snprintf(out, len, "%s", want);
    return 1;
  }
  DIR *d = opendir("/sys/block");
  if (!d) return 0;
  struct dirent *e;
  int found = 0;
  while (!found && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[300], serial[128] = {0};
    snprintf(path, sizeof path, "/sys/block/%s/serial", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, serial, sizeof serial - 1);
    close(fd);
    if (n <= 0) continue;
    serial[strcspn(serial, "\n")] = 0;
    if (strcmp(serial, want) == 0) {
      snprintf(out, len, "/dev/%s", e->d_name);
      found = 1;
    }
  }
  closedir(d);
  return found;
}

double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
