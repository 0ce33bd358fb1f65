/* The host stream: output frames, protocol errors, input framing and dispatch. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

struct agent A;
uint8_t ag_chunk[AG_DATA_CHUNK];

void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("banger-agent: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

void set_nonblock_cloexec(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* ---- output to the host ------------------------------------------------ */

/* The output buffer only passes OUT_MAX when the host stops reading while we
 * keep producing, which the OUT_HIGH gates rule out: treat it as a lost host. */
void overflow(void) {
  say("output buffer full; dropping the connection");
  A.drop = DROP_BROKEN;
}

void emit(uint32_t id, uint8_t type, const void *data, size_t len) {
  if (ag_frame_bytes(&A.out, id, type, data, len) != 0) overflow();
}

void emit_error(uint32_t id, uint16_t code, int err_no, const char *fmt, ...) {
  char msg[AG_MAX_ERROR_MSG + 1];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (ag_frame_error(&A.out, id, code, (uint32_t)err_no, msg) != 0) overflow();
}

void emit_u32(uint32_t id, uint8_t type, uint32_t v) {
  uint8_t b[4];
  ag_put_u32(b, v);
  emit(id, type, b, 4);
}

/* ---- the connection ------------------------------------------------------ */

void conn_close(void) {
  reset_sessions();
  /* Say what we had to say (an ERROR, replies to the last requests) before closing. */
  if (A.mode != M_VIRTIO && A.drop != DROP_BROKEN && !A.closing) flush_blocking(CLOSE_FLUSH_MS);
  if (A.mode == M_STDIO) {
    say("host stream closed");
    exit(A.closing ? 2 : 0);
  }
  if (A.mode == M_VIRTIO) {
    A.host_absent = 1;
  } else {
    close_fd(&A.in_fd);
    A.out_fd = -1;
  }
  A.in_len = 0;
  ag_buf_clear(&A.out);
  A.hello = A.closing = A.drop = 0;
  A.resync = A.serial;
}

void conn_open(int in_fd, int out_fd) {
  A.in_fd = in_fd;
  A.out_fd = out_fd;
  A.in_len = 0;
  ag_buf_clear(&A.out);
  A.hello = A.closing = A.drop = A.host_absent = 0;
  A.resync = A.serial;
}

/* A malformed stream: say so on session 0, end every session, then close the
 * stream (or, on virtio-serial, look for the next HELLO). */
void protocol_error(uint16_t code, const char *fmt, ...) {
  char msg[AG_MAX_ERROR_MSG + 1];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  say("protocol error: %s", msg);
  if (ag_frame_error(&A.out, 0, code, 0, msg) != 0) overflow();
  reset_sessions();
  A.hello = 0;
  if (A.serial) {
    A.resync = 1;
  } else {
    A.closing = 1;
    A.closing_deadline = now_ms() + CLOSE_FLUSH_MS;
  }
}

/* Writes out the buffer, waiting at most ms (shutdown). */
void flush_blocking(int ms) {
  double deadline = now_ms() + ms;
  while (A.out_fd >= 0 && ag_buf_pending(&A.out) && now_ms() < deadline) {
    struct pollfd p = {.fd = A.out_fd, .events = POLLOUT};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = write(A.out_fd, A.out.data + A.out.off, ag_buf_pending(&A.out));
    if (n > 0) ag_buf_consume(&A.out, (size_t)n);
    else if (n < 0 && errno != EAGAIN && errno != EINTR) break;
  }
}

static const char *type_name(uint8_t t) {
  switch (t) {
    case AG_STDIN: return "STDIN";
    case AG_WINDOW: return "WINDOW";
    case AG_SIGNAL: return "SIGNAL";
    case AG_RESIZE: return "RESIZE";
    case AG_ABORT: return "ABORT";
    case AG_FILE_DATA: return "FILE_DATA";
    default: return "frame";
  }
}

