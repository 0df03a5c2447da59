// aigw-certs: make and list the fabric's CURVE certificates (CZMQ zcert files).
// Secret files are written mode 0600 under umask 077, folders 0700 (docs/security.md).
#include <czmq.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "curve.h"

#define DEFAULT_CONFIG "config/aigw.conf"

typedef struct {
    const char *cmd;                    // init, add, list
    const char *arg;                    // DIR for init, NAME for add
    const char *dir;                    // --dir
    const char *config;                 // --config
    bool force;
    bool authorize;                     // add: copy the public file into authorized/
} args_t;

static void s_usage (FILE *out)
{
    fprintf (out,
             "usage: aigw-certs init DIR [--force]\n"
             "       aigw-certs add NAME [--dir DIR] [--force] [--no-authorize]\n"
             "       aigw-certs list [--dir DIR]\n"
             "       aigw-certs --help\n"
             "  init DIR        create the broker, edge, worker and agent certificates in DIR\n"
             "                  and authorize edge, worker and agent (DIR/authorized/)\n"
             "  add NAME        create one more certificate and authorize it\n"
             "  list            print each certificate's name and public key (never secrets)\n"
             "  --dir DIR       certificate folder (default: fabric/cert_dir of --config)\n"
             "  --config FILE   aigw config to take fabric/cert_dir from (default "
             DEFAULT_CONFIG ")\n"
             "  --force         replace certificates that exist\n"
             "  --no-authorize  add: do not copy it into DIR/authorized (e.g. a new broker key)\n"
             "Files: NAME.cert (public), NAME.cert_secret (secret, mode 0600),\n"
             "authorized/NAME.cert (the public certificates the broker lets in).\n");
}

static bool s_name_ok (const char *v)
{
    if (!isalnum ((unsigned char) v[0]) || strlen (v) >= CFG_CERT_NAME_MAX)
        return false;
    for (const char *p = v; *p; p++)
        if (!(isalnum ((unsigned char) *p) || strchr ("._-", *p)))
            return false;
    return true;
}

//  Returns 0 to run, 1 for --help, 2 for bad usage.
static int s_args (int argc, char **argv, args_t *a)
{
    a->authorize = true;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (streq (arg, "--help") || streq (arg, "-h"))
            return 1;
        if (streq (arg, "--dir") || streq (arg, "--config")) {
            if (i + 1 >= argc) {
                fprintf (stderr, "aigw-certs: %s needs a value\n", arg);
                return 2;
            }
            *(streq (arg, "--dir") ? &a->dir : &a->config) = argv[++i];
        }
        else
        if (streq (arg, "--force"))
            a->force = true;
        else
        if (streq (arg, "--no-authorize"))
            a->authorize = false;
        else
        if (arg[0] == '-') {
            fprintf (stderr, "aigw-certs: unknown option '%s'\n", arg);
            return 2;
        }
        else
        if (!a->cmd)
            a->cmd = arg;
        else
        if (!a->arg)
            a->arg = arg;
        else {
            fprintf (stderr, "aigw-certs: unexpected argument '%s'\n", arg);
            return 2;
        }
    }
    if (!a->cmd)
        return 2;
    bool needs_arg = streq (a->cmd, "init") || streq (a->cmd, "add");
    if (!needs_arg && !streq (a->cmd, "list")) {
        fprintf (stderr, "aigw-certs: unknown command '%s'\n", a->cmd);
        return 2;
    }
    if (needs_arg != (a->arg != NULL)) {
        fprintf (stderr, "aigw-certs: %s %s\n", a->cmd, needs_arg ? "needs an argument"
                 : "takes no argument");
        return 2;
    }
    return 0;
}

