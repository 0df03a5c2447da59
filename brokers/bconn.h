// Connection generations of the worker socket, from its monitor's ACCEPTED and
// DISCONNECTED events: a worker is known by the fd its messages arrive on and that
// fd's generation, so a closed connection names its workers even once the kernel
// has given the fd to a new one. Pure logic: no sockets.
#ifndef AIGW_BCONN_H
#define AIGW_BCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BCONN_FD_MAX (1 << 20)      // fds at or above this are not tracked
#define BCONN_PENDING_MAX 4096      // closed connections waiting for bconn_take

typedef struct {
    uint32_t fd;
    uint32_t gen;                   // the generation its workers were recorded with
} bconn_closed_t;

typedef struct {
    uint32_t *gen;                  // generation by fd (grown on demand)
    size_t cap;
    bconn_closed_t *closed;         // DISCONNECTED, not yet taken
    size_t nclosed, closed_cap;
} bconn_t;

void bconn_init (bconn_t *self);
//  Free the tables. Safe to call twice.
void bconn_fini (bconn_t *self);

//  True if fd's generation is tracked (grows the table). False for fd < 0, fd >=
//  BCONN_FD_MAX, or out of memory: a worker on it is not recorded.
bool bconn_track (bconn_t *self, int fd);
//  fd's generation now (0 if never tracked).
uint32_t bconn_gen (const bconn_t *self, int fd);
//  ACCEPTED: a new connection on fd, a new generation.
void bconn_accepted (bconn_t *self, int fd);
//  DISCONNECTED: fd's connection closed. Its (fd, generation) waits for bconn_take,
//  and fd moves on to a new generation. 0, or -1 if not kept (untracked fd, too many
//  waiting, out of memory).
int bconn_disconnected (bconn_t *self, int fd);
//  True if a closed connection on fd waits for bconn_take (its workers' last messages
//  may still be read: they keep the generation they were recorded with).
bool bconn_closing (const bconn_t *self, int fd);
//  Take the oldest closed connection into *out: true, or false if none waits.
bool bconn_take (bconn_t *self, bconn_closed_t *out);

#endif
