/* The session table. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

/* ---- sessions ------------------------------------------------------------ */

struct session *session_find(uint32_t id) {
  for (int i = 0; i < AG_MAX_SESSIONS; i++)
    if (A.s[i].kind != S_FREE && A.s[i].id == id) return &A.s[i];
  return NULL;
}

int sessions_open(void) {
  int n = 0;
  for (int i = 0; i < AG_MAX_SESSIONS; i++) n += A.s[i].kind != S_FREE;
  return n;
}

struct session *session_new(uint32_t id, enum kind kind) {
  static unsigned generation;
  for (int i = 0; i < AG_MAX_SESSIONS; i++) {
    struct session *s = &A.s[i];
    if (s->kind != S_FREE) continue;
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->id = id;
    s->gen = ++generation;
    s->in_fd = s->out_fd = s->err_fd = s->file_fd = -1;
    return s;
  }
  return NULL;
}

void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

void session_free(struct session *s) {
  close_fd(&s->in_fd);
  close_fd(&s->out_fd);
  close_fd(&s->err_fd);
  close_fd(&s->file_fd);
  if (s->tmp_path) unlink(s->tmp_path);
  free(s->tmp_path);
  free(s->path);
  free(s->stdin_buf);
  memset(s, 0, sizeof *s);
  s->kind = S_FREE;
}

void kill_group(struct session *s) {
  if (s->kind == S_EXEC && s->running) kill(-s->pid, SIGKILL);
}

/* Ends every session: the host is gone or the stream broke. */
void reset_sessions(void) {
  for (int i = 0; i < AG_MAX_SESSIONS; i++) {
    if (A.s[i].kind == S_FREE) continue;
    kill_group(&A.s[i]);
    session_free(&A.s[i]);
  }
}
