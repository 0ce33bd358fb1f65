/*
 * banger-agent: the guest side of banger's command channel (docs/agent-protocol.md).
 *
 * One byte stream to the host (virtio-serial port org.banger.agent, a vsock
 * listener, or --socket/--stdio for host tests) carries many sessions: health,
 * exec (pipes or a PTY), listening ports, file put/get, shutdown, identity.
 * A single poll() loop; every buffer is bounded. Frame parsing and payload
 * decoding live in banger-agent/wire.c (pure, fuzzable).
 *
 * The host build (-DAGENT_HOST_BUILD, dist/guest/banger-agent-host) needs
 * --test-dir DIR and writes what shutdown and set-identity would do to files
 * there instead of powering off or renaming the machine.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "banger-agent/agent.h"

static void usage(void) {
  fputs("usage: banger-agent [--stdio [--serial] | --socket PATH | --vsock PORT]"
#ifdef AGENT_HOST_BUILD
        " --test-dir DIR"
#endif
        "\n",
        stderr);
  exit(1);
}

static void setup(int argc, char **argv) {
  unsigned vsock_port = DEFAULT_VSOCK_PORT;
  const char *socket_path = NULL;
  int explicit = 0;
  A.in_fd = A.out_fd = A.listen_fd = -1;
  A.out.max = OUT_MAX;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--stdio") == 0) {
      A.mode = M_STDIO;
      explicit = 1;
    } else if (strcmp(argv[i], "--serial") == 0) {
      A.serial = 1;
    } else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
      A.mode = M_SOCKET;
      socket_path = argv[++i];
      explicit = 1;
    } else if (strcmp(argv[i], "--vsock") == 0 && i + 1 < argc) {
      A.mode = M_VSOCK;
      vsock_port = (unsigned)strtoul(argv[++i], NULL, 10);
      explicit = 1;
    } else if (strcmp(argv[i], "--test-dir") == 0 && i + 1 < argc) {
      A.test_dir = argv[++i];
    } else {
      usage();
    }
  }
#ifdef AGENT_HOST_BUILD
  if (!A.test_dir) {
    say("the host build needs --test-dir DIR (it never powers off or renames this machine)");
    exit(1);
  }
  if (!explicit) usage();
#else
  if (A.test_dir) usage();
  if (!explicit) mode_from_cmdline(&vsock_port);
#endif
  if (A.serial && A.mode != M_STDIO) usage();
  if (A.mode == M_VIRTIO) A.serial = 1;

  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, NULL);
  A.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (A.sigfd < 0) {
    say("signalfd: %s", strerror(errno));
    exit(1);
  }

  switch (A.mode) {
    case M_STDIO:
      set_nonblock_cloexec(0);
      set_nonblock_cloexec(1);
      conn_open(0, 1);
      break;
    case M_SOCKET:
      A.listen_fd = listen_unix(socket_path);
      break;
    case M_VSOCK:
      for (int tries = 0; (A.listen_fd = listen_vsock(vsock_port)) < 0; tries++) {
        if (tries == 0) say("waiting for vsock port %u: %s", vsock_port, strerror(errno));
        usleep(500000);
      }
      break;
    case M_VIRTIO: {
      int fd;
      for (int tries = 0; (fd = open_virtio_port()) < 0; tries++) {
        if (tries == 0) say("waiting for the virtio-serial port " PORT_NAME);
        usleep(500000);
      }
      conn_open(fd, fd);
      A.host_absent = 1; /* until poll says otherwise */
      break;
    }
  }
  say("ready (%s)", A.mode == M_STDIO    ? "stdio"
                    : A.mode == M_SOCKET ? "unix socket"
                    : A.mode == M_VSOCK  ? "vsock"
                                         : "virtio-serial");
}

/* ---- the loop ------------------------------------------------------------- */

#define MAX_FDS (4 + 3 * AG_MAX_SESSIONS)

