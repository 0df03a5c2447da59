// Unit tests for the client-socket watch (edge/cwatch.c) and the job waiter
// (edge/waiter.c): fd lookup by addresses, hang-up detection, ticks and deadlines.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "cwatch.h"
#include "waiter.h"
#include "link.h"
#include "fake_broker.h"
#include "aclock.h"
#include "log.h"

typedef struct {
    int lfd, cfd, sfd;                  // listener, client end, server (accepted) end
    int lport, cport;
} s_conn_t;

static int s_port (int fd, bool peer)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (peer)
        getpeername (fd, (struct sockaddr *) &sa, &len);
    else
        getsockname (fd, (struct sockaddr *) &sa, &len);
    return ntohs (sa.sin_port);
}

static void s_connect (s_conn_t *c)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    inet_pton (AF_INET, "127.0.0.1", &sa.sin_addr);
    c->lfd = socket (AF_INET, SOCK_STREAM, 0);
    assert_int_equal (bind (c->lfd, (struct sockaddr *) &sa, sizeof sa), 0);
    assert_int_equal (listen (c->lfd, 4), 0);
    c->lport = s_port (c->lfd, false);
    sa.sin_port = htons ((uint16_t) c->lport);
    c->cfd = socket (AF_INET, SOCK_STREAM, 0);
    assert_int_equal (connect (c->cfd, (struct sockaddr *) &sa, sizeof sa), 0);
    c->sfd = accept (c->lfd, NULL, NULL);
    assert_true (c->sfd >= 0);
    c->cport = s_port (c->cfd, false);
}

static void s_close_all (s_conn_t *c)
{
    if (c->cfd >= 0)
        close (c->cfd);
    close (c->sfd);
    close (c->lfd);
}

static void s_sleep_ms (int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    nanosleep (&ts, NULL);
}

static void test_find (void **state)
{
    s_conn_t c;
    s_connect (&c);
    cwatch_t w;
    cwatch_init (&w);
    assert_int_equal (cwatch_find (&w, "127.0.0.1", c.cport, c.lport), c.sfd);
    assert_int_equal (cwatch_find (&w, "127.0.0.1", c.cport, c.lport), c.sfd);     // cached
    //  The client's own end has the reverse tuple: never confused with the server end
    cwatch_t w2;
    cwatch_init (&w2);
    assert_int_equal (cwatch_find (&w2, "127.0.0.1", c.lport, c.cport), c.cfd);
    assert_int_equal (cwatch_find (&w2, "127.0.0.1", c.cport + 1 == c.lport ? c.cport + 2
                                                                           : c.cport + 1,
                                   c.lport), -1);
    assert_int_equal (cwatch_find (&w2, "10.0.0.1", c.cport, c.lport), -1);
    assert_int_equal (cwatch_find (&w2, "", c.cport, c.lport), -1);
    assert_int_equal (cwatch_find (&w2, NULL, c.cport, c.lport), -1);
    assert_int_equal (cwatch_find (&w2, "127.0.0.1", 0, c.lport), -1);
    //  Closed: the stale cache entry no longer matches
    s_close_all (&c);
    assert_int_equal (cwatch_find (&w, "127.0.0.1", c.cport, c.lport), -1);
    assert_false (cwatch_gone (-1));
}

