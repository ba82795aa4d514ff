-- wrk's script for the capacity figures (bench/capacity.py runs it; wrk is Debian's, LuaJIT inside).
--
--   SHOP_WRK_MODE=order  POST /api/orders, two lines each (SHOP_WRK_PRODUCTS="a,b"), each request with the next
--                        customer's token of SHOP_WRK_TOKENS (a file, one token a line), threads starting apart
--   SHOP_WRK_MODE=get    GET /api/products/<first of SHOP_WRK_PRODUCTS>
--   SHOP_WRK_RATE=r      paced: r requests/s in all (SHOP_WRK_THREADS threads share it), each request given a
--                        slot on a fixed schedule, wrk2-like, and sent at its slot or as soon as a connection is
--                        free after it; 0 or unset: closed loop, each connection sends again at once
--   SHOP_WRK_OUT=path    where done() writes what it counted, as JSON
--
-- Every answer is counted by its status; a 429 or 503 that carries Retry-After (the shop's backpressure) is
-- counted as "<status>+retry-after". Socket errors and timeouts come from wrk's own summary.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } shop_timespec;
int clock_gettime(int clk_id, shop_timespec *tp);
]]
local clock = ffi.new("shop_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local mode = os.getenv("SHOP_WRK_MODE") or "order"
local rate = tonumber(os.getenv("SHOP_WRK_RATE") or "0") or 0
local thread_total = tonumber(os.getenv("SHOP_WRK_THREADS") or "1") or 1

-- ---- the main state: one entry per thread, read back in done() ----

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

-- ---- each thread's own state ----

counts = {} -- a global: done() reads it with thread:get
local tokens = {}
local next_token = 1
local body, path
local interval, next_slot = 0, 0

local function split(text, sep)
  local out = {}
  for part in string.gmatch(text, "[^" .. sep .. "]+") do table.insert(out, part) end
  return out
end

function init(args)
  counts = {}
  local products = split(os.getenv("SHOP_WRK_PRODUCTS") or "", ",")
  if mode == "get" then
    path = "/api/products/" .. products[1]
  else
    local file = assert(io.open(assert(os.getenv("SHOP_WRK_TOKENS"), "SHOP_WRK_TOKENS"), "r"))
    for line in file:lines() do if #line > 0 then table.insert(tokens, line) end end
    file:close()
    assert(#tokens > 0, "no tokens")
    -- threads start at different customers, so that they rotate over all of them side by side
    next_token = ((thread_number or 1) - 1) * math.floor(#tokens / thread_total) % #tokens + 1
    body = string.format('{"items": [{"product_id": %s, "quantity": 1}, {"product_id": %s, "quantity": 1}]}',
      products[1], products[2])
  end
  if rate > 0 then
    interval = 1000 * thread_total / rate
    next_slot = now_ms() + interval * ((thread_number or 1) - 1) / thread_total
  end
end

function request()
  if mode == "get" then
    return wrk.format("GET", path)
  end
  local token = tokens[next_token]
  next_token = next_token % #tokens + 1
  return wrk.format("POST", "/api/orders",
    { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }, body)
end

function delay()
  if interval == 0 then return 0 end
  local slot = next_slot
  next_slot = next_slot + interval
  local wait = slot - now_ms()
  if wait <= 0 then return 0 end
  return wait
end

function response(status, headers, _)
  local key = tostring(status)
  if status == 429 or status == 503 then
    for name, _ in pairs(headers) do
      if string.lower(name) == "retry-after" then key = key .. "+retry-after" break end
    end
  end
  counts[key] = (counts[key] or 0) + 1
end

-- ---- back in the main state ----

function done(summary, latency, _)
  local statuses = {}
  for _, thread in ipairs(threads) do
    local theirs = thread:get("counts")
    for key, n in pairs(theirs) do statuses[key] = (statuses[key] or 0) + n end
  end
  local parts = {}
  for key, n in pairs(statuses) do table.insert(parts, string.format('"%s": %d', key, n)) end
  local e = summary.errors
  local json = string.format(
    '{"requests": %d, "duration_us": %d, "statuses": {%s}, "socket_errors": {"connect": %d, "read": %d,'
      .. ' "write": %d, "timeout": %d}, "non_2xx_3xx": %d, "latency_ms": {"mean": %.2f, "p50": %.2f,'
      .. ' "p99": %.2f, "max": %.2f}}',
    summary.requests, summary.duration, table.concat(parts, ", "), e.connect, e.read, e.write, e.timeout, e.status,
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000)
  local out = os.getenv("SHOP_WRK_OUT")
  if out then
    local file = assert(io.open(out, "w"))
    file:write(json, "\n")
    file:close()
  else
    io.write(json, "\n")
  end
end