int main(int argc, char **argv) {
  setup(argc, argv);
  struct pollfd fds[MAX_FDS];
  struct session *owner[MAX_FDS];
  unsigned gen[MAX_FDS];
  int role[MAX_FDS];
  enum { R_CONN, R_LISTEN, R_SIG, R_OUT, R_ERR, R_STDIN };

  for (;;) {
    if (A.drop) conn_close();
    if (A.closing && (!ag_buf_pending(&A.out) || now_ms() > A.closing_deadline)) conn_close();
    if (A.mode == M_VIRTIO && A.host_absent) {
      struct pollfd p = {.fd = A.in_fd, .events = POLLIN};
      if (poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP)) {
        A.host_absent = 0;
        say("host connected");
      }
    }
    int connected = A.in_fd >= 0 && !A.host_absent;
    int n = 0, timeout = -1;
    double now = now_ms();
    int out_room = ag_buf_pending(&A.out) < OUT_HIGH;

    if (connected) {
      short ev = 0;
      if (!A.closing && out_room && A.in_len < sizeof A.in) ev |= POLLIN;
      if (ag_buf_pending(&A.out)) ev |= POLLOUT;
      if (A.in_fd == A.out_fd) {
        fds[n] = (struct pollfd){.fd = A.in_fd, .events = ev};
        role[n++] = R_CONN;
      } else {
        /* Separate ends (--stdio): leave out an end we do not wait on, or its
         * HUP would wake us up for nothing. */
        fds[n] = (struct pollfd){.fd = (ev & POLLIN) ? A.in_fd : -1, .events = POLLIN};
        role[n++] = R_CONN;
        fds[n] = (struct pollfd){.fd = (ev & POLLOUT) ? A.out_fd : -1, .events = POLLOUT};
        role[n++] = R_CONN;
      }
      if (A.closing) timeout = CLOSE_FLUSH_MS;
    } else if (A.mode == M_VIRTIO) {
      timeout = 250;
    }
    if (A.listen_fd >= 0) {
      fds[n] = (struct pollfd){.fd = A.listen_fd, .events = POLLIN};
      role[n++] = R_LISTEN;
    }
    fds[n] = (struct pollfd){.fd = A.sigfd, .events = POLLIN};
    role[n++] = R_SIG;
    for (int i = 0; i < AG_MAX_SESSIONS; i++) {
      struct session *s = &A.s[i];
      if (s->kind == S_GET && out_room && (s->credit || s->done >= s->size)) timeout = 0;
      if (s->kind != S_EXEC) continue;
      int readable = s->credit && out_room;
      /* An fd we do not wait on stays out of the set (fd -1): a pipe whose
       * writer is gone reports HUP whatever we ask, and would spin the loop
       * while the host owes us credit. */
      if (s->out_fd >= 0) {
        short ev = (short)((readable ? POLLIN : 0) | (s->pty && s->stdin_len ? POLLOUT : 0));
        fds[n] = (struct pollfd){.fd = ev ? s->out_fd : -1, .events = ev};
        owner[n] = s;
        gen[n] = s->gen;
        role[n++] = R_OUT;
      }
      if (s->err_fd >= 0 && readable) {
        fds[n] = (struct pollfd){.fd = s->err_fd, .events = POLLIN};
        owner[n] = s;
        gen[n] = s->gen;
        role[n++] = R_ERR;
      }
      if (s->in_fd >= 0 && s->stdin_len) {
        fds[n] = (struct pollfd){.fd = s->in_fd, .events = POLLOUT};
        owner[n] = s;
        gen[n] = s->gen;
        role[n++] = R_STDIN;
      }
      if (!s->running && readable && (s->out_fd >= 0 || s->err_fd >= 0)) {
        if (!s->pty) {
          timeout = 0; /* drain what it wrote, then EXIT */
        } else {
          int left = (int)(s->exit_ms + PTY_LINGER_MS - now);
          if (left < 0) left = 0;
          if (timeout < 0 || left < timeout) timeout = left;
        }
      }
    }

    int r = poll(fds, (nfds_t)n, timeout);
    if (r < 0 && errno != EINTR) {
      say("poll: %s", strerror(errno));
      return 1;
    }
    for (int i = 0; r > 0 && i < n; i++) {
      short re = fds[i].revents;
      if (!re) continue;
      switch (role[i]) {
        case R_CONN:
          if (A.drop) break;
          if (fds[i].fd == A.out_fd && (re & POLLOUT) && ag_buf_pending(&A.out)) {
            ssize_t w = write(A.out_fd, A.out.data + A.out.off, ag_buf_pending(&A.out));
            if (w > 0) ag_buf_consume(&A.out, (size_t)w);
            else if (w < 0 && errno != EAGAIN && errno != EINTR) A.drop = DROP_BROKEN;
          }
          if (fds[i].fd == A.in_fd && (re & (POLLIN | POLLHUP | POLLERR)) && !A.drop) {
            if (!(fds[i].events & POLLIN) || A.closing) {
              if (re & (POLLHUP | POLLERR)) A.drop = DROP_BROKEN; /* a socket shut both ways, or virtio host gone */
              break;
            }
            ssize_t got = read(A.in_fd, A.in + A.in_len, sizeof A.in - A.in_len);
            if (got > 0) {
              A.in_len += (size_t)got;
              process_input();
            } else if (got == 0) {
              A.drop = DROP_EOF; /* the host has no more to say */
            } else if (errno != EAGAIN && errno != EINTR) {
              A.drop = DROP_BROKEN;
            }
          } else if (fds[i].fd == A.out_fd && fds[i].fd != A.in_fd && (re & (POLLHUP | POLLERR))) {
            A.drop = DROP_BROKEN; /* nobody reads our output any more */
          }
          break;
        case R_LISTEN:
          accept_host();
          break;
        case R_SIG:
          reap();
          break;
        case R_OUT:
        case R_ERR:
        case R_STDIN: {
          /* Frames handled earlier in this turn may have ended the session
           * (and a new one may have its slot and fd numbers): skip stale entries. */
          struct session *s = owner[i];
          if (s->kind != S_EXEC || s->gen != gen[i]) break;
          if (role[i] == R_STDIN || (role[i] == R_OUT && s->pty && (re & POLLOUT))) pump_stdin(s);
          if (role[i] != R_STDIN && (re & (POLLIN | POLLHUP | POLLERR))) pump_output(s, role[i] == R_ERR);
          break;
        }
      }
    }
    if (A.drop) continue;
    /* Input left waiting for output room, exited commands, get sessions. */
    if (A.in_len && ag_buf_pending(&A.out) < OUT_HIGH) process_input();
    now = now_ms();
    for (int i = 0; i < AG_MAX_SESSIONS; i++) {
      struct session *s = &A.s[i];
      if (s->kind == S_GET) {
        pump_get(s);
      } else if (s->kind == S_EXEC && !s->running) {
        if (!s->pty) {
          for (int k = 0; k < 64 && s->out_fd >= 0 && s->credit && ag_buf_pending(&A.out) < OUT_HIGH; k++)
            pump_output(s, 0);
          for (int k = 0; k < 64 && s->err_fd >= 0 && s->credit && ag_buf_pending(&A.out) < OUT_HIGH; k++)
            pump_output(s, 1);
        } else if (s->out_fd >= 0 && now > s->exit_ms + PTY_LINGER_MS) {
          close_fd(&s->out_fd); /* a background process holds the terminal: stop waiting */
        }
        maybe_exit(s);
      }
    }
  }
}
