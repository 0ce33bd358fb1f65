/* One-shot operations: HELLO, HEALTH, PORTS, SHUTDOWN (SET_IDENTITY: identity.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ports.h"

#include "agent.h"

/* ---- operations ------------------------------------------------------------ */

void op_hello(const struct ag_frame *f) {
  struct ag_hello h;
  char err[256];
  if (f->type != AG_HELLO || f->session != 0)
    return protocol_error(AG_E_PROTOCOL, "the first frame must be HELLO on session 0 (got type 0x%02x on session %u)",
                          f->type, f->session);
  if (ag_decode_hello(f->payload, f->length, &h, err, sizeof err) != 0) return protocol_error(AG_E_PROTOCOL, "%s", err);
  if (h.min_version > AG_VERSION || h.max_version < AG_VERSION)
    return protocol_error(AG_E_VERSION, "the host speaks versions %u..%u, this agent speaks %d", h.min_version,
                          h.max_version, AG_VERSION);
  size_t nlen = strlen(AG_NAME);
  uint8_t *p = ag_frame_begin(&A.out, 0, AG_HELLO, AG_MAGIC_LEN + 6 + nlen);
  if (!p) return overflow();
  memcpy(p, AG_MAGIC, AG_MAGIC_LEN);
  ag_put_u16(p + 8, AG_VERSION);
  ag_put_u32(p + 10, AG_MAX_PAYLOAD);
  memcpy(p + 14, AG_NAME, nlen);
  A.hello = 1;
}

void op_health(const struct ag_frame *f) {
  if (f->length) return emit_error(f->session, AG_E_BAD_REQUEST, 0, "HEALTH takes no payload");
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  size_t nlen = strlen(AG_NAME);
  uint8_t *p = ag_frame_begin(&A.out, f->session, AG_HEALTH_REPLY, 12 + nlen);
  if (!p) return overflow();
  ag_put_u64(p, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
  ag_put_u32(p + 8, (uint32_t)sessions_open());
  memcpy(p + 12, AG_NAME, nlen);
}

void op_ports(const struct ag_frame *f) {
  static struct ag_port ports[(AG_MAX_PAYLOAD - 5) / AG_PORT_ENTRY];
  if (f->length) return emit_error(f->session, AG_E_BAD_REQUEST, 0, "PORTS takes no payload");
  int truncated;
  size_t n = ag_ports_read("/proc/net", ports, sizeof ports / sizeof ports[0], &truncated);
  uint8_t *p = ag_frame_begin(&A.out, f->session, AG_PORTS_REPLY, 5 + n * AG_PORT_ENTRY);
  if (!p) return overflow();
  p[0] = (uint8_t)truncated;
  ag_put_u32(p + 1, (uint32_t)n);
  for (size_t i = 0; i < n; i++) ag_port_encode(&ports[i], p + 5 + i * AG_PORT_ENTRY);
}

#ifndef AGENT_HOST_BUILD
/* sd_booted(3): systemd is PID 1 when /run/systemd/system is a directory. */
static int pid1_is_systemd(void) {
  struct stat st;
  return lstat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode);
}
#endif

#ifdef AGENT_HOST_BUILD
int write_test_file(const char *name, const void *data, size_t len, int append) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", A.test_dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
  if (fd < 0) return -1;
  ssize_t n = write(fd, data, len);
  close(fd);
  return n == (ssize_t)len ? 0 : -1;
}
#endif

void op_shutdown(const struct ag_frame *f) {
  char err[128];
  int reboot_instead;
  if (ag_decode_shutdown(f->payload, f->length, &reboot_instead, err, sizeof err) != 0)
    return emit_error(f->session, AG_E_BAD_REQUEST, 0, "%s", err);
  emit(f->session, AG_OK, NULL, 0);
  flush_blocking(CLOSE_FLUSH_MS);
  say("%s requested by the host", reboot_instead ? "reboot" : "poweroff");
#ifdef AGENT_HOST_BUILD
  const char *what = reboot_instead ? "reboot\n" : "poweroff\n";
  write_test_file("poweroff", what, strlen(what), 0);
  reset_sessions();
  exit(0);
#else
  sync();
  if (pid1_is_systemd()) {
    /* systemd(1): SIGRTMIN+4 starts poweroff.target, SIGRTMIN+5 reboot.target: units stop and
       filesystems are unmounted in order (a bare reboot() here would leave journals to replay). */
    if (kill(1, reboot_instead ? SIGRTMIN + 5 : SIGRTMIN + 4) == 0) return;
    say("cannot signal systemd: %s", strerror(errno));
  } else if (kill(1, reboot_instead ? SIGINT : SIGTERM) == 0) {
    /* banger-init (pid1.c) ends every process, this agent included, unmounts and powers off.
       Still here after the wait: PID 1 is something else that ignored the signal. */
    for (int i = 0; i < 50; i++) usleep(100000);
    say("PID 1 did not act on the signal; powering off here");
  }
  sync();
  reboot(reboot_instead ? RB_AUTOBOOT : RB_POWER_OFF);
  say("reboot(): %s", strerror(errno));
#endif
}
