/*
 * SET_IDENTITY (docs/agent-protocol.md, docs/warm-start.md): a guest restored
 * from a template takes the VM's own identity. The system calls are made here
 * (clock, entropy + CRNG reseed, hostname); the file and network changes
 * (/etc/hostname, /etc/machine-id, journald, the NIC's MAC and address, DNS)
 * and opening the gate (host keys, sshd) are the bootstrap script's `identity`
 * mode, run to completion before the reply.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define BOOTSTRAP_PATH "/usr/local/libexec/banger-bootstrap"
/* Test-only (record rng-sample): 32 bytes of getrandom() right after the entropy and reseed step, in hex.
   Two guests restored from one template write the same bytes here when the reseed is skipped. */
#define RNG_SAMPLE_PATH "/run/banger-rng-sample"
#define IDENTITY_TIMEOUT_MS 60000
#define MAX_ARGS 9

/* The bootstrap's arguments: `identity` then key=value words (values were validated by the decoder). */
static int identity_args(const struct ag_identity *id, char words[MAX_ARGS][80], char **argv) {
  int n = 0;
  argv[n++] = "banger-bootstrap";
  argv[n++] = "identity";
  int w = 0;
#define WORD(...) (snprintf(words[w], sizeof words[w], __VA_ARGS__), argv[n++] = words[w++])
  if (id->has_hostname) WORD("hostname=%s", id->hostname);
  if (id->has_machine_id) WORD("machine_id=%s", id->machine_id);
  if (id->has_network) {
    WORD("ip=%u.%u.%u.%u/%u", id->ip[0], id->ip[1], id->ip[2], id->ip[3], id->prefix);
    WORD("gw=%u.%u.%u.%u", id->gateway[0], id->gateway[1], id->gateway[2], id->gateway[3]);
    WORD("mac=%02x:%02x:%02x:%02x:%02x:%02x", id->mac[0], id->mac[1], id->mac[2], id->mac[3], id->mac[4],
         id->mac[5]);
    if (id->has_dns) WORD("dns=%u.%u.%u.%u", id->dns[0], id->dns[1], id->dns[2], id->dns[3]);
  }
  if (id->open_gate) WORD("gate=1");
#undef WORD
  argv[n] = NULL;
  return n;
}

#ifndef AGENT_HOST_BUILD
/* Runs the bootstrap's identity mode; 0, or -1 with its output's tail (or the failed step) in msg. */
static int run_bootstrap(char **argv, char *msg, size_t msglen) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) return snprintf(msg, msglen, "pipe: %s", strerror(errno)), -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(pfd[0]);
    close(pfd[1]);
    return snprintf(msg, msglen, "fork: %s", strerror(errno)), -1;
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    dup2(pfd[1], 1);
    dup2(pfd[1], 2);
    char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    execve(BOOTSTRAP_PATH, argv, envp);
    dprintf(2, "exec %s: %s\n", BOOTSTRAP_PATH, strerror(errno));
    _exit(127);
  }
  close(pfd[1]);
  char tail[512];
  size_t tlen = 0;
  double deadline = now_ms() + IDENTITY_TIMEOUT_MS;
  int timed_out = 0;
  for (;;) {
    double left = deadline - now_ms();
    if (left <= 0) {
      timed_out = 1;
      break;
    }
    struct pollfd p = {.fd = pfd[0], .events = POLLIN};
    if (poll(&p, 1, left > 1000 ? 1000 : (int)left) < 0 && errno != EINTR) break;
    if (!p.revents) continue;
    ssize_t r = read(pfd[0], ag_chunk, sizeof ag_chunk);
    if (r <= 0) break; /* EOF: the script and everything it started closed the pipe */
    size_t k = (size_t)r;
    if (k >= sizeof tail) {
      memcpy(tail, ag_chunk + k - (sizeof tail - 1), sizeof tail - 1);
      tlen = sizeof tail - 1;
    } else {
      if (tlen + k >= sizeof tail) {
        size_t drop = tlen + k - (sizeof tail - 1);
        memmove(tail, tail + drop, tlen - drop);
        tlen -= drop;
      }
      memcpy(tail + tlen, ag_chunk, k);
      tlen += k;
    }
  }
  close(pfd[0]);
  if (timed_out) kill(-pid, SIGKILL);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  while (tlen && (tail[tlen - 1] == '\n' || tail[tlen - 1] == ' ')) tlen--;
  tail[tlen] = 0;
  if (timed_out) return snprintf(msg, msglen, "%s identity did not finish within %d s", BOOTSTRAP_PATH,
                                 IDENTITY_TIMEOUT_MS / 1000), -1;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
  snprintf(msg, msglen, "%s identity failed (%s %d): %s", BOOTSTRAP_PATH, WIFEXITED(st) ? "status" : "signal",
           WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), tail);
  return -1;
}

