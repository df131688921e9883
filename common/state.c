/* state: see state.h. The public mailroom_state_name() lives here with the table. */
#include "state.h"

#include <string.h>

static const char *const names[] = {
    [MAILROOM_STATE_UNKNOWN] = "unknown",   [MAILROOM_STATE_QUEUED] = "queued",
    [MAILROOM_STATE_SENDING] = "sending",   [MAILROOM_STATE_SENT] = "sent",
    [MAILROOM_STATE_RETRYING] = "retrying", [MAILROOM_STATE_FAILED] = "failed",
    [MAILROOM_STATE_REJECTED] = "rejected", [MAILROOM_STATE_CANCELLED] = "cancelled"};

#define N_STATES (sizeof names / sizeof names[0])

const char *mailroom_state_name(mailroom_state state)
{
    if ((size_t)state >= N_STATES || !names[state])
        return "unknown";
    return names[state];
}

mailroom_state mr_state_parse(const char *name)
{
    for (size_t i = 1; i < N_STATES; i++)
        if (names[i] && strcmp(name, names[i]) == 0)
            return (mailroom_state)i;
    return MAILROOM_STATE_UNKNOWN;
}

int mr_state_final(mailroom_state state)
{
    return state == MAILROOM_STATE_SENT || state == MAILROOM_STATE_FAILED ||
           state == MAILROOM_STATE_REJECTED || state == MAILROOM_STATE_CANCELLED;
}
