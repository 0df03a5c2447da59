// checksrc fixture: each banned call once (plus one split over two lines), between
// decoys that must not be reported: sprintf (in a comment), "atoi (in a string)".
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int my_atoi (const char *s);

int fixture_banned (char *buf, char *src, char *line)
{
    sprintf (buf, "%s", "strcpy (not this one)");
    strcpy (buf, src);  /* strcat (not this one either) */
    strcat(buf, src);
    char *tok = strtok (line, ",");     // strtok_r (line, ",", &save) would be fine
    int n = atoi (tok) + my_atoi (tok) + snprintf (buf, 8, "%d", 1);
    gets (line);
    return n + atoi
        (src);
}
