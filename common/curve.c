// CurveZMQ on the fabric: zcert files, socket options, zauth and peer names.
#include "curve.h"

#include <ctype.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define CURVE_FILE_MAX 65536            // a zcert file is a few hundred bytes
#define CURVE_RELOAD_MS 1000            // re-read authorized/ at most this often
#define CURVE_HOWTO "create the fabric's certificates with `aigw-certs init %s`, " \
                    "or one more with `aigw-certs add %s --dir %s`"

//  Peer table: the public certificates of authorized/ by Z85 key.
typedef struct {
    const char *dir;                    // the authorized/ folder (not owned)
    const cfg_fabric_t *fabric;         // for curve_peer_t.client (not owned)
    zhashx_t *peers;                    // Z85 public key -> curve_peer_t (owned)
    int64_t loaded_ms;                  // last read of dir
} s_table_t;

//  The ZAP handler of the clients-only context (metrics PUB).
typedef struct {
    void *ctx;                          // its zmq context (owned by the server)
    void *rep;                          // ZAP REP socket, bound to inproc://zeromq.zap.01
    s_table_t table;                    // its own copy: used only by its thread
    pthread_t thread;
    bool started;
} s_zap_t;

struct _curve_server_t {
    zactor_t *auth;                     // CZMQ zauth
    curve_cert_t own;
    char authorized[PATH_MAX];
    cfg_fabric_t fabric;                // policy (copied: the config may be freed)
    s_table_t table;                    // used by the caller's thread
    s_zap_t zap;
};

static int s_err (char *err, size_t errlen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
static int s_err (char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (err, errlen, fmt, ap);
        va_end (ap);
    }
    return -1;
}

