/* FILE_LIST: one directory's entries, lstat'ed (links are never followed), in one bounded reply. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

enum { K_FILE = 1, K_DIR = 2, K_LINK = 3, K_OTHER = 4 };

static uint8_t kind_of(mode_t m) {
  if (S_ISREG(m)) return K_FILE;
  if (S_ISDIR(m)) return K_DIR;
  if (S_ISLNK(m)) return K_LINK;
  return K_OTHER;
}

void op_list(const struct ag_frame *f) {
  static uint8_t reply[AG_MAX_PAYLOAD];
  char path[AG_MAX_PATH + 1], err[300];
  uint32_t max_entries;
  if (ag_decode_list(f->payload, f->length, &max_entries, path, sizeof path, err, sizeof err) != 0)
    return emit_error(f->session, AG_E_BAD_REQUEST, 0, "%s", err);
  struct stat st;
  if (lstat(path, &st) != 0) {
    int e = errno;
    return emit_error(f->session, AG_E_SYSTEM, e, "lstat %s: %s", path, strerror(e));
  }
  if (!S_ISDIR(st.st_mode)) return emit_error(f->session, AG_E_BAD_REQUEST, ENOTDIR, "%s is not a directory", path);
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  DIR *d = fd < 0 ? NULL : fdopendir(fd);
  if (!d) {
    int e = errno;
    if (fd >= 0) close(fd);
    return emit_error(f->session, AG_E_SYSTEM, e, "open %s: %s", path, strerror(e));
  }
  size_t off = 5;
  uint32_t count = 0;
  uint8_t truncated = 0;
  struct dirent *de;
  for (;;) {
    errno = 0;
    de = readdir(d);
    if (!de) break;
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue; /* gone since readdir */
    size_t nlen = strlen(de->d_name);
    if (count == max_entries || off + AG_LIST_ENTRY + nlen > sizeof reply) {
      truncated = 1;
      break;
    }
    uint8_t *p = reply + off;
    p[0] = kind_of(st.st_mode);
    ag_put_u32(p + 1, st.st_mode & 07777);
    ag_put_u64(p + 5, S_ISREG(st.st_mode) || S_ISLNK(st.st_mode) ? (uint64_t)st.st_size : 0);
    ag_put_u64(p + 13, (uint64_t)(int64_t)st.st_mtime);
    ag_put_u32(p + 21, (uint32_t)nlen);
    memcpy(p + AG_LIST_ENTRY, de->d_name, nlen);
    off += AG_LIST_ENTRY + nlen;
    count++;
  }
  int e = de ? 0 : errno;
  closedir(d);
  if (e) return emit_error(f->session, AG_E_SYSTEM, e, "read directory %s: %s", path, strerror(e));
  reply[0] = truncated;
  ag_put_u32(reply + 1, count);
  emit(f->session, AG_FILE_LIST_REPLY, reply, off);
}
