-- topic: one event, several independent handlers. Every handler runs on
-- every publish; failures come back joined; a raising handler is contained
-- by with_recovery; a flaky one is retried by with_retry.
--
--   build/bin/lowbit examples/topic.lua
local context = require "lowbit.context"
local errors = require "lowbit.errors"
local topic = require "lowbit.topic"

local users_created = topic.new{
  check = function(ev)
    return type(ev) == "table" and type(ev.id) == "string", "{ id = string } expected"
  end,
}

users_created:subscribe(function(ctx, ev)
  print("  email: welcome mail to " .. ev.id)
end)

local credit_attempts = 0
users_created:subscribe(function(ctx, ev)
  credit_attempts = credit_attempts + 1
  if credit_attempts % 2 == 1 then return nil, errors.new("billing timeout") end
  print("  billing: welcome credit for " .. ev.id)
end, users_created:with_retry(2, 0.01))

local cancel_audit = users_created:subscribe(function(ctx, ev)
  if ev.id == "u_2" then error("audit store is read-only") end
  print("  audit: recorded " .. ev.id)
end, users_created:with_recovery())

return function(ctx)
  for _, id in ipairs({ "u_1", "u_2" }) do
    print("publish " .. id)
    local err = users_created:publish(ctx, { id = id })
    if err then
      for _, e in ipairs(errors.list(err)) do
        print("  handler failed: " .. tostring(e):match("^[^\n]*")) -- first line; the rest is the traceback
      end
    end
  end
  cancel_audit()
  print("publish u_3 (audit unsubscribed)")
  assert(users_created:publish(ctx, { id = "u_3" }) == nil)
  local ok, err = pcall(users_created.publish, users_created, ctx, "not an event")
  print("misuse raises:", err)
end
