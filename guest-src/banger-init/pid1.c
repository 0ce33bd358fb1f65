/*
 * Stage 2 of banger-init: PID 1 in the real root of an image without systemd.
 * Mounts the API filesystems, applies the banger.* identity (hostname, static
 * network, resolv.conf, the work disk on /root, the modules disk), then reaps
 * zombies and keeps the guest agent running for the life of the machine.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "init.h"

/* True when `path` is the root of a mount (another device than its parent, or /). */
static int is_mountpoint(const char *path) {
  struct stat a, b;
  char parent[PATH_MAX];
  if (stat(path, &a) != 0) return 0;
  snprintf(parent, sizeof parent, "%s/..", path);
  if (stat(parent, &b) != 0) return 0;
  return a.st_dev != b.st_dev || a.st_ino == b.st_ino;
}

static void mount_once(const char *src, const char *dir, const char *type, unsigned long flags, const char *data,
                       mode_t mode) {
  if (mkdir(dir, mode) != 0 && errno != EEXIST) say("mkdir %s: %s", dir, strerror(errno));
  if (is_mountpoint(dir)) return;
  if (mount(src, dir, type, flags, data) != 0) say("mount %s on %s: %s", type, dir, strerror(errno));
}

/* mkdir -p (parents 0755). */
static void mkdirs(const char *path) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    mkdir(p, 0755);
    *s = '/';
  }
  mkdir(p, 0755);
}

static void write_file(const char *path, const char *text) {
  unlink(path); /* a link (e.g. resolv.conf into /run/systemd) is replaced, never followed */
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) say("write %s: %s", path, strerror(errno));
  if (fd >= 0) close(fd);
}

/* Mounts the disk with virtio serial `serial` on `dir`, waiting for it up to `wait_s`. */
static void mount_disk(const char *serial, const char *dir, unsigned long flags, double wait_s) {
  char dev[300];
  double deadline = now() + wait_s;
  while (!find_by_serial(serial, dev, sizeof dev)) {
    if (now() > deadline) {
      say("no disk with serial %s for %s", serial, dir);
      return;
    }
    usleep(20000);
  }
  mkdirs(dir);
  if (mount(dev, dir, "ext4", flags, NULL) != 0) say("mount %s on %s: %s", dev, dir, strerror(errno));
}

