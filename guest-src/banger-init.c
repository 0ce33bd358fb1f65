/*
 * banger-init: the whole of banger's generated initramfs logic.
 *
 * Contract (kept in step with src/kernel/initramfs.ts):
 *   /etc/banger-modules  one module path per line, already in modules.dep order
 *   kernel cmdline       banger.root=<virtio serial> (or root=/dev/X), banger.rootfstype=ext4,
 *                        banger.init=/sbin/init, ro|rw
 * It loads the listed modules, waits for the root disk, mounts it, moves /dev,
 * /proc and /sys into it and executes the real init. Any failure prints one
 * "banger-init: FATAL ..." line on the console and powers the VM off, so the
 * host sees the VMM exit instead of a hung guest.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NEWROOT "/newroot"

static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("banger-init: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void fatal(const char *fmt, ...) {
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

/* Returns the value of key=value on the kernel command line, or NULL. */
static const char *param(const char *key, char *buf, size_t len) {
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

static int has_flag(const char *flag) {
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

static void load_modules(void) {
  FILE *f = fopen("/etc/banger-modules", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (!line[0]) continue;
    int fd = open(line, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fatal("cannot open module %s: %s", line, strerror(errno));
    if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST)
      fatal("cannot load module %s: %s", line, strerror(errno));
    close(fd);
  }
  fclose(f);
}

/* Finds /dev/<name> for the block device whose virtio serial equals want. */
static int find_by_serial(const char *want, char *out, size_t len) {
  DIR *d = opendir("/sys/block");
  if (!d) return 0;
  struct dirent *e;
  int found = 0;
  while (!found && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[300], serial[128] = {0};
    snprintf(path, sizeof path, "/sys/block/%s/serial", e->d_name);
    int fd = open(path, O_RDONLY);
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

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void) {
  mkdir("/dev", 0755);
  mkdir("/proc", 0555);
  mkdir("/sys", 0555);
  if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") != 0 && errno != EBUSY)
    fatal("mount /dev: %s", strerror(errno));
  int con = open("/dev/console", O_RDWR);
  if (con >= 0) {
    dup2(con, 0);
    dup2(con, 1);
    dup2(con, 2);
    if (con > 2) close(con);
  }
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
    fatal("mount /proc: %s", strerror(errno));
  if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
    fatal("mount /sys: %s", strerror(errno));

  int fd = open("/proc/cmdline", O_RDONLY);
  if (fd >= 0) {
    ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
    if (n > 0) cmdline[n] = 0;
    close(fd);
  }

  load_modules();

  char serial[128], root[300] = {0}, fstype[32] = "ext4", init[256] = "/sbin/init";
  param("banger.rootfstype", fstype, sizeof fstype);
  param("banger.init", init, sizeof init);
  const char *want_serial = param("banger.root", serial, sizeof serial);
  if (!want_serial && !param("root", root, sizeof root))
    fatal("no banger.root= or root= on the kernel command line");

  /* virtio-mmio probing is asynchronous: poll for the disk for up to 30 s. */
  double deadline = now() + 30.0;
  struct stat st;
  for (;;) {
    if (want_serial) {
      if (find_by_serial(want_serial, root, sizeof root) && stat(root, &st) == 0) break;
    } else if (stat(root, &st) == 0) {
      break;
    }
    if (now() > deadline)
      fatal("root disk %s did not appear within 30 s", want_serial ? want_serial : root);
    usleep(10000);
  }

  mkdir(NEWROOT, 0755);
  unsigned long flags = has_flag("ro") ? MS_RDONLY : 0;
  if (mount(root, NEWROOT, fstype, flags, NULL) != 0)
    fatal("mount %s (%s) on %s: %s", root, fstype, NEWROOT, strerror(errno));
  char target[300];
  const char *moves[] = {"/dev", "/proc", "/sys"};
  for (size_t i = 0; i < sizeof moves / sizeof moves[0]; i++) {
    snprintf(target, sizeof target, NEWROOT "%s", moves[i]);
    mkdir(target, 0755);
    if (mount(moves[i], target, NULL, MS_MOVE, NULL) != 0)
      fatal("move %s: %s", moves[i], strerror(errno));
  }
  if (chdir(NEWROOT) != 0) fatal("chdir: %s", strerror(errno));
  if (mount(".", "/", NULL, MS_MOVE, NULL) != 0) fatal("move root: %s", strerror(errno));
  if (chroot(".") != 0) fatal("chroot: %s", strerror(errno));
  if (chdir("/") != 0) fatal("chdir /: %s", strerror(errno));
  /* Checked only now: /sbin/init is usually an absolute symlink into the new root. */
  if (access(init, X_OK) != 0) fatal("%s is not executable in the root filesystem", init);
  say("switching to %s on %s", init, root);
  char *argv[] = {init, NULL};
  execv(init, argv);
  fatal("exec %s: %s", init, strerror(errno));
  return 1;
}
