--[[
  suppress_remove: `mailroom suppress remove ADDR`: the address leaves the suppression
  list, its entry and its index member together.

  Input:
    KEYS index     mailroom:{suppress}:index
    KEYS entry     mailroom:{suppress}:addr:<address>
    ARGV address   the address as the list spells it (suppress.h)

  Output:
    1 when the address had an entry, 0 when it had none (a lapsed index member is
    dropped all the same)
]]
redis.call('ZREM', index, address)
return redis.call('DEL', entry)