static void setup_machine(void) {
  mount_once("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555);
  read_cmdline();
  mount_once("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555);
  mount_once("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", 0755);
  mount_once("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666", 0755);
  mount_once("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777);
  mount_once("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", 0755);
  static const char *const links[][2] = {
      {"/proc/self/fd", "/dev/fd"},
      {"/proc/self/fd/0", "/dev/stdin"},
      {"/proc/self/fd/1", "/dev/stdout"},
      {"/proc/self/fd/2", "/dev/stderr"},
  };
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) symlink(links[i][0], links[i][1]);
  if (mkdir("/tmp", 01777) == 0) chmod("/tmp", 01777);

  char v[256], ip[64], gw[64], mac[64];
  if (param("banger.hostname", v, sizeof v)) {
    if (sethostname(v, strlen(v)) != 0) say("sethostname %s: %s", v, strerror(errno));
    struct stat st;
    if (lstat("/etc/hosts", &st) != 0) {
      char hosts[400];
      snprintf(hosts, sizeof hosts, "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t%s\n", v);
      mkdir("/etc", 0755);
      write_file("/etc/hosts", hosts);
    }
  }
  net_up(param("banger.mac", mac, sizeof mac), param("banger.ip", ip, sizeof ip), param("banger.gw", gw, sizeof gw));
  if (param("banger.dns", v, sizeof v)) {
    char text[300];
    snprintf(text, sizeof text, "nameserver %s\n", v);
    mkdir("/etc", 0755);
    write_file("/etc/resolv.conf", text);
  }
  if (param("banger.modules", v, sizeof v)) {
    struct utsname u;
    char dir[PATH_MAX];
    if (uname(&u) == 0) {
      snprintf(dir, sizeof dir, "/lib/modules/%s", u.release);
      mount_disk(v, dir, MS_RDONLY, 5.0);
    }
  }
  if (param("banger.work", v, sizeof v)) mount_disk(v, "/root", MS_NOATIME, 10.0);
}

static pid_t spawn_agent(void) {
  pid_t pid = fork();
  if (pid < 0) {
    say("fork: %s", strerror(errno));
    return 0;
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    if (chdir("/") != 0) _exit(127);
    char *argv[] = {AGENT_PATH, NULL};
    char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=linux",
                    NULL};
    execve(AGENT_PATH, argv, envp);
    say("exec %s: %s", AGENT_PATH, strerror(errno));
    _exit(127);
  }
  return pid;
}

static void reap_all(void) {
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

/* Reaps until no process is left (every one is PID 1's child by then), for at most `ms`. */
static void reap_until_none(int ms) {
  for (int waited = 0;; waited += 50) {
    reap_all();
    if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD) return;
    if (waited >= ms) return;
    usleep(50000);
  }
}

/* Undoes the octal escapes (\040 for a space) of a /proc/self/mounts field, in place. */
static void unescape_mount_field(char *s) {
  char *o = s;
  for (char *i = s; *i; i++) {
    if (i[0] == '\\' && i[1] >= '0' && i[1] <= '3' && i[2] >= '0' && i[2] <= '7' && i[3] >= '0' && i[3] <= '7') {
      *o++ = (char)((i[1] - '0') * 64 + (i[2] - '0') * 8 + (i[3] - '0'));
      i += 3;
    } else {
      *o++ = *i;
    }
  }
  *o = 0;
}

/* True for /proc, /sys, /dev and what is below them: the kernel's own, kept to the end. */
static int is_api_mount(const char *dir) {
  static const char *const api[] = {"/proc", "/sys", "/dev"};
  for (size_t i = 0; i < sizeof api / sizeof api[0]; i++) {
    size_t n = strlen(api[i]);
    if (strncmp(dir, api[i], n) == 0 && (dir[n] == 0 || dir[n] == '/')) return 1;
  }
  return 0;
}

/*
 * Unmounts every filesystem but / and the API ones, innermost first (a busy one is
 * remounted read-only instead), then remounts / read-only: ext4 leaves a clean
 * journal, so the next boot has nothing to replay.
 */
static void unmount_all(void) {
  enum { MAX_MOUNTS = 128 };
  static char dirs[MAX_MOUNTS][PATH_MAX];
  int n = 0;
  FILE *f = fopen("/proc/self/mounts", "re");
  if (f) {
    char line[2 * PATH_MAX + 256], dir[PATH_MAX];
    while (n < MAX_MOUNTS && fgets(line, sizeof line, f)) {
      if (sscanf(line, "%*s %4095s", dir) != 1) continue;
      unescape_mount_field(dir);
      if (strcmp(dir, "/") == 0 || is_api_mount(dir)) continue;
      snprintf(dirs[n++], PATH_MAX, "%s", dir);
    }
    fclose(f);
  } else {
    say("read /proc/self/mounts: %s", strerror(errno));
  }
  for (int i = n - 1; i >= 0; i--) {
    if (umount2(dirs[i], 0) == 0) continue;
    int e = errno;
    if (mount(NULL, dirs[i], NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0)
      say("unmount %s: %s; remount read-only: %s", dirs[i], strerror(e), strerror(errno));
  }
  sync();
  if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0) say("remount / read-only: %s", strerror(errno));
}

/* Ends every process, unmounts, syncs and powers off (or reboots). */
static void __attribute__((noreturn)) end_machine(int how) {
  say("%s", how == RB_AUTOBOOT ? "rebooting" : "powering off");
  kill(-1, SIGTERM);
  reap_until_none(2000);
  kill(-1, SIGKILL);
  reap_until_none(2000);
  sync();
  unmount_all();
  sync();
  reboot(how);
  fatal("reboot: %s", strerror(errno));
}

void pid1_main(void) {
  setup_machine();
  sigset_t set;
  sigemptyset(&set);
  int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGPWR, SIGHUP};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&set, sigs[i]);
  sigprocmask(SIG_BLOCK, &set, NULL);

  pid_t agent = spawn_agent();
  double started = now(), respawn_at = 0;
  say("ready: PID 1 with the guest agent (%s)", AGENT_PATH);
  for (;;) {
    struct timespec ts = {.tv_sec = 1, .tv_nsec = 0};
    siginfo_t si;
    int sig = sigtimedwait(&set, &si, &ts);
    if (sig == SIGTERM || sig == SIGUSR2 || sig == SIGPWR) end_machine(RB_POWER_OFF);
    if (sig == SIGINT) end_machine(RB_AUTOBOOT);
    int status;
    pid_t p;
    while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
      if (p != agent) continue;
      if (WIFSIGNALED(status))
        say("the guest agent was killed by signal %d; restarting it", WTERMSIG(status));
      else
        say("the guest agent exited with status %d; restarting it", WEXITSTATUS(status));
      agent = 0;
      /* One that dies at once is restarted once a second, never in a tight loop. */
      respawn_at = now() - started < 1.0 ? now() + 1.0 : now();
    }
    if (agent == 0 && now() >= respawn_at) {
      agent = spawn_agent();
      started = now();
    }
  }
}
