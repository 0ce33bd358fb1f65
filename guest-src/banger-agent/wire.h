/*
 * The agent's wire format (docs/agent-protocol.md): frame header parsing,
 * payload decoders and frame encoders. Pure functions, no system calls, so
 * they can be fuzzed alone.
 */
#ifndef BANGER_AGENT_WIRE_H
#define BANGER_AGENT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define AG_VERSION 2
#define AG_HEADER 9
#define AG_MAX_PAYLOAD 131072
#define AG_WINDOW_INITIAL 131072
#define AG_MAX_SESSIONS 64
#define AG_DATA_CHUNK 32768
#define AG_MAX_ARGS 4096
#define AG_MAX_ERROR_MSG 1024
#define AG_MAX_PATH 4095
#define AG_MAX_HOSTNAME 64
#define AG_MAX_ENTROPY 512
#define AG_MAX_LIST 65536 /* FILE_LIST: most entries a host may ask for */
#define AG_LIST_ENTRY 25 /* FILE_LIST_REPLY entry before its name */
#define AG_MAGIC "BANGERAG"
#define AG_MAGIC_LEN 8
#define AG_NONE 0xFFFFFFFFu
#define AG_NAME "banger-agent 1"

enum ag_type {
  AG_HELLO = 0x01,
  AG_ERROR = 0x02,
  AG_OK = 0x03,
  AG_WINDOW = 0x04,
  AG_ABORT = 0x05,
  AG_HEALTH = 0x10,
  AG_HEALTH_REPLY = 0x11,
  AG_EXEC = 0x20,
  AG_EXEC_STARTED = 0x21,
  AG_STDIN = 0x22,
  AG_STDOUT = 0x23,
  AG_STDERR = 0x24,
  AG_EXIT = 0x25,
  AG_SIGNAL = 0x26,
  AG_RESIZE = 0x27,
  AG_PORTS = 0x30,
  AG_PORTS_REPLY = 0x31,
  AG_FILE_PUT = 0x40,
  AG_FILE_GET = 0x41,
  AG_FILE_INFO = 0x42,
  AG_FILE_DATA = 0x43,
  AG_FILE_LIST = 0x44,
  AG_FILE_LIST_REPLY = 0x45,
  AG_SHUTDOWN = 0x50,
  AG_SET_IDENTITY = 0x60,
};

enum ag_error_code {
  AG_E_PROTOCOL = 1,
  AG_E_VERSION = 2,
  AG_E_UNKNOWN_TYPE = 3,
  AG_E_BAD_REQUEST = 4,
  AG_E_TOO_MANY = 5,
  AG_E_SYSTEM = 6,
  AG_E_ABORTED = 7,
};

#define AG_EXEC_PTY 1u

struct ag_frame {
  uint32_t length;
  uint32_t session;
  uint8_t type;
  const uint8_t *payload;
};

/*
 * Parses one frame at buf[0..len). Returns the bytes it spans (> 0), 0 when
 * more bytes are needed, -1 when the header is malformed (*why says how).
 * Never reads past len; rejects an oversized length from the header alone.
 */
long ag_frame_parse(const uint8_t *buf, size_t len, struct ag_frame *out, const char **why);

/* Finds the start of a host HELLO frame (header + magic) in buf, or -1. */
long ag_find_hello(const uint8_t *buf, size_t len);
/* Bytes of a host HELLO prefix: header + magic. */
#define AG_HELLO_PREFIX (AG_HEADER + AG_MAGIC_LEN)

/* Bounds-checked cursor over a payload; any overrun sets bad. */
struct ag_reader {
  const uint8_t *p;
  size_t left;
  int bad;
};
void ag_reader_init(struct ag_reader *r, const uint8_t *p, size_t len);
uint8_t ag_get_u8(struct ag_reader *r);
uint16_t ag_get_u16(struct ag_reader *r);
uint32_t ag_get_u32(struct ag_reader *r);
uint64_t ag_get_u64(struct ag_reader *r);
/* A u32-length-prefixed string; returns its bytes (not NUL-terminated). */
const uint8_t *ag_get_str(struct ag_reader *r, uint32_t *len);

struct ag_hello {
  uint16_t min_version;
  uint16_t max_version;
};

struct ag_exec_req {
  uint32_t flags, uid, gid;
  uint16_t rows, cols;
  char *cwd; /* "" = leave */
  char **argv; /* NULL-terminated */
  char **envp; /* NULL-terminated */
  uint32_t argc, envc;
  char *strings; /* storage behind cwd/argv/envp */
};

struct ag_put_req {
  uint32_t mode, uid, gid;
  uint64_t size;
  char path[AG_MAX_PATH + 1];
};

struct ag_identity {
  int has_hostname;
  char hostname[AG_MAX_HOSTNAME + 1];
  size_t entropy_len;
  uint8_t entropy[AG_MAX_ENTROPY];
  int has_machine_id;
  char machine_id[33]; /* 32 lowercase hex digits */
  uint64_t clock_ns;   /* 0: not given */
  int has_network, has_dns;
  uint8_t ip[4], prefix, gateway[4], mac[6], dns[4];
  int reseed, open_gate;
  int rng_sample; /* test-only: write the first random bytes after the reseed step to RNG_SAMPLE_PATH */
};

/* Decoders: 0 on success, -1 with a message in err (naming the bad field). */
int ag_decode_hello(const uint8_t *p, size_t len, struct ag_hello *out, char *err, size_t errlen);
int ag_decode_exec(const uint8_t *p, size_t len, struct ag_exec_req *out, char *err, size_t errlen);
void ag_exec_req_free(struct ag_exec_req *req);
int ag_decode_put(const uint8_t *p, size_t len, struct ag_put_req *out, char *err, size_t errlen);
int ag_decode_get(const uint8_t *p, size_t len, char *path, size_t pathlen, char *err, size_t errlen);
int ag_decode_list(const uint8_t *p, size_t len, uint32_t *max_entries, char *path, size_t pathlen, char *err,
                   size_t errlen);
int ag_decode_u32(const uint8_t *p, size_t len, uint32_t *out, const char *what, char *err, size_t errlen);
int ag_decode_resize(const uint8_t *p, size_t len, uint16_t *rows, uint16_t *cols, char *err, size_t errlen);
int ag_decode_shutdown(const uint8_t *p, size_t len, int *reboot_instead, char *err, size_t errlen);
int ag_decode_identity(const uint8_t *p, size_t len, struct ag_identity *out, char *err, size_t errlen);

/* An append-only byte buffer that never grows past max. */
struct ag_buf {
  uint8_t *data;
  size_t off, len, cap, max;
};
/* Appends a frame header and reserves payload_len bytes; returns where the
 * payload goes, or NULL when the buffer would pass its max. */
uint8_t *ag_frame_begin(struct ag_buf *b, uint32_t session, uint8_t type, size_t payload_len);
int ag_frame_bytes(struct ag_buf *b, uint32_t session, uint8_t type, const void *data, size_t len);
int ag_frame_error(struct ag_buf *b, uint32_t session, uint16_t code, uint32_t err_no, const char *msg);
size_t ag_buf_pending(const struct ag_buf *b);
void ag_buf_consume(struct ag_buf *b, size_t n);
void ag_buf_clear(struct ag_buf *b);

void ag_put_u16(uint8_t *p, uint16_t v);
void ag_put_u32(uint8_t *p, uint32_t v);
void ag_put_u64(uint8_t *p, uint64_t v);

#endif
