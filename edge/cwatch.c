// Client-socket watch: find a connection's fd by its addresses and detect a hang-up.
#define _GNU_SOURCE                     // POLLRDHUP
#include "cwatch.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void cwatch_init (cwatch_t *w)
{
    w->fd = -1;
    w->addr[0] = 0;
    w->rport = w->lport = 0;
}

//  Port of an inet address and its text form in addr. -1 for other families.
static int s_inet (const struct sockaddr_storage *ss, char *addr, size_t size)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sa = (const struct sockaddr_in *) ss;
        if (addr && !inet_ntop (AF_INET, &sa->sin_addr, addr, (socklen_t) size))
            return -1;
        return ntohs (sa->sin_port);
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sa = (const struct sockaddr_in6 *) ss;
        if (addr && !inet_ntop (AF_INET6, &sa->sin6_addr, addr, (socklen_t) size))
            return -1;
        return ntohs (sa->sin6_port);
    }
    return -1;
}

//  Does fd's connection have this peer and local port?
static bool s_matches (int fd, const char *addr, int rport, int lport)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername (fd, (struct sockaddr *) &ss, &len) || s_inet (&ss, NULL, 0) != rport)
        return false;
    char text[INET6_ADDRSTRLEN + 8];
    if (s_inet (&ss, text, sizeof text) != rport || strcmp (text, addr) != 0)
        return false;
    len = sizeof ss;
    return getsockname (fd, (struct sockaddr *) &ss, &len) == 0
           && s_inet (&ss, NULL, 0) == lport;
}

static int s_scan (const char *addr, int rport, int lport)
{
    DIR *dir = opendir ("/proc/self/fd");
    if (!dir)
        return -1;
    int skip = dirfd (dir), found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir (dir))) {
        char *end = NULL;
        long fd = strtol (e->d_name, &end, 10);
        if (end == e->d_name || *end || fd < 0 || fd == skip || fd > 0x7fffffffL)
            continue;
        if (s_matches ((int) fd, addr, rport, lport))
            found = (int) fd;
    }
    closedir (dir);
    return found;
}

int cwatch_find (cwatch_t *w, const char *addr, int rport, int lport)
{
    if (!addr || !addr[0] || rport <= 0 || lport <= 0 || strlen (addr) >= sizeof w->addr)
        return -1;
    if (w->fd >= 0 && w->rport == rport && w->lport == lport && strcmp (w->addr, addr) == 0
        && s_matches (w->fd, addr, rport, lport))
        return w->fd;
    w->fd = s_scan (addr, rport, lport);
    snprintf (w->addr, sizeof w->addr, "%s", addr);
    w->rport = rport;
    w->lport = lport;
    return w->fd;
}

bool cwatch_gone (int fd)
{
    if (fd < 0)
        return false;
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
    int n = poll (&p, 1, 0);
    if (n < 0)
        return errno != EINTR && errno != ENOMEM;
    if (n == 0)
        return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
        return true;
    //  Readable: EOF reads as 0 bytes; data (a pipelined request) is left in place
    char c;
    ssize_t r = recv (fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}