void handle_frame(const struct ag_frame *f) {
  if (!A.hello) return op_hello(f);
  if (f->type == AG_HELLO) {
    if (!A.serial) return protocol_error(AG_E_PROTOCOL, "HELLO after the handshake");
    reset_sessions(); /* virtio-serial: the host came back without us seeing it leave */
    A.hello = 0;
    return op_hello(f);
  }
  switch (f->type) {
    case AG_HEALTH:
    case AG_EXEC:
    case AG_PORTS:
    case AG_FILE_PUT:
    case AG_FILE_GET:
    case AG_FILE_LIST:
    case AG_SHUTDOWN:
    case AG_SET_IDENTITY:
      if (f->session == 0) return protocol_error(AG_E_PROTOCOL, "frame type 0x%02x on session 0", f->type);
      if (session_find(f->session)) return protocol_error(AG_E_PROTOCOL, "session %u is already open", f->session);
      switch (f->type) {
        case AG_HEALTH: return op_health(f);
        case AG_EXEC: return op_exec(f);
        case AG_PORTS: return op_ports(f);
        case AG_FILE_PUT: return op_put(f);
        case AG_FILE_GET: return op_get(f);
        case AG_FILE_LIST: return op_list(f);
        case AG_SHUTDOWN: return op_shutdown(f);
        default: return op_identity(f);
      }
    case AG_STDIN:
    case AG_WINDOW:
    case AG_SIGNAL:
    case AG_RESIZE:
    case AG_ABORT:
    case AG_FILE_DATA: {
      if (f->session == 0) return protocol_error(AG_E_PROTOCOL, "%s on session 0", type_name(f->type));
      struct session *s = session_find(f->session);
      if (!s) return; /* racing the session's end */
      int fits = f->type == AG_ABORT || (f->type == AG_FILE_DATA && s->kind == S_PUT) ||
                 (f->type == AG_WINDOW && (s->kind == S_EXEC || s->kind == S_GET)) ||
                 ((f->type == AG_STDIN || f->type == AG_SIGNAL || f->type == AG_RESIZE) && s->kind == S_EXEC);
      if (!fits)
        return protocol_error(AG_E_PROTOCOL, "%s does not belong to session %u", type_name(f->type), f->session);
      switch (f->type) {
        case AG_STDIN: return stdin_frame(s, f);
        case AG_WINDOW: return window_frame(s, f);
        case AG_SIGNAL: return signal_frame(s, f);
        case AG_RESIZE: return resize_frame(s, f);
        case AG_ABORT: return abort_frame(s);
        default: return put_data(s, f);
      }
    }
    case AG_ERROR:
    case AG_OK:
    case AG_HEALTH_REPLY:
    case AG_EXEC_STARTED:
    case AG_STDOUT:
    case AG_STDERR:
    case AG_EXIT:
    case AG_PORTS_REPLY:
    case AG_FILE_INFO:
    case AG_FILE_LIST_REPLY:
      return protocol_error(AG_E_PROTOCOL, "frame type 0x%02x is sent by the agent, not the host", f->type);
    default:
      if (f->session == 0 || session_find(f->session))
        return protocol_error(AG_E_PROTOCOL, "unknown frame type 0x%02x on session %u", f->type, f->session);
      emit_error(f->session, AG_E_UNKNOWN_TYPE, 0, "frame type 0x%02x is unknown to this agent (%s)", f->type,
                 AG_NAME);
  }
}

/* Handles the complete frames in A.in while the output buffer has room. */
void process_input(void) {
  size_t pos = 0;
  while (!A.closing && !A.drop && ag_buf_pending(&A.out) < OUT_HIGH && pos < A.in_len) {
    const uint8_t *p = A.in + pos;
    size_t left = A.in_len - pos;
    if (A.resync) {
      long at = ag_find_hello(p, left);
      if (at < 0) {
        if (left >= AG_HELLO_PREFIX) pos += left - (AG_HELLO_PREFIX - 1);
        break;
      }
      pos += (size_t)at;
      A.resync = 0;
      continue;
    }
    struct ag_frame f;
    const char *why = "";
    long n = ag_frame_parse(p, left, &f, &why);
    if (n == 0) break;
    if (n < 0) {
      protocol_error(AG_E_PROTOCOL, "%s", why);
      pos += 1; /* virtio-serial: resync from the next byte */
      continue;
    }
    pos += (size_t)n;
    handle_frame(&f);
  }
  if (A.closing || A.drop) pos = A.in_len;
  memmove(A.in, A.in + pos, A.in_len - pos);
  A.in_len -= pos;
}
