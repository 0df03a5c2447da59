// checksrc fixture: no banned call. Decoys only: the names in comments, strings,
// character literals, longer identifiers and struct members must not be reported.
// sprintf (buf, "x"); strcpy (a, b); strcat (a, b); strtok (s, ","); atoi (s); gets (s);
/* a block comment: sprintf (buf, "%d", 1);
   strcpy (dst, src); atoi ("12"); */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ops {
    int (*atoi) (const char *);
    char *(*gets) (char *);
};

static const char *s_names = "sprintf (x) strcpy (y) strcat (z) strtok (w) atoi (v) gets (u)";
static const char s_quote = '"';        // a quote in a char literal does not open a string
static const char *s_escaped = "a \" strcpy (a, b) \\";

int my_atoi (const char *s);
int atoi_checked (const char *s, int *out);
int strcat_count (const char *s);

int fixture_clean (char *buf, size_t size, char *line, struct ops *o, const struct ops *p,
                   va_list ap)
{
    char *save = NULL;
    snprintf (buf, size, "%s %c %s", s_names, s_quote, s_escaped);
    vsnprintf (buf, size, "%d", ap);    /* sprintf */
    char *tok = strtok_r (line, ",", &save);
    fgets (line, 16, stdin);
    o->atoi (tok);
    p -> gets (line);
    (void) o->gets;
    return my_atoi (buf) + atoi_checked (buf, NULL) + strcat_count (buf);
}
