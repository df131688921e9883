/* suppress: see suppress.h. */
#include "suppress.h"

int suppress_address(const char *s, size_t len, char out[ADDR_SPEC_MAX + 1], mr_error *err)
{
    if (addr_spec_parse(s, len, out, NULL, err) != 0)
        return -1;
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return 0;
}
