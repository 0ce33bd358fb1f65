/* EXEC sessions: start, stdin, output with credit, signals, resize, abort, exit. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "spawn.h"

#include "agent.h"

void op_exec(const struct ag_frame *f) {
  struct ag_exec_req req;
  struct ag_child child;
  char err[600];
  int err_no;
  if (sessions_open() >= AG_MAX_SESSIONS)
    return emit_error(f->session, AG_E_TOO_MANY, 0, "the agent already runs %d sessions", AG_MAX_SESSIONS);
  if (ag_decode_exec(f->payload, f->length, &req, err, sizeof err) != 0)
    return emit_error(f->session, AG_E_BAD_REQUEST, 0, "%s", err);
  int rc = ag_spawn(&req, &child, err, sizeof err, &err_no);
  ag_exec_req_free(&req);
  if (rc != 0) return emit_error(f->session, AG_E_SYSTEM, err_no, "%s", err);
  struct session *s = session_new(f->session, S_EXEC);
  s->pid = child.pid;
  s->running = 1;
  s->pty = child.pty;
  s->in_fd = child.in_fd;
  s->out_fd = child.out_fd;
  s->err_fd = child.err_fd;
  s->credit = AG_WINDOW_INITIAL;
  emit_u32(f->session, AG_EXEC_STARTED, (uint32_t)child.pid);
}

/* ---- in-session frames ------------------------------------------------------ */

void stdin_frame(struct session *s, const struct ag_frame *f) {
  if (f->length == 0) {
    if (s->pty) return; /* ^D is data with a terminal */
    s->stdin_eof = 1;
    if (!s->stdin_len) close_fd(&s->in_fd);
    return;
  }
  if (s->stdin_len + f->length > AG_WINDOW_INITIAL)
    return protocol_error(AG_E_PROTOCOL, "STDIN on session %u exceeds its window", s->id);
  int target = s->pty ? s->out_fd : s->in_fd;
  if (s->stdin_dead || s->stdin_eof || target < 0 || !s->running) {
    emit_u32(s->id, AG_WINDOW, f->length); /* nobody reads it: drop it, give the credit back */
    return;
  }
  if (!s->stdin_buf && !(s->stdin_buf = malloc(AG_WINDOW_INITIAL))) {
    emit_u32(s->id, AG_WINDOW, f->length);
    return;
  }
  memcpy(s->stdin_buf + s->stdin_len, f->payload, f->length);
  s->stdin_len += f->length;
}

void window_frame(struct session *s, const struct ag_frame *f) {
  uint32_t inc;
  char err[128];
  if (ag_decode_u32(f->payload, f->length, &inc, "WINDOW", err, sizeof err) != 0)
    return protocol_error(AG_E_PROTOCOL, "%s", err);
  if (inc == 0 || inc > MAX_CREDIT - s->credit)
    return protocol_error(AG_E_PROTOCOL, "WINDOW increment %u on session %u is 0 or too large", inc, s->id);
  s->credit += inc;
}

void signal_frame(struct session *s, const struct ag_frame *f) {
  uint32_t sig;
  char err[128];
  if (ag_decode_u32(f->payload, f->length, &sig, "SIGNAL", err, sizeof err) != 0)
    return protocol_error(AG_E_PROTOCOL, "%s", err);
  if (sig < 1 || sig > 64) return protocol_error(AG_E_PROTOCOL, "SIGNAL %u is not within 1..64", sig);
  if (s->running) kill(-s->pid, (int)sig);
}

void resize_frame(struct session *s, const struct ag_frame *f) {
  uint16_t rows, cols;
  char err[128];
  if (ag_decode_resize(f->payload, f->length, &rows, &cols, err, sizeof err) != 0)
    return protocol_error(AG_E_PROTOCOL, "%s", err);
  if (s->pty && s->out_fd >= 0) {
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    ioctl(s->out_fd, TIOCSWINSZ, &ws);
  }
}

void abort_frame(struct session *s) {
  if (s->kind == S_EXEC) {
    /* EXIT follows once it is reaped; its output is no longer wanted. */
    kill_group(s);
    close_fd(&s->in_fd);
    close_fd(&s->out_fd);
    close_fd(&s->err_fd);
    s->stdin_dead = 1;
    return;
  }
  emit_error(s->id, AG_E_ABORTED, 0, "aborted by the host");
  session_free(s);
}

/* ---- exec and get pumps ------------------------------------------------------ */

void maybe_exit(struct session *s) {
  if (s->running || s->out_fd >= 0 || s->err_fd >= 0) return;
  uint8_t b[5];
  if (WIFSIGNALED(s->status)) {
    b[0] = 1;
    ag_put_u32(b + 1, (uint32_t)WTERMSIG(s->status));
  } else {
    b[0] = 0;
    ag_put_u32(b + 1, (uint32_t)WEXITSTATUS(s->status));
  }
  emit(s->id, AG_EXIT, b, 5);
  session_free(s);
}

/* Reads one chunk of a command's output; after its exit, an empty pipe ends it. */
void pump_output(struct session *s, int err) {
  int *fd = err ? &s->err_fd : &s->out_fd;
  if (*fd < 0 || !s->credit || ag_buf_pending(&A.out) >= OUT_HIGH) return;
  size_t want = s->credit < AG_DATA_CHUNK ? s->credit : AG_DATA_CHUNK;
  if (!s->running) {
    if (s->post_exit >= POST_EXIT_MAX) {
      close_fd(fd);
      return;
    }
    if (want > POST_EXIT_MAX - s->post_exit) want = POST_EXIT_MAX - s->post_exit;
  }
  ssize_t n = read(*fd, ag_chunk, want);
  if (n > 0) {
    emit(s->id, err ? AG_STDERR : AG_STDOUT, ag_chunk, (size_t)n);
    s->credit -= (uint32_t)n;
    if (!s->running) s->post_exit += (size_t)n;
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
    if (!s->running && !s->pty) close_fd(fd); /* exited and drained */
    return;
  }
  close_fd(fd); /* EOF, or EIO from a PTY whose slave is gone */
}

void pump_stdin(struct session *s) {
  int target = s->pty ? s->out_fd : s->in_fd;
  if (!s->stdin_len || target < 0) return;
  ssize_t n = write(target, s->stdin_buf, s->stdin_len);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) { /* the command closed its stdin */
    emit_u32(s->id, AG_WINDOW, (uint32_t)s->stdin_len);
    s->stdin_len = 0;
    s->stdin_dead = 1;
    if (!s->pty) close_fd(&s->in_fd);
    return;
  }
  memmove(s->stdin_buf, s->stdin_buf + n, s->stdin_len - (size_t)n);
  s->stdin_len -= (size_t)n;
  emit_u32(s->id, AG_WINDOW, (uint32_t)n);
  if (!s->stdin_len && s->stdin_eof && !s->pty) close_fd(&s->in_fd);
}

void reap(void) {
  struct signalfd_siginfo si;
  while (read(A.sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
  }
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    for (int i = 0; i < AG_MAX_SESSIONS; i++) {
      struct session *s = &A.s[i];
      if (s->kind != S_EXEC || !s->running || s->pid != pid) continue;
      s->running = 0;
      s->status = st;
      s->exit_ms = now_ms();
      s->stdin_len = 0;
      s->stdin_dead = 1;
      close_fd(&s->in_fd);
      break;
    }
  }
}
