/* Starting a command for an EXEC session: pipes or a PTY, new session, uid, cwd. */
#ifndef BANGER_AGENT_SPAWN_H
#define BANGER_AGENT_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

#include "wire.h"

struct ag_child {
  pid_t pid;
  int pty;    /* stdin, stdout and stderr all go through the PTY master in out_fd */
  int in_fd;  /* write end of the command's stdin (-1 with a PTY) */
  int out_fd; /* read end of stdout, or the PTY master */
  int err_fd; /* read end of stderr (-1 with a PTY) */
};

/*
 * Starts req. Returns 0 with child filled (parent ends non-blocking and
 * close-on-exec), or -1 with err naming the failed step and *err_no its errno.
 * The command runs in its own session, so kill(-pid, sig) reaches its group.
 */
int ag_spawn(const struct ag_exec_req *req, struct ag_child *child, char *err, size_t errlen, int *err_no);

#endif
