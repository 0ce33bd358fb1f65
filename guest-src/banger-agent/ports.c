/* Listening sockets from /proc/net; see ports.h. */
#include "ports.h"

#include <stdio.h>
#include <string.h>

#include "wire.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Parses exactly n hex digits at *s into v; advances *s. */
static int hexn(const char **s, int n, uint32_t *v) {
  uint32_t x = 0;
  for (int i = 0; i < n; i++) {
    int d = hexval((*s)[i]);
    if (d < 0) return 0;
    x = x << 4 | (uint32_t)d;
  }
  *s += n;
  *v = x;
  return 1;
}

static const char *skip_spaces(const char *s) {
  while (*s == ' ' || *s == '\t') s++;
  return s;
}

static const char *skip_field(const char *s) {
  while (*s && *s != ' ' && *s != '\t' && *s != '\n') s++;
  return s;
}

/* Parses "ADDR:PORT" where ADDR is 8 (v4) or 32 (v6) hex digits of native-order 32-bit words. */
static int parse_endpoint(const char **s, int words, uint8_t *addr, uint16_t *port) {
  for (int w = 0; w < words; w++) {
    uint32_t v;
    if (!hexn(s, 8, &v)) return 0;
    memcpy(addr + 4 * w, &v, 4); /* the kernel prints each word as a native integer */
  }
  if (**s != ':') return 0;
  (*s)++;
  uint32_t p;
  if (!hexn(s, 4, &p)) return 0;
  *port = (uint16_t)p;
  return 1;
}

int ag_port_parse_line(const char *line, uint8_t protocol, uint8_t family, struct ag_port *out) {
  int words = family == 6 ? 4 : 1;
  const char *s = skip_spaces(line);
  /* "sl:" */
  const char *colon = s;
  while (*colon >= '0' && *colon <= '9') colon++;
  if (colon == s || *colon != ':') return 0;
  s = skip_spaces(colon + 1);
  memset(out, 0, sizeof *out);
  uint8_t rem[16];
  uint16_t rem_port, local_port;
  if (!parse_endpoint(&s, words, out->addr, &local_port)) return 0;
  s = skip_spaces(s);
  if (!parse_endpoint(&s, words, rem, &rem_port)) return 0;
  s = skip_spaces(s);
  uint32_t state;
  if (!hexn(&s, 2, &state)) return 0;
  /* tx_queue:rx_queue, tr:tm->when, retrnsmt, then uid */
  for (int i = 0; i < 3; i++) {
    s = skip_spaces(s);
    const char *e = skip_field(s);
    if (e == s) return 0;
    s = e;
  }
  s = skip_spaces(s);
  uint32_t uid = 0;
  int digits = 0;
  while (*s >= '0' && *s <= '9' && digits < 10) {
    uid = uid * 10 + (uint32_t)(*s - '0');
    s++;
    digits++;
  }
  if (!digits || (*s != ' ' && *s != '\t' && *s != '\n' && *s != 0)) return 0;
  if (protocol == 6 && state != 0x0A) return 0;                  /* TCP_LISTEN */
  if (protocol == 17 && (state != 0x07 || rem_port != 0)) return 0; /* bound, unconnected */
  if (local_port == 0) return 0;
  out->protocol = protocol;
  out->family = family;
  out->port = local_port;
  out->uid = uid;
  return 1;
}

void ag_port_encode(const struct ag_port *p, uint8_t *out) {
  out[0] = p->protocol;
  out[1] = p->family;
  ag_put_u16(out + 2, p->port);
  memcpy(out + 4, p->addr, 16);
  ag_put_u32(out + 20, p->uid);
}

size_t ag_ports_read(const char *dir, struct ag_port *out, size_t max, int *truncated) {
  static const struct {
    const char *name;
    uint8_t protocol, family;
  } tables[] = {{"tcp", 6, 4}, {"tcp6", 6, 6}, {"udp", 17, 4}, {"udp6", 17, 6}};
  size_t n = 0;
  *truncated = 0;
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, tables[t].name);
    FILE *f = fopen(path, "re");
    if (!f) continue;
    char line[512];
    while (fgets(line, sizeof line, f)) {
      size_t l = strlen(line);
      if (l && line[l - 1] != '\n' && !feof(f)) {
        /* longer than any real line: skip the rest of it */
        int c;
        while ((c = fgetc(f)) != EOF && c != '\n') {
        }
        continue;
      }
      struct ag_port p;
      if (!ag_port_parse_line(line, tables[t].protocol, tables[t].family, &p)) continue;
      if (n == max) {
        *truncated = 1;
        break;
      }
      out[n++] = p;
    }
    fclose(f);
  }
  return n;
}
