// Watch an HTTP client's socket while its request waits: civetweb 1.15 has no fd
// accessor, so find the connection's fd by its addresses, then poll it for a hang-up.
#ifndef AIGW_EDGE_CWATCH_H
#define AIGW_EDGE_CWATCH_H

#include <stdbool.h>

//  A per-thread cache of the last connection found (keep-alive reuses it).
typedef struct {
    int fd;                             // -1 = none
    char addr[48];                      // peer address as inet_ntop writes it
    int rport;                          // peer port
    int lport;                          // local port
} cwatch_t;

void cwatch_init (cwatch_t *w);

//  The fd of this process's TCP socket whose peer is addr:rport and whose local port
//  is lport: the cached one if it still matches (2 syscalls), else a scan of
//  /proc/self/fd (one getpeername per open fd). A TCP 4-tuple names one open socket,
//  so a match is that connection. Returns the fd, or -1 if none matches.
int cwatch_find (cwatch_t *w, const char *addr, int rport, int lport);

//  True when the peer has closed or reset the connection (FIN, RST or error), even
//  with unread bytes queued. Never blocks, never consumes data. A client that only
//  shuts down its sending side counts as gone.
bool cwatch_gone (int fd);

#endif
