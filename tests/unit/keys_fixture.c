// A key store in a fresh temporary directory (see keys_fixture.h).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "keys_fixture.h"

int keys_fixture_setup (void **state)
{
    s_fix_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    snprintf (f->dir, sizeof f->dir, "/tmp/aigw-keys-XXXXXX");   // mkdtemp's template
    assert_non_null (mkdtemp (f->dir));
    snprintf (f->path, sizeof f->path, "%s/keys.db", f->dir);
    char err[256] = "";
    f->keys = keys_open (f->path, err, sizeof err);
    if (!f->keys)
        fprintf (stderr, "keys_open: %s\n", err);
    assert_non_null (f->keys);
    *state = f;
    return 0;
}

int keys_fixture_teardown (void **state)
{
    s_fix_t *f = *state;
    keys_close (&f->keys);
    const char *suffixes[] = { "", "-wal", "-shm", "-journal" };
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char p[160];
        snprintf (p, sizeof p, "%s%s", f->path, suffixes[i]);
        unlink (p);
    }
    rmdir (f->dir);
    free (f);
    return 0;
}