//  The certificate folder: --dir, else fabric/cert_dir of the config.
static int s_dir (const args_t *a, char *dir, size_t len)
{
    if (a->dir) {
        snprintf (dir, len, "%s", a->dir);
        return 0;
    }
    const char *path = a->config;
    if (!path && access (DEFAULT_CONFIG, R_OK) == 0)
        path = DEFAULT_CONFIG;
    if (!path) {
        fprintf (stderr, "aigw-certs: give --dir DIR (or --config FILE with fabric/cert_dir)\n");
        return -1;
    }
    char err[1024];
    cfg_t *cfg = cfg_load (path, err, sizeof err);
    if (!cfg) {
        fprintf (stderr, "aigw-certs: %s\n", err);
        return -1;
    }
    int rc = 0;
    if (!cfg->fabric.cert_dir[0]) {
        fprintf (stderr, "aigw-certs: %s has no fabric/cert_dir; give --dir DIR\n", path);
        rc = -1;
    }
    snprintf (dir, len, "%s", cfg->fabric.cert_dir);
    cfg_destroy (&cfg);
    return rc;
}

//  Create a folder (and its parents) mode 0700 if missing; warn about an existing
//  folder others may write to.
static int s_mkdir (const char *dir)
{
    struct stat st;
    if (stat (dir, &st) == 0) {
        if (!S_ISDIR (st.st_mode)) {
            fprintf (stderr, "aigw-certs: %s exists and is not a folder\n", dir);
            return -1;
        }
        if (st.st_mode & 022)
            fprintf (stderr, "aigw-certs: warning: group or others may write to %s "
                     "(run `chmod go-w %s`; the broker refuses authorized/ like that)\n", dir, dir);
        return 0;
    }
    if (zsys_dir_create ("%s", dir) || chmod (dir, 0700)) {
        fprintf (stderr, "aigw-certs: cannot create %s: %s\n", dir, strerror (errno));
        return -1;
    }
    return 0;
}

static bool s_exists (const char *path)
{
    struct stat st;
    return lstat (path, &st) == 0;
}

//  Paths of one certificate's files.
typedef struct {
    char pub[PATH_MAX], secret[PATH_MAX], authorized[PATH_MAX];
} paths_t;

static int s_paths (const char *dir, const char *name, paths_t *p)
{
    if (snprintf (p->pub, sizeof p->pub, "%s/%s.cert", dir, name) >= (int) sizeof p->pub
        || snprintf (p->secret, sizeof p->secret, "%s/%s.cert_secret", dir, name)
               >= (int) sizeof p->secret
        || snprintf (p->authorized, sizeof p->authorized, "%s/authorized/%s.cert", dir, name)
               >= (int) sizeof p->authorized) {
        fprintf (stderr, "aigw-certs: %s: path too long\n", dir);
        return -1;
    }
    return 0;
}

//  Refuse to overwrite without --force; with it, remove the old files first (a
//  rewritten file would keep its old mode).
static int s_clear (const paths_t *p, bool authorize, bool force)
{
    const char *files[] = { p->pub, p->secret, authorize ? p->authorized : NULL };
    for (size_t i = 0; i < 3; i++) {
        if (!files[i] || !s_exists (files[i]))
            continue;
        if (!force) {
            fprintf (stderr, "aigw-certs: %s exists; not replacing it (use --force to make "
                     "new keys; every peer using the old ones must get the new files)\n",
                     files[i]);
            return -1;
        }
        if (unlink (files[i])) {
            fprintf (stderr, "aigw-certs: cannot remove %s: %s\n", files[i], strerror (errno));
            return -1;
        }
    }
    return 0;
}

//  Make NAME's keypair: DIR/NAME.cert (0644), DIR/NAME.cert_secret (0600) and,
//  if authorize, DIR/authorized/NAME.cert (0644).
static int s_make (const char *dir, const char *name, bool authorize)
{
    paths_t p;
    if (s_paths (dir, name, &p))
        return -1;
    zcert_t *cert = zcert_new ();
    if (!cert) {
        fprintf (stderr, "aigw-certs: cannot make a keypair\n");
        return -1;
    }
    zcert_set_meta (cert, "name", "%s", name);
    zcert_set_meta (cert, "created-by", "aigw-certs");
    int rc = zcert_save (cert, p.pub);
    if (!rc && authorize)
        rc = zcert_save_public (cert, p.authorized);
    if (!rc)
        rc = chmod (p.secret, 0600) || chmod (p.pub, 0644)
             || (authorize && chmod (p.authorized, 0644)) ? -1 : 0;
    if (rc)
        fprintf (stderr, "aigw-certs: cannot write %s: %s\n", p.pub, strerror (errno));
    else
        printf ("%-12s %s%s\n", name, zcert_public_txt (cert), authorize ? "  (authorized)" : "");
    zcert_destroy (&cert);
    return rc;
}

