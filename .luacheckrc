-- luacheck configuration for common/lua: the scripts run inside Redis (Lua 5.1 with
-- redis, cjson, cmsgpack, bit, struct). Each script's keys and arguments are locals
-- of a prelude the build generates from the script's "Input:" block, and its
-- "--@include x" lines pull in common/lua/include/x.lua; so, per script, the names of
-- its Input block, the job states table S and the functions of its includes are
-- known here, read from the same files by the same rules as cmake/lua_scripts.cmake.
std = "lua51"
read_globals = {"redis", "cjson", "cmsgpack", "bit", "struct", "KEYS", "ARGV"}
max_line_length = 100

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

-- The scripts' folder, read from where luacheck runs (the top of the tree, or
-- common/lua itself); paths in `files` are relative to this file's folder.
local dir = "common/lua/"
local here = read(dir .. "enqueue.lua") and dir or ""

-- The names a script may use without defining them.
local function known_names(text)
  local names = {"S"}
  local header = text:match("^%-%-%[%[(.-)%]%]\n") or ""
  for name in header:gmatch("\n    KEYS +([%a_][%w_]*)") do names[#names + 1] = name end
  for name in header:gmatch("\n    ARGV +([%a_][%w_]*)") do names[#names + 1] = name end
  for inc in text:gmatch("%-%-@include ([%a_]+)") do
    local inc_text = read(here .. "include/" .. inc .. ".lua") or ""
    for fn in inc_text:gmatch("\nlocal function ([%a_][%w_]*)") do names[#names + 1] = fn end
  end
  return names
end

local listing = io.popen("ls " .. (here == "" and "." or here) .. " 2>/dev/null")
if listing then
  for name in listing:lines() do
    local text = name:match("%.lua$") and read(here .. name)
    if text then files[dir .. name] = {read_globals = known_names(text)} end
  end
  listing:close()
end
-- An include defines a helper for the scripts that include it (so it is used there),
-- and may call the helpers of the other includes, which those scripts include too.
local helpers = {"S"}
local includes = io.popen("ls " .. here .. "include 2>/dev/null")
if includes then
  for name in includes:lines() do
    local text = read(here .. "include/" .. name) or ""
    for fn in text:gmatch("\nlocal function ([%a_][%w_]*)") do helpers[#helpers + 1] = fn end
  end
  includes:close()
end
files[dir .. "include/"] = {unused = false, read_globals = helpers}
