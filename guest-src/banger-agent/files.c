/* FILE_PUT and FILE_GET sessions. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

void op_put(const struct ag_frame *f) {
  struct ag_put_req req;
  char err[300];
  if (sessions_open() >= AG_MAX_SESSIONS)
    return emit_error(f->session, AG_E_TOO_MANY, 0, "the agent already runs %d sessions", AG_MAX_SESSIONS);
  if (ag_decode_put(f->payload, f->length, &req, err, sizeof err) != 0)
    return emit_error(f->session, AG_E_BAD_REQUEST, 0, "%s", err);
  const char *slash = strrchr(req.path, '/');
  size_t dirlen = slash == req.path ? 1 : (size_t)(slash - req.path);
  if (!slash[1]) return emit_error(f->session, AG_E_BAD_REQUEST, 0, "FILE_PUT path %s names a directory", req.path);
  char *tmp = malloc(dirlen + 32);
  char *path = strdup(req.path);
  if (!tmp || !path) {
    free(tmp);
    free(path);
    return emit_error(f->session, AG_E_SYSTEM, ENOMEM, "out of memory");
  }
  snprintf(tmp, dirlen + 32, "%.*s/.banger-put-XXXXXX", (int)(dirlen == 1 ? 0 : dirlen), req.path);
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    emit_error(f->session, AG_E_SYSTEM, e, "create a file in %.*s: %s", (int)dirlen, req.path, strerror(e));
    free(tmp);
    free(path);
    return;
  }
  struct session *s = session_new(f->session, S_PUT);
  s->file_fd = fd;
  s->tmp_path = tmp;
  s->path = path;
  s->size = req.size;
  s->mode = req.mode;
  s->uid = req.uid;
  s->gid = req.gid;
}

static void put_fail(struct session *s, uint16_t code, int err_no, const char *what) {
  if (err_no)
    emit_error(s->id, code, err_no, "%s %s: %s", what, s->path, strerror(err_no));
  else
    emit_error(s->id, code, 0, "%s %s", what, s->path);
  session_free(s); /* unlinks the temporary file */
}

void put_data(struct session *s, const struct ag_frame *f) {
  if (f->length == 0) {
    if (s->done != s->size) {
      char what[96];
      snprintf(what, sizeof what, "got %llu of the %llu bytes announced for", (unsigned long long)s->done,
               (unsigned long long)s->size);
      return put_fail(s, AG_E_BAD_REQUEST, 0, what);
    }
    if ((s->uid != AG_NONE || s->gid != AG_NONE) && fchown(s->file_fd, s->uid, s->gid) != 0)
      return put_fail(s, AG_E_SYSTEM, errno, "chown");
    if (fchmod(s->file_fd, s->mode) != 0) return put_fail(s, AG_E_SYSTEM, errno, "chmod");
    if (fsync(s->file_fd) != 0) return put_fail(s, AG_E_SYSTEM, errno, "fsync");
    if (rename(s->tmp_path, s->path) != 0) return put_fail(s, AG_E_SYSTEM, errno, "rename into");
    free(s->tmp_path);
    s->tmp_path = NULL;
    emit(s->id, AG_OK, NULL, 0);
    session_free(s);
    return;
  }
  if (f->length > s->size - s->done) return put_fail(s, AG_E_BAD_REQUEST, 0, "more bytes than announced for");
  size_t off = 0;
  while (off < f->length) {
    ssize_t n = write(s->file_fd, f->payload + off, f->length - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return put_fail(s, AG_E_SYSTEM, n < 0 ? errno : EIO, "write");
    off += (size_t)n;
  }
  s->done += f->length;
}

void op_get(const struct ag_frame *f) {
  char path[AG_MAX_PATH + 1], err[300];
  if (sessions_open() >= AG_MAX_SESSIONS)
    return emit_error(f->session, AG_E_TOO_MANY, 0, "the agent already runs %d sessions", AG_MAX_SESSIONS);
  if (ag_decode_get(f->payload, f->length, path, sizeof path, err, sizeof err) != 0)
    return emit_error(f->session, AG_E_BAD_REQUEST, 0, "%s", err);
  /* Only regular files: refuse anything else before opening it (opening a
   * device can have effects), O_NONBLOCK so a FIFO swapped in cannot block us. */
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
    return emit_error(f->session, AG_E_BAD_REQUEST, 0, "%s is not a regular file", path);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    return emit_error(f->session, AG_E_SYSTEM, e, "open %s: %s", path, strerror(e));
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return emit_error(f->session, AG_E_BAD_REQUEST, 0, "%s is not a regular file", path);
  }
  struct session *s = session_new(f->session, S_GET);
  s->file_fd = fd;
  s->size = (uint64_t)st.st_size;
  s->credit = AG_WINDOW_INITIAL;
  uint8_t *p = ag_frame_begin(&A.out, f->session, AG_FILE_INFO, 28);
  if (!p) return overflow();
  ag_put_u32(p, st.st_mode & 07777);
  ag_put_u32(p + 4, st.st_uid);
  ag_put_u32(p + 8, st.st_gid);
  ag_put_u64(p + 12, (uint64_t)st.st_size);
  ag_put_u64(p + 20, (uint64_t)(int64_t)st.st_mtime);
}

void pump_get(struct session *s) {
  if (ag_buf_pending(&A.out) >= OUT_HIGH) return;
  if (s->done < s->size && s->credit) {
    size_t want = s->credit < AG_DATA_CHUNK ? s->credit : AG_DATA_CHUNK;
    if (want > s->size - s->done) want = (size_t)(s->size - s->done);
    ssize_t n;
    do n = read(s->file_fd, ag_chunk, want);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      emit_error(s->id, AG_E_SYSTEM, errno, "read: %s", strerror(errno));
      session_free(s);
      return;
    }
    if (n == 0) {
      s->size = s->done; /* shrank while we read: the host sees fewer bytes than FILE_INFO said */
    } else {
      emit(s->id, AG_FILE_DATA, ag_chunk, (size_t)n);
      s->credit -= (uint32_t)n;
      s->done += (uint64_t)n;
    }
  }
  if (s->done >= s->size) {
    emit(s->id, AG_FILE_DATA, NULL, 0);
    session_free(s);
  }
}
