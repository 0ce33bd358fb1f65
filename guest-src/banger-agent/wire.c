/* The agent's wire format; see wire.h and docs/agent-protocol.md. */
#include "wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void ag_put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

void ag_put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

void ag_put_u64(uint8_t *p, uint64_t v) {
  ag_put_u32(p, (uint32_t)(v >> 32));
  ag_put_u32(p + 4, (uint32_t)v);
}

long ag_frame_parse(const uint8_t *buf, size_t len, struct ag_frame *out, const char **why) {
  if (len < AG_HEADER) return 0;
  uint32_t length = be32(buf);
  if (length > AG_MAX_PAYLOAD) {
    *why = "payload length exceeds the maximum 131072";
    return -1;
  }
  if (len < AG_HEADER + (size_t)length) return 0;
  out->length = length;
  out->session = be32(buf + 4);
  out->type = buf[8];
  out->payload = buf + AG_HEADER;
  return (long)(AG_HEADER + length);
}

static const uint8_t hello_prefix[AG_HELLO_PREFIX] = {0, 0, 0, 12, 0, 0, 0, 0, AG_HELLO,
                                                      'B', 'A', 'N', 'G', 'E', 'R', 'A', 'G'};

long ag_find_hello(const uint8_t *buf, size_t len) {
  if (len < AG_HELLO_PREFIX) return -1;
  for (size_t i = 0; i + AG_HELLO_PREFIX <= len; i++)
    if (buf[i] == 0 && memcmp(buf + i, hello_prefix, AG_HELLO_PREFIX) == 0) return (long)i;
  return -1;
}

void ag_reader_init(struct ag_reader *r, const uint8_t *p, size_t len) {
  r->p = p;
  r->left = len;
  r->bad = 0;
}

static const uint8_t *take(struct ag_reader *r, size_t n) {
  if (r->bad || r->left < n) {
    r->bad = 1;
    return NULL;
  }
  const uint8_t *p = r->p;
  r->p += n;
  r->left -= n;
  return p;
}

uint8_t ag_get_u8(struct ag_reader *r) {
  const uint8_t *p = take(r, 1);
  return p ? p[0] : 0;
}