static void s_wipe (void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

static bool s_z85_key (const char *txt)
{
    uint8_t bin[32];
    bool ok = txt && strlen (txt) == CURVE_KEY_TXT - 1 && zmq_z85_decode (bin, txt) != NULL;
    s_wipe (bin, sizeof bin);
    return ok;
}

//  Same rule as config.c for certificate names.
static bool s_name_ok (const char *v)
{
    if (!v || !isalnum ((unsigned char) v[0]) || strlen (v) >= CFG_CERT_NAME_MAX)
        return false;
    for (const char *p = v; *p; p++)
        if (!(isalnum ((unsigned char) *p) || strchr ("._-", *p)))
            return false;
    return true;
}

//  Read a whole certificate file into buf (NUL-terminated). secret: refuse group or
//  other permission bits. Returns 0, -1 with err set, or -2 if the file is missing.
static int s_read (const char *path, bool secret, char *buf, size_t cap, char *err,
                   size_t errlen)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return -2;
    if (fd < 0)
        return s_err (err, errlen, "curve: %s: cannot open: %s", path, strerror (errno));
    struct stat st;
    int rc = 0;
    if (fstat (fd, &st) || !S_ISREG (st.st_mode))
        rc = s_err (err, errlen, "curve: %s: not a regular file", path);
    else
    if (secret && (st.st_mode & 077))
        rc = s_err (err, errlen, "curve: %s: secret certificate is open to group or others "
                    "(mode %04o); run `chmod 600 %s`", path, (unsigned) (st.st_mode & 07777),
                    path);
    size_t n = 0;
    while (!rc && n + 1 < cap) {
        ssize_t got = read (fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            rc = s_err (err, errlen, "curve: %s: cannot read: %s", path, strerror (errno));
        if (got <= 0)
            break;
        n += (size_t) got;
    }
    close (fd);
    if (!rc && n + 1 >= cap)
        rc = s_err (err, errlen, "curve: %s: larger than %zu bytes: not a certificate", path,
                    cap - 1);
    buf[rc ? 0 : n] = 0;
    return rc;
}

//  Take the keys and name out of zcert text; wipes the parsed secret.
static int s_parse (curve_cert_t *self, const char *path, const char *text, bool secret,
                    const char *stem, char *err, size_t errlen)
{
    zconfig_t *root = zconfig_str_load (text);
    if (!root)
        return s_err (err, errlen, "curve: %s: not a certificate (ZPL as CZMQ zcert writes)",
                      path);
    const char *pub = zconfig_get (root, "curve/public-key", NULL);
    zconfig_t *sec = zconfig_locate (root, "curve/secret-key");
    const char *name = zconfig_get (root, "metadata/name", NULL);
    int rc = 0;
    if (!s_z85_key (pub))
        rc = s_err (err, errlen, "curve: %s: curve/public-key is not a 40-character Z85 key",
                    path);
    else
    if (secret && !(sec && s_z85_key (zconfig_value (sec))))
        rc = s_err (err, errlen, "curve: %s: curve/secret-key missing or not a Z85 key (is "
                    "it a public certificate?)", path);
    if (!rc) {
        memset (self, 0, sizeof *self);
        memcpy (self->public_txt, pub, CURVE_KEY_TXT);
        snprintf (self->name, sizeof self->name, "%s", s_name_ok (name) ? name : stem);
    }
    if (!rc && secret) {
        memcpy (self->secret_txt, zconfig_value (sec), CURVE_KEY_TXT);
        char derived[CURVE_KEY_TXT];
        if (zmq_curve_public (derived, self->secret_txt) || strcmp (derived, pub) != 0)
            rc = s_err (err, errlen, "curve: %s: its public key does not belong to its secret "
                        "key (edited file?); make a new one with `aigw-certs add %s`", path,
                        stem);
    }
    if (sec && zconfig_value (sec))
        s_wipe (zconfig_value (sec), strlen (zconfig_value (sec)));
    zconfig_destroy (&root);
    if (rc)
        curve_cert_wipe (self);
    return rc;
}

int curve_cert_load_secret (curve_cert_t *self, const char *dir, const char *name,
                            const char *key, char *err, size_t errlen)
{
    memset (self, 0, sizeof *self);
    char path[PATH_MAX];
    if (snprintf (path, sizeof path, "%s/%s.cert_secret", dir, name) >= (int) sizeof path)
        return s_err (err, errlen, "curve: %s: path too long", dir);
    char *text = malloc (CURVE_FILE_MAX);
    if (!text)
        return s_err (err, errlen, "curve: out of memory");
    int rc = s_read (path, true, text, CURVE_FILE_MAX, err, errlen);
    if (rc == -2)
        rc = s_err (err, errlen, "curve: %s: secret certificate not found (%s = %s); "
                    CURVE_HOWTO, path, key, name, dir, name, dir);
    if (rc == 0)
        rc = s_parse (self, path, text, true, name, err, errlen);
    s_wipe (text, CURVE_FILE_MAX);
    free (text);
    return rc;
}

int curve_cert_load_public (curve_cert_t *self, const char *path, const char *key,
                            char *err, size_t errlen)
{
    memset (self, 0, sizeof *self);
    char stem[CFG_CERT_NAME_MAX] = "";
    const char *base = strrchr (path, '/') ? strrchr (path, '/') + 1 : path;
    size_t n = strcspn (base, ".");
    snprintf (stem, sizeof stem, "%.*s", (int) (n < sizeof stem ? n : sizeof stem - 1), base);
    char *text = malloc (CURVE_FILE_MAX);
    if (!text)
        return s_err (err, errlen, "curve: out of memory");
    int rc = s_read (path, false, text, CURVE_FILE_MAX, err, errlen);
    if (rc == -2)
        rc = s_err (err, errlen, "curve: %s: public certificate not found (%s = %s); copy it "
                    "there from the broker's certificate folder, or run `aigw-certs init DIR`",
                    path, key, stem);
    if (rc == 0)
        rc = s_parse (self, path, text, false, stem, err, errlen);
    free (text);
    return rc;
}

void curve_cert_wipe (curve_cert_t *self)
{
    if (self)
        s_wipe (self->secret_txt, sizeof self->secret_txt);
}

//  ---------------------------------------------------------------------------
//  Client side

int curve_check_bind (const cfg_t *cfg, const char *key, const char *endpoint, char *err,
                      size_t errlen)
{
    if (cfg->fabric.curve || cfg->fabric.insecure || cfg_is_loopback (endpoint))
        return 0;
    return s_err (err, errlen,
                  "protected mode: %s = %s is not a loopback address and fabric/curve is off, "
                  "so anyone who reaches it could submit jobs on your API keys, pose as a "
                  "worker and read prompts. Turn CURVE on: run `aigw-certs init DIR`, then set "
                  "fabric/curve = on and fabric/cert_dir = DIR; or, only on a network you "
                  "trust, set fabric/insecure = true", key, endpoint);
}

int curve_client_load (curve_client_t *self, const cfg_t *cfg, const char *cert,
                       const char *key, const char *endpoint, char *err, size_t errlen)
{
    memset (self, 0, sizeof *self);
    if (!cfg->fabric.curve) {
        if (!endpoint || cfg->fabric.insecure || cfg_is_loopback (endpoint))
            return 0;
        return s_err (err, errlen,
                      "protected mode: the broker %s is not a loopback address and fabric/curve "
                      "is off, so prompts and answers would cross the network in clear text to "
                      "whoever listens there. Turn CURVE on: run `aigw-certs init DIR` on the "
                      "broker's host, copy this process's certificate here, then set "
                      "fabric/curve = on and fabric/cert_dir; or, only on a network you trust, "
                      "set fabric/insecure = true", endpoint);
    }
    if (!zmq_has ("curve"))
        return s_err (err, errlen, "fabric/curve = on, but this libzmq has no CURVE support");
    const char *dir = cfg->fabric.cert_dir;
    if (curve_cert_load_secret (&self->own, dir, cert, key, err, errlen))
        return -1;
    char path[PATH_MAX];
    curve_cert_t server;
    if (snprintf (path, sizeof path, "%s/%s.cert", dir, cfg->broker.cert) >= (int) sizeof path
        || curve_cert_load_public (&server, path, "broker/cert", err, errlen)) {
        curve_client_wipe (self);
        return -1;
    }
    memcpy (self->server_txt, server.public_txt, CURVE_KEY_TXT);
    self->on = true;
    return 0;
}

int curve_client_apply (const curve_client_t *self, void *sock)
{
    if (!self || !self->on)
        return 0;
    const size_t n = CURVE_KEY_TXT - 1;
    if (zmq_setsockopt (sock, ZMQ_CURVE_SERVERKEY, self->server_txt, n)
        || zmq_setsockopt (sock, ZMQ_CURVE_PUBLICKEY, self->own.public_txt, n)
        || zmq_setsockopt (sock, ZMQ_CURVE_SECRETKEY, self->own.secret_txt, n))
        return -1;
    return 0;
}

void curve_client_wipe (curve_client_t *self)
{
    if (!self)
        return;
    curve_cert_wipe (&self->own);
    self->on = false;
}

//  ---------------------------------------------------------------------------
//  Policy

bool curve_glob (const char *p, const char *t)
{
    const char *star = NULL, *resume = NULL;
    while (*t) {
        if (*p == '*') {
            star = p++;
            resume = t;
        }
        else
        if (*p == *t) {
            p++;
            t++;
        }
        else
        if (star) {
            p = star + 1;
            t = ++resume;
        }
        else
            return false;
    }
    while (*p == '*')
        p++;
    return *p == 0;
}

//  Call fn on each item of a comma list until it returns true.
static bool s_any (const char *list, bool (*fn) (const char *item, size_t len, const void *arg),
                   const void *arg)
{
    const char *p = list;
    while (p && *p) {
        p += strspn (p, ", \t");
        size_t n = strcspn (p, ", \t");
        if (n == 0)
            break;
        if (fn (p, n, arg))
            return true;
        p += n;
    }
    return false;
}

static bool s_item_is (const char *item, size_t len, const void *arg)
{
    return strlen (arg) == len && memcmp (item, arg, len) == 0;
}

static bool s_item_matches (const char *item, size_t len, const void *arg)
{
    char pattern[CFG_STR_MAX];
    if (len >= sizeof pattern)
        return false;
    memcpy (pattern, item, len);
    pattern[len] = 0;
    return curve_glob (pattern, arg);
}

bool curve_in_list (const char *list, const char *name)
{
    return name && s_any (list, s_item_is, name);
}

bool curve_may_serve (const cfg_fabric_t *fabric, const char *name, const char *model)
{
    for (size_t i = 0; name && model && i < fabric->nworkers; i++)
        if (streq (fabric->workers[i].name, name))
            return s_any (fabric->workers[i].models, s_item_matches, model);
    return false;
}

//  ---------------------------------------------------------------------------
//  Server side

static void s_peer_free (void **item)
{
    free (*item);
    *item = NULL;
}

//  (Re)read the public certificates of t->dir; the old table stays on failure.
static int s_table_load (s_table_t *t, char *err, size_t errlen)
{
    t->loaded_ms = zclock_mono ();
    DIR *d = opendir (t->dir);
    if (!d)
        return s_err (err, errlen, "curve: %s: cannot open the authorized certificates: %s",
                      t->dir, strerror (errno));
    zhashx_t *peers = zhashx_new ();
    if (!peers) {
        closedir (d);
        return s_err (err, errlen, "curve: out of memory");
    }
    zhashx_set_destructor (peers, s_peer_free);
    struct dirent *e;
    while ((e = readdir (d))) {
        size_t n = strlen (e->d_name);
        if (n < 6 || strcmp (e->d_name + n - 5, ".cert") != 0)
            continue;
        char path[PATH_MAX], why[512];
        curve_cert_t c;
        if (snprintf (path, sizeof path, "%s/%s", t->dir, e->d_name) >= (int) sizeof path
            || curve_cert_load_public (&c, path, "fabric/cert_dir", why, sizeof why))
            continue;
        curve_peer_t *p = calloc (1, sizeof *p);
        if (!p)
            break;
        memcpy (p->name, c.name, sizeof p->name);
        p->client = curve_in_list (t->fabric->clients, p->name);
        zhashx_update (peers, c.public_txt, p);
    }
    closedir (d);
    zhashx_destroy (&t->peers);
    t->peers = peers;
    return 0;
}

//  The peer with that Z85 key; a miss re-reads the folder at most once a second.
static const curve_peer_t *s_table_find (s_table_t *t, const char *key)
{
    if (!key || strlen (key) != CURVE_KEY_TXT - 1)
        return NULL;
    const curve_peer_t *p = zhashx_lookup (t->peers, key);
    if (!p && zclock_mono () - t->loaded_ms >= CURVE_RELOAD_MS) {
        s_table_load (t, NULL, 0);
        p = zhashx_lookup (t->peers, key);
    }
    return p;
}

//  Answer one ZAP request (RFC 27): 200 for a CURVE key of a fabric/clients
//  certificate, with the Z85 key as User-Id; 400 for anything else.
static void s_zap_answer (s_zap_t *z)
{
    zmq_msg_t f[8];
    int n = 0;
    for (bool more = true; more && n < 8; n++) {
        zmq_msg_init (&f[n]);
        if (zmq_msg_recv (&f[n], z->rep, 0) < 0) {
            zmq_msg_close (&f[n]);
            break;
        }
        more = zmq_msg_more (&f[n]);
    }
    while (n == 8 && zmq_msg_more (&f[7])) {      // not a ZAP request: drop the rest
        zmq_msg_t rest;
        zmq_msg_init (&rest);
        int rc = zmq_msg_recv (&rest, z->rep, 0);
        bool more = rc >= 0 && zmq_msg_more (&rest);
        zmq_msg_close (&rest);
        if (!more)
            break;
    }
    char key[CURVE_KEY_TXT] = "";
    bool curve = n >= 7 && zmq_msg_size (&f[5]) == 5
                 && memcmp (zmq_msg_data (&f[5]), "CURVE", 5) == 0 && zmq_msg_size (&f[6]) == 32;
    if (curve)
        zmq_z85_encode (key, zmq_msg_data (&f[6]), 32);
    const curve_peer_t *p = curve ? s_table_find (&z->table, key) : NULL;
    bool ok = p && p->client;
    if (n >= 2) {
        zmq_send (z->rep, "1.0", 3, ZMQ_SNDMORE);
        zmq_send (z->rep, zmq_msg_data (&f[1]), zmq_msg_size (&f[1]), ZMQ_SNDMORE);
        zmq_send (z->rep, ok ? "200" : "400", 3, ZMQ_SNDMORE);
        const char *text = ok ? "OK" : "not a fabric/clients certificate";
        zmq_send (z->rep, text, strlen (text), ZMQ_SNDMORE);
        zmq_send (z->rep, ok ? key : "", ok ? strlen (key) : 0, ZMQ_SNDMORE);
        zmq_send (z->rep, "", 0, 0);
    }
    for (int i = 0; i < n && i < 8; i++)
        zmq_msg_close (&f[i]);
}

static void *s_zap_run (void *arg)
{
    s_zap_t *z = arg;
    while (true) {
        zmq_pollitem_t item = { z->rep, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;                      // ETERM: the server is going away
        }
        s_zap_answer (z);
    }
    zmq_close (z->rep);
    z->rep = NULL;
    return NULL;
}

static int s_zap_start (curve_server_t *self, char *err, size_t errlen)
{
    s_zap_t *z = &self->zap;
    z->table.dir = self->authorized;
    z->table.fabric = &self->fabric;
    z->ctx = zmq_ctx_new ();
    z->rep = z->ctx ? zmq_socket (z->ctx, ZMQ_REP) : NULL;
    int zero = 0;
    if (!z->rep || zmq_setsockopt (z->rep, ZMQ_LINGER, &zero, sizeof zero)
        || zmq_bind (z->rep, "inproc://zeromq.zap.01"))
        return s_err (err, errlen, "curve: cannot start the clients' ZAP handler: %s",
                      zmq_strerror (errno));
    if (s_table_load (&z->table, err, errlen))
        return -1;
    if (pthread_create (&z->thread, NULL, s_zap_run, z))
        return s_err (err, errlen, "curve: cannot start the clients' ZAP thread");
    z->started = true;
    return 0;
}

static void s_zap_stop (s_zap_t *z)
{
    if (z->ctx)
        zmq_ctx_shutdown (z->ctx);      // wakes the thread's poll with ETERM
    if (z->started)
        pthread_join (z->thread, NULL);
    else
    if (z->rep)
        zmq_close (z->rep);
    if (z->ctx)
        zmq_ctx_term (z->ctx);
    zhashx_destroy (&z->table.peers);
    memset (z, 0, sizeof *z);
}

static int s_check_authorized (const char *dir, const char *cert_dir, char *err, size_t errlen)
{
    struct stat st;
    if (stat (dir, &st) || !S_ISDIR (st.st_mode))
        return s_err (err, errlen, "curve: %s: no folder of authorized certificates; "
                      CURVE_HOWTO, dir, cert_dir, "NAME", cert_dir);
    if (st.st_mode & 022)
        return s_err (err, errlen, "curve: %s: group or others may add certificates to it "
                      "(mode %04o); run `chmod go-w %s`", dir, (unsigned) (st.st_mode & 07777),
                      dir);
    return 0;
}

curve_server_t *curve_server_new (const cfg_t *cfg, char *err, size_t errlen)
{
    if (!cfg->fabric.curve) {
        s_err (err, errlen, "curve: fabric/curve is off");
        return NULL;
    }
    if (!zmq_has ("curve")) {
        s_err (err, errlen, "fabric/curve = on, but this libzmq has no CURVE support");
        return NULL;
    }
    curve_server_t *self = calloc (1, sizeof *self);
    if (!self) {
        s_err (err, errlen, "curve: out of memory");
        return NULL;
    }
    self->fabric = cfg->fabric;
    const char *dir = cfg->fabric.cert_dir;
    self->table.dir = self->authorized;
    self->table.fabric = &self->fabric;
    if (snprintf (self->authorized, sizeof self->authorized, "%s/authorized", dir)
            >= (int) sizeof self->authorized) {
        s_err (err, errlen, "curve: %s: path too long", dir);
        goto fail;
    }
    if (curve_cert_load_secret (&self->own, dir, cfg->broker.cert, "broker/cert", err, errlen)
        || s_check_authorized (self->authorized, dir, err, errlen)
        || s_table_load (&self->table, err, errlen) || s_zap_start (self, err, errlen))
        goto fail;
    self->auth = zactor_new (zauth, NULL);
    if (!self->auth) {
        s_err (err, errlen, "curve: cannot start the ZAP authenticator (zauth)");
        goto fail;
    }
    zstr_sendx (self->auth, "CURVE", self->authorized, NULL);
    zsock_wait (self->auth);
    return self;
fail:
    curve_server_destroy (&self);
    return NULL;
}

void curve_server_destroy (curve_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    curve_server_t *self = *self_p;
    zactor_destroy (&self->auth);
    s_zap_stop (&self->zap);
    zhashx_destroy (&self->table.peers);
    curve_cert_wipe (&self->own);
    free (self);
    *self_p = NULL;
}

void *curve_server_clients_ctx (curve_server_t *self)
{
    return self->zap.ctx;
}

int curve_server_apply (const curve_server_t *self, void *sock)
{
    int one = 1;
    if (zmq_setsockopt (sock, ZMQ_CURVE_SERVER, &one, sizeof one)
        || zmq_setsockopt (sock, ZMQ_CURVE_SECRETKEY, self->own.secret_txt, CURVE_KEY_TXT - 1)
        || zmq_setsockopt (sock, ZMQ_ZAP_DOMAIN, "aigw", 4))
        return -1;
#ifdef ZMQ_ZAP_ENFORCE_DOMAIN
    zmq_setsockopt (sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one);
#endif
    return 0;
}

const curve_peer_t *curve_server_peer (curve_server_t *self, const char *user_id)
{
    return self ? s_table_find (&self->table, user_id) : NULL;
}

bool curve_server_may_serve (const curve_server_t *self, const curve_peer_t *peer,
                             const char *model)
{
    return self && peer && curve_may_serve (&self->fabric, peer->name, model);
}
