-- redis: lowbit.redis against a running redis-server. Calls, a pipeline,
-- a server error value, a script with the NOSCRIPT fallback, and pub/sub.
--
--   redis-server --port 6379 --save '' &       (Debian: apt-get install redis-server)
--   build/bin/lowbit examples/redis.lua [host:port]
local lowbit = require "lowbit"
local redis = require "lowbit.redis"
local errors = require "lowbit.errors"

local addr = arg and arg[1] or "127.0.0.1:6379"

local c, err = redis.connect{ addr = addr, connect_timeout = 2, timeout = 5 }
if not c then
  print(("redis-server is not running at %s (%s)."):format(addr, tostring(err)))
  print("Start one with: redis-server --port " .. (addr:match(":(%d+)$") or "6379") ..
        " --save '' --appendonly no")
  os.exit(1)
end

-- Calls: replies are Lua values; a missing key is redis.null.
assert(c:call("SET", "example:greeting", "hello"))
print("GET example:greeting ->", c:call("GET", "example:greeting"))
print("GET example:missing  ->", c:call("GET", "example:missing"), "(redis.null)")

-- A server error is a value: nil, err with errors.is(err, redis.SERVER_ERROR).
local v, serr = c:call("INCR", "example:greeting")
print("INCR on a string     ->", v, tostring(serr), errors.is(serr, redis.SERVER_ERROR))

-- A pipeline: three commands, one write, three replies in order.
local res = assert(c:pipeline(function(p)
  p:call("DEL", "example:n")
  p:call("INCRBY", "example:n", 40)
  p:call("INCRBY", "example:n", 2)
end))
print("pipeline             ->", res[1], res[2], res[3])

-- A script: EVALSHA first, EVAL when the server answers NOSCRIPT.
local script = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
print("eval_script          ->", c:eval_script(script, { "example:n" }, { 100 }))

-- Pub/sub: a dedicated subscriber connection.
local sub = assert(redis.connect(addr))
assert(sub:subscribe("example:news"))
lowbit.go(function()
  lowbit.sleep(0.05)
  c:call("PUBLISH", "example:news", "lowbit speaks RESP")
end)
local msg = assert(sub:read_message())
print("message on " .. msg.channel .. "  ->", msg.payload)
sub:close()

c:call("DEL", "example:greeting", "example:n")
c:release() -- back to the pool for the next redis.connect(addr)