uint16_t ag_get_u16(struct ag_reader *r) {
  const uint8_t *p = take(r, 2);
  return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t ag_get_u32(struct ag_reader *r) {
  const uint8_t *p = take(r, 4);
  return p ? be32(p) : 0;
}

uint64_t ag_get_u64(struct ag_reader *r) {
  uint64_t hi = ag_get_u32(r);
  return hi << 32 | ag_get_u32(r);
}

const uint8_t *ag_get_str(struct ag_reader *r, uint32_t *len) {
  *len = ag_get_u32(r);
  if (r->bad) return NULL;
  const uint8_t *p = take(r, *len);
  if (!p) *len = 0;
  return p;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

/* The payload must have been read exactly. */
static int finish(struct ag_reader *r, const char *what, char *err, size_t errlen) {
  if (r->bad) return fail(err, errlen, "%s payload is truncated", what);
  if (r->left) return fail(err, errlen, "%s payload has %zu trailing bytes", what, r->left);
  return 0;
}

int ag_decode_hello(const uint8_t *p, size_t len, struct ag_hello *out, char *err, size_t errlen) {
  if (len != 12 || memcmp(p, AG_MAGIC, AG_MAGIC_LEN) != 0)
    return fail(err, errlen, "HELLO must be 12 bytes starting with \"BANGERAG\"");
  struct ag_reader r;
  ag_reader_init(&r, p + AG_MAGIC_LEN, len - AG_MAGIC_LEN);
  out->min_version = ag_get_u16(&r);
  out->max_version = ag_get_u16(&r);
  return finish(&r, "HELLO", err, errlen);
}

/* Copies a string into *dst (NUL-terminated); rejects embedded NULs. */
static int copy_str(struct ag_reader *r, char **dst, char **cursor, const char *what, long index, char *err,
                    size_t errlen) {
  uint32_t n;
  const uint8_t *s = ag_get_str(r, &n);
  if (!s) return fail(err, errlen, "EXEC payload is truncated in %s", what);
  if (memchr(s, 0, n)) {
    if (index >= 0) return fail(err, errlen, "%s[%ld] contains a NUL byte", what, index);
    return fail(err, errlen, "%s contains a NUL byte", what);
  }
  memcpy(*cursor, s, n);
  (*cursor)[n] = 0;
  *dst = *cursor;
  *cursor += n + 1;
  return 0;
}

void ag_exec_req_free(struct ag_exec_req *req) {
  free(req->argv);
  free(req->envp);
  free(req->strings);
  req->argv = req->envp = NULL;
  req->strings = NULL;
}

int ag_decode_exec(const uint8_t *p, size_t len, struct ag_exec_req *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  struct ag_reader r;
  ag_reader_init(&r, p, len);
  out->flags = ag_get_u32(&r);
  out->uid = ag_get_u32(&r);
  out->gid = ag_get_u32(&r);
  out->rows = ag_get_u16(&r);
  out->cols = ag_get_u16(&r);
  if (r.bad) return fail(err, errlen, "EXEC payload is truncated");
  if (out->flags & ~AG_EXEC_PTY) return fail(err, errlen, "EXEC flags 0x%x has unknown bits", out->flags);
  /* Every string has a 4-byte length prefix: len bytes hold all strings plus their NULs. */
  out->strings = malloc(len + 1);
  if (!out->strings) return fail(err, errlen, "out of memory");
  char *cursor = out->strings;
  if (copy_str(&r, &out->cwd, &cursor, "cwd", -1, err, errlen)) goto bad;
  out->argc = ag_get_u32(&r);
  if (r.bad) {
    fail(err, errlen, "EXEC payload is truncated before argc");
    goto bad;
  }
  if (out->argc < 1 || out->argc > AG_MAX_ARGS) {
    fail(err, errlen, "argc %u is not within 1..%d", out->argc, AG_MAX_ARGS);
    goto bad;
  }
  /* argc is bounded by the payload too: each argument takes at least 4 bytes. */
  if ((size_t)out->argc * 4 > r.left) {
    fail(err, errlen, "EXEC payload is truncated in argv");
    goto bad;
  }
  out->argv = calloc((size_t)out->argc + 1, sizeof(char *));
  if (!out->argv) {
    fail(err, errlen, "out of memory");
    goto bad;
  }
  for (uint32_t i = 0; i < out->argc; i++)
    if (copy_str(&r, &out->argv[i], &cursor, "argv", (long)i, err, errlen)) goto bad;
  if (!out->argv[0][0]) {
    fail(err, errlen, "argv[0] is empty");
    goto bad;
  }
  out->envc = ag_get_u32(&r);
  if (r.bad) {
    fail(err, errlen, "EXEC payload is truncated before envc");
    goto bad;
  }
  if (out->envc > AG_MAX_ARGS || (size_t)out->envc * 4 > r.left) {
    fail(err, errlen, "envc %u is more than the payload or %d holds", out->envc, AG_MAX_ARGS);
    goto bad;
  }
  out->envp = calloc((size_t)out->envc + 1, sizeof(char *));
  if (!out->envp) {
    fail(err, errlen, "out of memory");
    goto bad;
  }
  for (uint32_t i = 0; i < out->envc; i++) {
    if (copy_str(&r, &out->envp[i], &cursor, "env", (long)i, err, errlen)) goto bad;
    char *eq = strchr(out->envp[i], '=');
    if (!eq || eq == out->envp[i]) {
      fail(err, errlen, "env[%u] is not NAME=value", i);
      goto bad;
    }
  }
  if (finish(&r, "EXEC", err, errlen)) goto bad;
  return 0;
bad:
  ag_exec_req_free(out);
  return -1;
}

static int decode_path(struct ag_reader *r, char *path, size_t pathlen, const char *what, char *err,
                       size_t errlen) {
  uint32_t n;
  const uint8_t *s = ag_get_str(r, &n);
  if (!s) return fail(err, errlen, "%s payload is truncated in path", what);
  if (n == 0 || n >= pathlen || n > AG_MAX_PATH)
    return fail(err, errlen, "%s path length %u is not within 1..%d", what, n, AG_MAX_PATH);
  if (memchr(s, 0, n)) return fail(err, errlen, "%s path contains a NUL byte", what);
  if (s[0] != '/') return fail(err, errlen, "%s path must be absolute", what);
  memcpy(path, s, n);
  path[n] = 0;
  return 0;
}

int ag_decode_put(const uint8_t *p, size_t len, struct ag_put_req *out, char *err, size_t errlen) {
  struct ag_reader r;
  ag_reader_init(&r, p, len);
  out->mode = ag_get_u32(&r);
  out->uid = ag_get_u32(&r);
  out->gid = ag_get_u32(&r);
  out->size = ag_get_u64(&r);
  if (r.bad) return fail(err, errlen, "FILE_PUT payload is truncated");
  if (out->mode > 07777) return fail(err, errlen, "FILE_PUT mode 0%o is more than permission bits", out->mode);
  if (decode_path(&r, out->path, sizeof out->path, "FILE_PUT", err, errlen)) return -1;
  return finish(&r, "FILE_PUT", err, errlen);
}

int ag_decode_get(const uint8_t *p, size_t len, char *path, size_t pathlen, char *err, size_t errlen) {
  struct ag_reader r;
  ag_reader_init(&r, p, len);
  if (decode_path(&r, path, pathlen, "FILE_GET", err, errlen)) return -1;
  return finish(&r, "FILE_GET", err, errlen);
}

int ag_decode_list(const uint8_t *p, size_t len, uint32_t *max_entries, char *path, size_t pathlen, char *err,
                   size_t errlen) {
  struct ag_reader r;
  ag_reader_init(&r, p, len);
  *max_entries = ag_get_u32(&r);
  if (!r.bad && (*max_entries == 0 || *max_entries > AG_MAX_LIST)) {
    snprintf(err, errlen, "FILE_LIST max_entries %u is not within 1..%d", *max_entries, AG_MAX_LIST);
    return -1;
  }
  if (decode_path(&r, path, pathlen, "FILE_LIST", err, errlen)) return -1;
  return finish(&r, "FILE_LIST", err, errlen);
}

int ag_decode_u32(const uint8_t *p, size_t len, uint32_t *out, const char *what, char *err, size_t errlen) {
  struct ag_reader r;
  ag_reader_init(&r, p, len);
  *out = ag_get_u32(&r);
  return finish(&r, what, err, errlen);
}

int ag_decode_resize(const uint8_t *p, size_t len, uint16_t *rows, uint16_t *cols, char *err, size_t errlen) {
  struct ag_reader r;
  ag_reader_init(&r, p, len);
  *rows = ag_get_u16(&r);
  *cols = ag_get_u16(&r);
  return finish(&r, "RESIZE", err, errlen);
}

int ag_decode_shutdown(const uint8_t *p, size_t len, int *reboot_instead, char *err, size_t errlen) {
  struct ag_reader r;
  ag_reader_init(&r, p, len);
  uint8_t action = ag_get_u8(&r);
  if (finish(&r, "SHUTDOWN", err, errlen)) return -1;
  if (action > 1) return fail(err, errlen, "SHUTDOWN action %u is not 0 (poweroff) or 1 (reboot)", action);
  *reboot_instead = action == 1;
  return 0;
}

static int hostname_ok(const uint8_t *s, size_t n) {
  if (n < 1 || n > AG_MAX_HOSTNAME) return 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
      return 0;
  }
  return 1;
}

int ag_decode_identity(const uint8_t *p, size_t len, struct ag_identity *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  struct ag_reader r;
  ag_reader_init(&r, p, len);
  while (r.left) {
    uint8_t tag = ag_get_u8(&r);
    uint16_t n = ag_get_u16(&r);
    const uint8_t *v = take(&r, n);
    if (!v) return fail(err, errlen, "SET_IDENTITY payload is truncated in a record");
    switch (tag) {
      case 1:
        if (!hostname_ok(v, n))
          return fail(err, errlen, "hostname must be 1..%d characters of A-Z a-z 0-9 . -", AG_MAX_HOSTNAME);
        memcpy(out->hostname, v, n);
        out->hostname[n] = 0;
        out->has_hostname = 1;
        break;
      case 2:
        if (n < 1 || n > AG_MAX_ENTROPY) return fail(err, errlen, "entropy must be 1..%d bytes", AG_MAX_ENTROPY);
        memcpy(out->entropy, v, n);
        out->entropy_len = n;
        break;
      case 3: {
        int zero = 1;
        for (size_t i = 0; i < n; i++) zero &= v[i] == 0;
        if (n != 16 || zero) return fail(err, errlen, "machine-id must be 16 bytes, not all zero (got %u)", n);
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 16; i++) {
          out->machine_id[2 * i] = hex[v[i] >> 4];
          out->machine_id[2 * i + 1] = hex[v[i] & 15];
        }
        out->machine_id[32] = 0;
        out->has_machine_id = 1;
        break;
      }
      case 4: {
        uint64_t ns = 0;
        for (size_t i = 0; i < n && n == 8; i++) ns = ns << 8 | v[i];
        if (n != 8 || ns == 0) return fail(err, errlen, "clock must be a non-zero u64 of ns (got %u bytes)", n);
        out->clock_ns = ns;
        break;
      }
      case 5:
        if (n != 15 && n != 19) return fail(err, errlen, "network record must be 15 or 19 bytes (got %u)", n);
        if (v[4] < 1 || v[4] > 32) return fail(err, errlen, "network prefix %u is not within 1..32", v[4]);
        if (v[9] & 1) return fail(err, errlen, "network MAC is a multicast address");
        memcpy(out->ip, v, 4);
        out->prefix = v[4];
        memcpy(out->gateway, v + 5, 4);
        memcpy(out->mac, v + 9, 6);
        out->has_dns = n == 19;
        if (out->has_dns) memcpy(out->dns, v + 15, 4);
        out->has_network = 1;
        break;
      case 6:
      case 7:
        if (n) return fail(err, errlen, "%s record takes no value (got %u bytes)", tag == 6 ? "reseed" : "open-gate", n);
        if (tag == 6) out->reseed = 1;
        else out->open_gate = 1;
        break;
      case 8:
        if (n) return fail(err, errlen, "rng-sample record takes no value (got %u bytes)", n);
        out->rng_sample = 1;
        break;
      default:
        return fail(err, errlen, "SET_IDENTITY record tag %u is unknown to this agent", tag);
    }
  }
  return 0;
}

