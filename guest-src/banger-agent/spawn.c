/* See spawn.h. */
#define _GNU_SOURCE
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

extern char **environ;

enum { STEP_TTY = 1, STEP_IDS, STEP_CHDIR, STEP_EXEC };

static void set_flags(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static void close_all(int *fds, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
}

/* In the child: report the failed step and errno to the parent, then exit. */
static void child_fail(int report, int step) {
  int32_t msg[2] = {step, errno};
  ssize_t ignored = write(report, msg, sizeof msg);
  (void)ignored;
  _exit(127);
}

static void child(const struct ag_exec_req *req, int report, int in_r, int out_w, int err_w, const char *slave) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL); /* ignored signals survive exec otherwise */
  setsid();
  if (slave) {
    int fd = open(slave, O_RDWR);
    if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) != 0) child_fail(report, STEP_TTY);
    in_r = out_w = err_w = fd;
  }
  if (dup2(in_r, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0) child_fail(report, STEP_TTY);
  if (in_r > 2) close(in_r);
  if (out_w > 2 && out_w != in_r) close(out_w);
  if (err_w > 2 && err_w != in_r && err_w != out_w) close(err_w);
  if (req->uid != AG_NONE) {
    gid_t gid = req->gid != AG_NONE ? req->gid : req->uid;
    if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(req->uid) != 0) child_fail(report, STEP_IDS);
  } else if (req->gid != AG_NONE) {
    if (setgid(req->gid) != 0) child_fail(report, STEP_IDS);
  }
  if (req->cwd[0] && chdir(req->cwd) != 0) child_fail(report, STEP_CHDIR);
  environ = req->envp;
  execvp(req->argv[0], req->argv);
  child_fail(report, STEP_EXEC);
}

int ag_spawn(const struct ag_exec_req *req, struct ag_child *c, char *err, size_t errlen, int *err_no) {
  int report[2] = {-1, -1}, in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
  int master = -1;
  char slave[128] = "";
  *err_no = 0;
  memset(c, 0, sizeof *c);
  c->in_fd = c->out_fd = c->err_fd = -1;
  if (pipe2(report, O_CLOEXEC) != 0) goto sys;
  if (req->flags & AG_EXEC_PTY) {
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 ||
        ptsname_r(master, slave, sizeof slave) != 0)
      goto sys;
    if (req->rows && req->cols) {
      struct winsize ws = {.ws_row = req->rows, .ws_col = req->cols};
      ioctl(master, TIOCSWINSZ, &ws);
    }
  } else if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
    goto sys;
  }
  pid_t pid = fork();
  if (pid < 0) goto sys;
  if (pid == 0) child(req, report[1], in[0], out[1], errp[1], slave[0] ? slave : NULL);
  close(report[1]);
  int32_t msg[2];
  ssize_t n;
  do n = read(report[0], msg, sizeof msg);
  while (n < 0 && errno == EINTR);
  close(report[0]);
  int ends[] = {in[0], out[1], errp[1]};
  close_all(ends, 3);
  if (n == (ssize_t)sizeof msg) {
    int fds[] = {in[1], out[0], errp[0], master};
    close_all(fds, 4);
    /* The child has exited: the caller's SIGCHLD handling reaps it. */
    *err_no = msg[1];
    const char *what = msg[0] == STEP_TTY    ? "set up the terminal"
                       : msg[0] == STEP_IDS  ? "switch to the user"
                       : msg[0] == STEP_CHDIR ? "chdir"
                                              : "exec";
    if (msg[0] == STEP_CHDIR)
      snprintf(err, errlen, "chdir %s: %s", req->cwd, strerror(msg[1]));
    else if (msg[0] == STEP_EXEC)
      snprintf(err, errlen, "exec %s: %s", req->argv[0], strerror(msg[1]));
    else if (msg[0] == STEP_IDS)
      snprintf(err, errlen, "%s %u: %s", what, req->uid, strerror(msg[1]));
    else
      snprintf(err, errlen, "%s: %s", what, strerror(msg[1]));
    return -1;
  }
  c->pid = pid;
  if (master >= 0) {
    c->pty = 1;
    c->out_fd = master;
    set_flags(master);
  } else {
    c->in_fd = in[1];
    c->out_fd = out[0];
    c->err_fd = errp[0];
    set_flags(c->in_fd);
    set_flags(c->out_fd);
    set_flags(c->err_fd);
  }
  return 0;
sys:
  *err_no = errno;
  snprintf(err, errlen, "cannot start the command: %s", strerror(errno));
  {
    int fds[] = {report[0], report[1], in[0], in[1], out[0], out[1], errp[0], errp[1], master};
    close_all(fds, 9);
  }
  return -1;
}
