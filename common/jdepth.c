// JSON nesting depth check without recursion (see jdepth.h).
#include "jdepth.h"

#include <stdbool.h>

int jdepth_check (const char *buf, size_t len, unsigned max_depth)
{
    unsigned depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_string) {
            if (c == '\\')
                i++;                    // skip the escaped byte (the loop ends at len)
            else
            if (c == '"')
                in_string = false;
        }
        else
        if (c == '"')
            in_string = true;
        else
        if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return -1;
        }
        else
        if ((c == ']' || c == '}') && depth > 0)
            depth--;
    }
    return 0;
}
