/*
 * banger-init: the whole of banger's generated initramfs logic, and PID 1 of
 * images without systemd.
 *
 * Contract (kept in step with src/kernel/initramfs.ts):
 *   /etc/banger-modules  one module path per line, already in modules.dep order
 *   kernel cmdline       banger.root=<virtio serial or /dev/X> (or root=/dev/X), banger.rootfstype=ext4,
 *                        banger.init=<path>|agent (optional), ro|rw
 * Stage 1 (the initramfs /init): loads the listed modules, waits for the root
 * disk, mounts it, moves /dev, /proc and /sys into it and switches root. Then:
 *   - banger.init=<path> given: executes it; banger.init=agent: stage 2.
 *   - the image has systemd (/sbin/init resolves to it, or it is installed at
 *     /lib/systemd/systemd without the /sbin/init link): executes systemd.
 *   - otherwise stage 2 (banger-init/pid1.c): banger-init stays PID 1 in the
 *     real root, sets the machine up from the banger.* parameters, reaps
 *     zombies and keeps the guest agent running.
 * Started as PID 1 outside an initramfs (init=<its path>), it goes to stage 2.
 * Any failure prints one "banger-init: FATAL ..." line on the console and powers
 * the VM off, so the host sees the VMM exit instead of a hung guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "banger-init/init.h"

#ifndef RAMFS_MAGIC
#define RAMFS_MAGIC 0x858458f6
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

#define NEWROOT "/newroot"

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

/* True when / is the initramfs (rootfs is a ramfs or tmpfs), false in a real root filesystem. */
static int in_initramfs(void) {
  struct statfs sf;
  if (statfs("/", &sf) != 0) return 1;
  return sf.f_type == (typeof(sf.f_type))RAMFS_MAGIC || sf.f_type == (typeof(sf.f_type))TMPFS_MAGIC;
}

/* The image boots systemd when /sbin/init resolves to it, or when systemd is installed without that link. */
static const char *systemd_init(void) {
  char real[PATH_MAX];
  if (realpath("/sbin/init", real) != NULL) {
    const char *base = strrchr(real, '/');
    if (base && strcmp(base + 1, "systemd") == 0 && access(real, X_OK) == 0) return "/sbin/init";
  }
  static const char *const paths[] = {"/lib/systemd/systemd", "/usr/lib/systemd/systemd"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    if (access(paths[i], X_OK) == 0) return paths[i];
  return NULL;
}

int main(void) {
  if (getpid() == 1 && !in_initramfs()) pid1_main(); /* booted with init=<this program> */
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

  read_cmdline();

  load_modules();

  char serial[128], root[300] = {0}, fstype[32] = "ext4", init[256] = "";
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
  /* Decided only now: /sbin/init is usually an absolute symlink into the new root. */
  if (strcmp(init, "agent") == 0) pid1_main();
  if (!init[0]) {
    const char *sd = systemd_init();
    if (!sd) {
      say("no systemd in the image on %s: banger-init stays PID 1 and runs the guest agent", root);
      pid1_main();
    }
    snprintf(init, sizeof init, "%s", sd);
  }
  if (access(init, X_OK) != 0) fatal("%s is not executable in the root filesystem", init);
  say("switching to %s on %s", init, root);
  char *argv[] = {init, NULL};
  execv(init, argv);
  fatal("exec %s: %s", init, strerror(errno));
  return 1;
}