static int s_init (const args_t *a)
{
    static const char *const names[] = { "broker", "edge", "worker", "agent" };
    const char *dir = a->arg;
    char auth[PATH_MAX];
    snprintf (auth, sizeof auth, "%s/authorized", dir);
    if (s_mkdir (dir) || s_mkdir (auth))
        return 1;
    for (size_t i = 0; i < 4; i++) {
        paths_t p;
        if (s_paths (dir, names[i], &p) || s_clear (&p, i > 0, a->force))
            return 1;
    }
    for (size_t i = 0; i < 4; i++)
        if (s_make (dir, names[i], i > 0))
            return 1;
    printf ("certificates in %s; set fabric/curve = on and fabric/cert_dir = %s\n", dir, dir);
    return 0;
}

static int s_add (const args_t *a)
{
    if (!s_name_ok (a->arg)) {
        fprintf (stderr, "aigw-certs: '%s' is not a certificate name (letters, digits, '.', "
                 "'_', '-', at most %d characters)\n", a->arg, CFG_CERT_NAME_MAX - 1);
        return 2;
    }
    char dir[PATH_MAX], auth[PATH_MAX + 16];
    if (s_dir (a, dir, sizeof dir))
        return 2;
    snprintf (auth, sizeof auth, "%s/authorized", dir);
    paths_t p;
    if (s_mkdir (dir) || (a->authorize && s_mkdir (auth)) || s_paths (dir, a->arg, &p)
        || s_clear (&p, a->authorize, a->force) || s_make (dir, a->arg, a->authorize))
        return 1;
    if (a->authorize)
        printf ("the broker lets %s in now; allow it in fabric/clients or fabric/workers\n",
                a->arg);
    return 0;
}

//  Print the public certificates (*.cert) of one folder.
static int s_list_dir (const char *dir, const char *title)
{
    DIR *d = opendir (dir);
    if (!d) {
        printf ("%s: %s: %s\n", title, dir, strerror (errno));
        return -1;
    }
    printf ("%s (%s):\n", title, dir);
    struct dirent *e;
    while ((e = readdir (d))) {
        size_t n = strlen (e->d_name);
        if (n < 6 || strcmp (e->d_name + n - 5, ".cert") != 0)
            continue;
        char path[PATH_MAX], err[1024];
        curve_cert_t c;
        snprintf (path, sizeof path, "%s/%s", dir, e->d_name);
        if (curve_cert_load_public (&c, path, "file", err, sizeof err))
            printf ("  %-12s (unreadable: %s)\n", e->d_name, err);
        else
            printf ("  %-12s %s\n", c.name, c.public_txt);
    }
    closedir (d);
    return 0;
}

static int s_list (const args_t *a)
{
    char dir[PATH_MAX], auth[PATH_MAX + 16];
    if (s_dir (a, dir, sizeof dir))
        return 2;
    snprintf (auth, sizeof auth, "%s/authorized", dir);
    int rc = s_list_dir (dir, "certificates");
    if (s_list_dir (auth, "authorized"))
        rc = -1;
    return rc ? 1 : 0;
}

int main (int argc, char **argv)
{
    args_t a = { 0 };
    int rc = s_args (argc, argv, &a);
    if (rc) {
        s_usage (rc == 1 ? stdout : stderr);
        return rc == 1 ? 0 : 2;
    }
    umask (077);
    zsys_handler_set (NULL);
    if (streq (a.cmd, "init"))
        return s_init (&a);
    if (streq (a.cmd, "add"))
        return s_add (&a);
    return s_list (&a);
}