static void test_gone (void **state)
{
    s_conn_t c;
    //  Orderly close
    s_connect (&c);
    assert_false (cwatch_gone (c.sfd));
    close (c.cfd);
    c.cfd = -1;
    assert_true (cwatch_gone (c.sfd));
    s_close_all (&c);
    //  Unread bytes (a pipelined request) are not a hang-up, and are left in place
    s_connect (&c);
    assert_int_equal (send (c.cfd, "GET / HTTP/1.1\r\n", 16, 0), 16);
    s_sleep_ms (5);
    assert_false (cwatch_gone (c.sfd));
    assert_false (cwatch_gone (c.sfd));
    //  ... but a close behind them is
    close (c.cfd);
    c.cfd = -1;
    assert_true (cwatch_gone (c.sfd));
    char buf[32];
    assert_int_equal (recv (c.sfd, buf, sizeof buf, 0), 16);
    s_close_all (&c);
    //  Reset
    s_connect (&c);
    struct linger lg = { 1, 0 };
    setsockopt (c.cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close (c.cfd);
    c.cfd = -1;
    s_sleep_ms (5);
    assert_true (cwatch_gone (c.sfd));
    s_close_all (&c);
    //  Half-close counts as gone
    s_connect (&c);
    shutdown (c.cfd, SHUT_WR);
    s_sleep_ms (5);
    assert_true (cwatch_gone (c.sfd));
    s_close_all (&c);
}

//  --------------------------------------------------------------- waiter

typedef struct {
    fake_broker_t *fb;
    cfg_t *cfg;
    edge_link_t *link;
    edge_client_t *client;
    int sv[2];                          // sv[0] plays the HTTP client's socket
    int finds;
} s_fix_t;

static s_fix_t *s_f;

static int s_find (void *arg)
{
    s_fix_t *f = arg;
    f->finds++;
    return f->sv[0];
}

static int s_setup (void **state)
{
    log_init ("edge-test", LOG_LVL_WARN);
    s_f = calloc (1, sizeof *s_f);
    s_f->fb = fake_broker_new ("tcp://127.0.0.1:*", "fast,never", 1);
    char err[256];
    s_f->cfg = cfg_parse ("broker\n    heartbeat_ms = 50\n", "test", err, sizeof err);
    if (!s_f->fb || !s_f->cfg)
        return -1;
    snprintf (s_f->cfg->edge.broker, sizeof s_f->cfg->edge.broker, "%s",
              fake_broker_endpoint (s_f->fb));
    s_f->link = edge_link_new (s_f->cfg);
    s_f->client = s_f->link ? edge_client_new (s_f->link) : NULL;
    for (int i = 0; i < 400 && s_f->link && !edge_link_up (s_f->link); i++)
        s_sleep_ms (5);
    return s_f->client && edge_link_up (s_f->link) ? 0 : -1;
}

static int s_teardown (void **state)
{
    edge_client_destroy (&s_f->client);
    edge_link_destroy (&s_f->link);
    fake_broker_destroy (&s_f->fb);
    cfg_destroy (&s_f->cfg);
    free (s_f);
    return 0;
}

static uint64_t s_submit (const char *target, bool stream)
{
    uint64_t id = edge_link_next_job_id (s_f->link);
    Aigw__Job job = AIGW__JOB__INIT;
    char *targets[1] = { (char *) target };
    job.job_id = id;
    job.n_targets = 1;
    job.targets = targets;
    job.has_stream = stream;
    job.stream = stream;
    const char *payload = "{}";
    assert_int_equal (edge_client_submit (s_f->client, &job, payload, 2), 0);
    return id;
}

static void test_waiter (void **state)
{
    assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, s_f->sv), 0);
    uint64_t id = s_submit ("never", false);
    edge_waiter_t w;
    int64_t t0 = aclock_now_ms ();
    edge_waiter_init (&w, s_f->client, id, t0 + 5000, 30, s_find, s_f);
    edge_answer_t a;
    //  A tick comes first; the fd is not looked up before watch_after_ms
    assert_int_equal (edge_waiter_next (&w, t0 + 10, &a), EDGE_WAIT_TICK);
    assert_int_equal (s_f->finds, 0);
    //  The client hangs up early: noticed once the watch starts (30 ms)
    close (s_f->sv[1]);
    assert_int_equal (edge_waiter_next (&w, 0, &a), EDGE_WAIT_GONE);
    int64_t took = aclock_now_ms () - t0;
    assert_true (took >= 29 && took < 500);
    assert_int_equal (s_f->finds, 1);
    edge_client_cancel (s_f->client, id);
    close (s_f->sv[0]);

    //  Watched from the start: a hang-up mid-wait wakes the waiter at once
    assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, s_f->sv), 0);
    id = s_submit ("never", false);
    edge_waiter_init (&w, s_f->client, id, aclock_now_ms () + 5000, 0, s_find, s_f);
    assert_int_equal (edge_waiter_next (&w, aclock_now_ms () + 20, &a), EDGE_WAIT_TICK);
    close (s_f->sv[1]);
    t0 = aclock_now_ms ();
    assert_int_equal (edge_waiter_next (&w, aclock_now_ms () + 2000, &a), EDGE_WAIT_GONE);
    assert_true (aclock_now_ms () - t0 < 50);
    edge_client_cancel (s_f->client, id);
    close (s_f->sv[0]);
}

static void test_waiter_pending_bytes (void **state)
{
    //  Unread bytes on the client's socket: checked every CHECK_MS instead of polled
    assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, s_f->sv), 0);
    assert_int_equal (write (s_f->sv[1], "x", 1), 1);
    uint64_t id = s_submit ("never", false);
    edge_waiter_t w;
    edge_waiter_init (&w, s_f->client, id, aclock_now_ms () + 5000, 0, s_find, s_f);
    edge_answer_t a;
    int64_t t0 = aclock_now_ms ();
    assert_int_equal (edge_waiter_next (&w, t0 + 150, &a), EDGE_WAIT_TICK);
    assert_true (aclock_now_ms () - t0 >= 149);
    close (s_f->sv[1]);
    t0 = aclock_now_ms ();
    assert_int_equal (edge_waiter_next (&w, 0, &a), EDGE_WAIT_GONE);
    assert_true (aclock_now_ms () - t0 <= EDGE_WAITER_CHECK_MS + 30);
    edge_client_cancel (s_f->client, id);
    close (s_f->sv[0]);
}

static void test_waiter_answers (void **state)
{
    //  Answers, in order: chunks then the result
    uint64_t id = s_submit ("fast", true);
    edge_waiter_t w;
    edge_waiter_init (&w, s_f->client, id, aclock_now_ms () + 5000, 0, NULL, NULL);
    edge_answer_t a;
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal (edge_waiter_next (&w, 0, &a), EDGE_WAIT_ANSWER);
        assert_non_null (a.chunk);
        assert_int_equal (a.chunk->seq, i);
        edge_answer_reset (&a);
    }
    assert_int_equal (edge_waiter_next (&w, 0, &a), EDGE_WAIT_ANSWER);
    assert_non_null (a.result);
    edge_answer_reset (&a);
    //  Nothing comes: the time limit
    id = s_submit ("never", false);
    int64_t t0 = aclock_now_ms ();
    edge_waiter_init (&w, s_f->client, id, t0 + 40, 0, NULL, NULL);
    assert_int_equal (edge_waiter_next (&w, 0, &a), EDGE_WAIT_EXPIRED);
    assert_true (aclock_now_ms () - t0 >= 40);
    edge_client_cancel (s_f->client, id);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_find),
        cmocka_unit_test (test_gone),
        cmocka_unit_test (test_waiter),
        cmocka_unit_test (test_waiter_pending_bytes),
        cmocka_unit_test (test_waiter_answers),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
