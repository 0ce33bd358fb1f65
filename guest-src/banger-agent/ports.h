/* Listening sockets from /proc/net/{tcp,tcp6,udp,udp6}. */
#ifndef BANGER_AGENT_PORTS_H
#define BANGER_AGENT_PORTS_H

#include <stddef.h>
#include <stdint.h>

#define AG_PORT_ENTRY 24

struct ag_port {
  uint8_t protocol; /* 6 tcp, 17 udp */
  uint8_t family;   /* 4, 6 */
  uint16_t port;
  uint8_t addr[16];
  uint32_t uid;
};

/*
 * Parses one line of a /proc/net/{tcp,udp}{,6} table. Returns 1 and fills out
 * when the line is a listening TCP / bound unconnected UDP socket, 0 otherwise
 * (header, other states, malformed). Pure: safe on any input.
 */
int ag_port_parse_line(const char *line, uint8_t protocol, uint8_t family, struct ag_port *out);

/* Serialises a port entry (AG_PORT_ENTRY bytes). */
void ag_port_encode(const struct ag_port *p, uint8_t *out);

/*
 * Reads the four tables under dir (normally "/proc/net") into out (at most
 * max entries); *truncated is set when more were found.
 */
size_t ag_ports_read(const char *dir, struct ag_port *out, size_t max, int *truncated);

#endif
