/*
 * state: the job states, one enum (the public mailroom_state of mailroom.h) with one
 * name table. The consumer, the library and the CLI use the enum and these names; the
 * Lua scripts get the same names in their generated prelude (S.sent == 'sent'), made
 * from the same enum by cmake/lua_scripts.cmake. A state's name is its enum constant
 * after MAILROOM_STATE_, in lower case.
 */
#ifndef MAILROOM_STATE_H
#define MAILROOM_STATE_H

#include "mailroom.h"

/* The state called name ("queued", "sent", ...); MAILROOM_STATE_UNKNOWN for anything
 * else. */
mailroom_state mr_state_parse(const char *name);

/* 1 for the states a job does not leave: sent, failed, rejected, cancelled. */
int mr_state_final(mailroom_state state);

#endif