size_t ag_buf_pending(const struct ag_buf *b) {
  return b->len - b->off;
}

void ag_buf_consume(struct ag_buf *b, size_t n) {
  b->off += n;
  if (b->off == b->len) b->off = b->len = 0;
}

void ag_buf_clear(struct ag_buf *b) {
  b->off = b->len = 0;
}

uint8_t *ag_frame_begin(struct ag_buf *b, uint32_t session, uint8_t type, size_t payload_len) {
  size_t need = AG_HEADER + payload_len;
  if (payload_len > AG_MAX_PAYLOAD || ag_buf_pending(b) + need > b->max) return NULL;
  if (b->len + need > b->cap) {
    if (b->off) {
      memmove(b->data, b->data + b->off, b->len - b->off);
      b->len -= b->off;
      b->off = 0;
    }
    if (b->len + need > b->cap) {
      size_t cap = b->cap ? b->cap : 65536;
      while (cap < b->len + need) cap *= 2;
      if (cap > b->max) cap = b->max;
      uint8_t *d = realloc(b->data, cap);
      if (!d) return NULL;
      b->data = d;
      b->cap = cap;
    }
  }
  uint8_t *h = b->data + b->len;
  ag_put_u32(h, (uint32_t)payload_len);
  ag_put_u32(h + 4, session);
  h[8] = type;
  b->len += need;
  return h + AG_HEADER;
}

int ag_frame_bytes(struct ag_buf *b, uint32_t session, uint8_t type, const void *data, size_t len) {
  uint8_t *p = ag_frame_begin(b, session, type, len);
  if (!p) return -1;
  if (len) memcpy(p, data, len);
  return 0;
}

int ag_frame_error(struct ag_buf *b, uint32_t session, uint16_t code, uint32_t err_no, const char *msg) {
  size_t n = strlen(msg);
  if (n > AG_MAX_ERROR_MSG) n = AG_MAX_ERROR_MSG;
  uint8_t *p = ag_frame_begin(b, session, AG_ERROR, 6 + n);
  if (!p) return -1;
  ag_put_u16(p, code);
  ag_put_u32(p + 2, err_no);
  memcpy(p + 6, msg, n);
  return 0;
}