static int add_entropy(const struct ag_identity *id, char *msg, size_t msglen) {
  int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return snprintf(msg, msglen, "open /dev/urandom: %s", strerror(errno)), errno;
  int e = 0;
  if (id->entropy_len) {
    struct {
      struct rand_pool_info info;
      uint8_t buf[AG_MAX_ENTROPY];
    } pool;
    pool.info.entropy_count = (int)id->entropy_len * 8;
    pool.info.buf_size = (int)id->entropy_len;
    memcpy(pool.info.buf, id->entropy, id->entropy_len);
    if (ioctl(fd, RNDADDENTROPY, &pool) != 0 &&
        write(fd, id->entropy, id->entropy_len) != (ssize_t)id->entropy_len) {
      e = errno;
      snprintf(msg, msglen, "add entropy: %s", strerror(e));
    }
  }
  /* The CRNG keeps generating from the state the restore cloned until it reseeds: force it now. */
  if (!e && id->reseed && ioctl(fd, RNDRESEEDCRNG) != 0) {
    e = errno;
    snprintf(msg, msglen, "reseed the CRNG (RNDRESEEDCRNG): %s", strerror(e));
  }
  close(fd);
  return e;
}

static int write_rng_sample(char *msg, size_t msglen) {
  uint8_t b[32];
  char hex[2 * sizeof b + 1];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
    return snprintf(msg, msglen, "getrandom: %s", strerror(errno)), errno;
  for (size_t i = 0; i < sizeof b; i++) snprintf(hex + 2 * i, 3, "%02x", b[i]);
  int fd = open(RNG_SAMPLE_PATH, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return snprintf(msg, msglen, "open %s: %s", RNG_SAMPLE_PATH, strerror(errno)), errno;
  int e = write(fd, hex, 2 * sizeof b) == (ssize_t)(2 * sizeof b) ? 0 : (errno ? errno : EIO);
  close(fd);
  if (e) snprintf(msg, msglen, "write %s: %s", RNG_SAMPLE_PATH, strerror(e));
  return e;
}
#endif

void op_identity(const struct ag_frame *f) {
  struct ag_identity id;
  char err[600];
  if (ag_decode_identity(f->payload, f->length, &id, err, sizeof err) != 0)
    return emit_error(f->session, AG_E_BAD_REQUEST, 0, "%s", err);
  char words[MAX_ARGS][80];
  char *argv[MAX_ARGS + 3];
  int argc = identity_args(&id, words, argv);
#ifdef AGENT_HOST_BUILD
  /* The host build records what it would do: the hostname and entropy size as before, the clock, the
     reseed and the bootstrap's argument words. */
  if (id.has_hostname && write_test_file("hostname", id.hostname, strlen(id.hostname), 0) != 0)
    return emit_error(f->session, AG_E_SYSTEM, errno, "sethostname: %s", strerror(errno));
  char line[700];
  int n;
  if (id.entropy_len) {
    n = snprintf(line, sizeof line, "%zu\n", id.entropy_len);
    if (write_test_file("entropy", line, (size_t)n, 1) != 0)
      return emit_error(f->session, AG_E_SYSTEM, errno, "add entropy: %s", strerror(errno));
  }
  if (id.clock_ns) {
    n = snprintf(line, sizeof line, "%llu\n", (unsigned long long)id.clock_ns);
    write_test_file("clock", line, (size_t)n, 0);
  }
  if (id.reseed) write_test_file("reseed", "1\n", 2, 1);
  if (id.rng_sample) write_test_file("rng-sample", "1\n", 2, 1);
  if (argc > 2) {
    n = 0;
    for (int i = 1; i < argc; i++) n += snprintf(line + n, sizeof line - (size_t)n, "%s%s", i > 1 ? " " : "", argv[i]);
    n += snprintf(line + n, sizeof line - (size_t)n, "\n");
    write_test_file("identity", line, (size_t)n, 1);
  }
#else
  if (id.clock_ns) {
    struct timespec ts = {.tv_sec = (time_t)(id.clock_ns / 1000000000u), .tv_nsec = (long)(id.clock_ns % 1000000000u)};
    if (clock_settime(CLOCK_REALTIME, &ts) != 0)
      return emit_error(f->session, AG_E_SYSTEM, errno, "set the clock: %s", strerror(errno));
  }
  if (id.entropy_len || id.reseed) {
    int e = add_entropy(&id, err, sizeof err);
    if (e) return emit_error(f->session, AG_E_SYSTEM, e, "%s", err);
  }
  if (id.rng_sample) {
    int e = write_rng_sample(err, sizeof err);
    if (e) return emit_error(f->session, AG_E_SYSTEM, e, "%s", err);
  }
  if (id.has_hostname && sethostname(id.hostname, strlen(id.hostname)) != 0)
    return emit_error(f->session, AG_E_SYSTEM, errno, "sethostname %s: %s", id.hostname, strerror(errno));
  if (argc > 2 && run_bootstrap(argv, err, sizeof err) != 0) return emit_error(f->session, AG_E_SYSTEM, 0, "%s", err);
#endif
  emit(f->session, AG_OK, NULL, 0);
}
