// A key store in a fresh temporary directory, for the cmocka tests of edge/keys.c and
// edge/admin.c: keys_fixture_setup / keys_fixture_teardown as group or test fixtures.
#ifndef AIGW_TEST_KEYS_FIXTURE_H
#define AIGW_TEST_KEYS_FIXTURE_H

#include "keys.h"

typedef struct {
    char dir[64];                       // mkdtemp directory (removed at teardown)
    char path[128];                     // dir/keys.db
    keys_t *keys;
} s_fix_t;

//  *state = a new s_fix_t with an open store; fails the test if it cannot.
int keys_fixture_setup (void **state);
//  Close the store, remove its files and directory, free the fixture.
int keys_fixture_teardown (void **state);

#endif
