/*
 * banger-agent's shared state: the host stream, the sessions and the
 * functions the parts of the agent call on each other.
 */
#ifndef BANGER_AGENT_AGENT_H
#define BANGER_AGENT_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "wire.h"

#define PORT_NAME "org.banger.agent"
#define DEFAULT_VSOCK_PORT 1024
#define OUT_HIGH (256 * 1024)
#define OUT_MAX (OUT_HIGH + 8 * (AG_HEADER + AG_MAX_PAYLOAD))
#define POST_EXIT_MAX (1 << 20)
#define PTY_LINGER_MS 200
#define CLOSE_FLUSH_MS 2000
#define MAX_CREDIT (1u << 30)

enum mode { M_STDIO, M_SOCKET, M_VSOCK, M_VIRTIO };
enum kind { S_FREE, S_EXEC, S_PUT, S_GET };
enum drop { DROP_NONE, DROP_BROKEN, DROP_EOF }; /* why the host stream ends */

struct session {
  enum kind kind;
  uint32_t id;
  unsigned gen; /* tells a slot's sessions apart */
  /* exec */
  pid_t pid;
  int running, status, pty;
  int in_fd, out_fd, err_fd; /* with a PTY: out_fd is the master, in_fd -1 */
  uint8_t *stdin_buf;
  size_t stdin_len;
  int stdin_eof, stdin_dead;
  size_t post_exit;
  double exit_ms;
  /* exec output / get data */
  uint32_t credit;
  /* files */
  int file_fd;
  uint64_t size, done;
  uint32_t uid, gid, mode;
  char *tmp_path, *path;
};

struct agent {
  enum mode mode;
  int serial; /* virtio-serial semantics: resync on a fatal error instead of closing */
  int listen_fd;
  int in_fd, out_fd; /* the host stream; -1 when none */
  int host_absent;   /* virtio: the host side is not connected */
  int hello, resync, closing;
  enum drop drop;
  double closing_deadline;
  uint8_t in[AG_HEADER + AG_MAX_PAYLOAD];
  size_t in_len;
  struct ag_buf out;
  struct session s[AG_MAX_SESSIONS];
  int sigfd;
  const char *test_dir; /* host build: where shutdown and identity write instead */
};

extern struct agent A;
extern uint8_t ag_chunk[AG_DATA_CHUNK];

/* util.c / conn.c */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
double now_ms(void);
void set_nonblock_cloexec(int fd);
void close_fd(int *fd);
void overflow(void);
void emit(uint32_t id, uint8_t type, const void *data, size_t len);
void emit_error(uint32_t id, uint16_t code, int err_no, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void emit_u32(uint32_t id, uint8_t type, uint32_t v);
void protocol_error(uint16_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void flush_blocking(int ms);
void conn_open(int in_fd, int out_fd);
void conn_close(void);
void process_input(void);

/* session.c */
struct session *session_find(uint32_t id);
int sessions_open(void);
struct session *session_new(uint32_t id, enum kind kind);
void session_free(struct session *s);
void kill_group(struct session *s);
void reset_sessions(void);

/* ops.c */
void op_hello(const struct ag_frame *f);
void op_health(const struct ag_frame *f);
void op_ports(const struct ag_frame *f);
void op_shutdown(const struct ag_frame *f);

/* identity.c */
void op_identity(const struct ag_frame *f);
#ifdef AGENT_HOST_BUILD
int write_test_file(const char *name, const void *data, size_t len, int append);
#endif

/* exec.c */
void op_exec(const struct ag_frame *f);
void stdin_frame(struct session *s, const struct ag_frame *f);
void window_frame(struct session *s, const struct ag_frame *f);
void signal_frame(struct session *s, const struct ag_frame *f);
void resize_frame(struct session *s, const struct ag_frame *f);
void abort_frame(struct session *s);
void pump_output(struct session *s, int err);
void pump_stdin(struct session *s);
void maybe_exit(struct session *s);
void reap(void);

/* files.c */
void op_put(const struct ag_frame *f);
void put_data(struct session *s, const struct ag_frame *f);
void op_get(const struct ag_frame *f);
void pump_get(struct session *s);

/* list.c */
void op_list(const struct ag_frame *f);

/* transport.c */
int open_virtio_port(void);
int listen_unix(const char *path);
int listen_vsock(unsigned port);
void accept_host(void);
void mode_from_cmdline(unsigned *vsock_port);

#endif
