/* Shared by banger-init's parts (guest-src/banger-init.c is the entry point). */
#ifndef BANGER_INIT_H
#define BANGER_INIT_H

#include <stddef.h>

/* The guest agent injected into every image (src/guest/assets.ts AGENT_PATH). */
#define AGENT_PATH "/usr/local/libexec/banger-agent"

void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* The kernel command line, read once by read_cmdline(). */
void read_cmdline(void);
/* Value of key=value on the kernel command line (copied into buf), or NULL. */
const char *param(const char *key, char *buf, size_t len);
int has_flag(const char *flag);

/* Finds /dev/<name> of the block device whose virtio serial equals want; a want of /dev/X is X itself, once it exists. */
int find_by_serial(const char *want, char *out, size_t len);
double now(void);

/* PID 1 in the real root of an image without systemd (pid1.c); never returns. */
void pid1_main(void) __attribute__((noreturn));

/* Static network by ioctl (net.c): lo up, then the interface with `mac` gets ip/prefix and a default route. */
void net_up(const char *mac, const char *cidr, const char *gw);

#endif
