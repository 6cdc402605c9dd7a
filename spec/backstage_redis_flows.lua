-- Drives every script of lowbit.backstage.redis_store (push, claim,
-- extend, ack, retry, fail, release, tick, len) through one queue, for
-- the specs that check the statements on a Redis Cluster and the keys the
-- scripts touch (MONITOR). Runs inside lowbit.run.
local lowbit = require "lowbit"
local context = require "lowbit.context"
local bs = require "lowbit.backstage"

local M = {}

local eventually = require("support").eventually

local function count(evs, ty)
  local n = 0
  for _, e in ipairs(evs) do if e.type == ty then n = n + 1 end end
  return n
end

--- run(mk, q) -> results. mk(opts) makes a store (opts has queue and the
--- store options; mk adds the address). Results: dup (push of a queued
--- id), dup_done (of a finished id within the ttl), after_ttl (the same
--- after it; the lease margins are wide, for a busy machine), len, ticks ({ first, again, every }), done (ids run to
--- the end, in order), dead ({ id = reason }), flaky_attempts, stats
--- (at the end).
function M.run(mk, q)
  local r = {}
  local opts = { queue = q, visibility = 2, max_stalls = 0, dead_max = 1, dedupe_ttl = 0.5,
                 extend_interval = 0.1 }
  local st = mk(opts)
  -- A job claimed by another store, released (release), claimed again
  -- and abandoned (its lease expires: recovered by claim, stalls 1 >
  -- max_stalls 0: dead "stalled").
  local st2 = mk({ queue = q, visibility = 0.3 })
  assert(st:push({ id = "stall", name = "ok" }))
  local ctx2, cancel2 = context.with_cancel(context.background())
  local j = assert(st2:pop(ctx2))
  assert(j.id == "stall", j.id)
  assert(st2:release(j))
  j = assert(st2:pop(ctx2))
  assert(j.id == "stall", j.id)
  cancel2()
  lowbit.sleep(0.05)
  st2:close()

  assert(st:push({ id = "a", name = "ok" }))
  r.dup = select(2, st:push({ id = "a", name = "ok" }))
  assert(st:push({ name = "ok" })) -- an id made by the store
  assert(st:push({ id = "later", name = "ok", delay = 0.05 }))
  assert(st:push({ id = "flaky", name = "flaky", retries = 2, retry_delay = 0.05 }))
  assert(st:push({ id = "flaky0", name = "flaky", retries = 1, retry_delay = 0 }))
  assert(st:push({ id = "bad", name = "bad", retries = 0 }))
  assert(st:push({ id = "slow", name = "slow" }))
  r.len = st:len()
  r.ticks = { st:tick("sv", "beat", 1800000000), st:tick("sv", "beat", 1800000000),
              st:tick("sv", "each", 1800000000, bs.every(1)) }

  local evs = {}
  local sv = bs.new("flows", { logger = false, on_event = function(e) evs[#evs + 1] = e end })
  sv:register_queue(q, { workers = 4, store = st })
  r.done, r.dead, r.flaky_attempts = {}, {}, {}
  sv:handle("ok", function(_, job) r.done[#r.done + 1] = job.id or "(store id)" end)
  sv:handle("flaky", function(_, job)
    r.flaky_attempts[job.id] = job.attempt
    if job.attempt == 1 then return nil, "flaky" end
    r.done[#r.done + 1] = job.id
  end)
  sv:handle("bad", function() return nil, "bad" end)
  sv:handle("slow", function(_, job) lowbit.sleep(0.25); r.done[#r.done + 1] = job.id end)
  local ctx, cancel = context.with_cancel(context.background())
  local ended = lowbit.chan(1)
  lowbit.go(function() ended:send({ sv:serve(ctx) }) end)
  assert(eventually(function() return #r.done == 6 and count(evs, "job_dead") == 2 end), "jobs did not finish")
  for _, e in ipairs(evs) do if e.type == "job_dead" then r.dead[e.id] = e.reason end end
  -- Dedupe of a finished id, then past the ttl.
  assert(st:push({ id = "b", name = "ok" }))
  assert(eventually(function() return #r.done == 7 and st:stats().active == 0 end), "b did not finish")
  r.dup_done = select(2, st:push({ id = "b", name = "ok" }))
  lowbit.sleep(0.6)
  r.after_ttl = st:push({ id = "b", name = "ok" })
  assert(eventually(function() return #r.done == 8 end), "the re-pushed job did not run")
  cancel()
  ended:recv()
  r.stats = st:stats()
  st:close()
  return r
end

--- The assertions both specs make on run's results.
function M.check(r)
  local errors = require "lowbit.errors"
  local assert = require "luassert"
  assert.is_true(errors.is(r.dup, bs.DUPLICATE))
  assert.is_true(errors.is(r.dup_done, bs.DUPLICATE))
  assert.is_true(r.after_ttl)
  assert.equal(7, r.len) -- ready and delayed; "stall" is leased
  assert.same({ true, false, true }, r.ticks)
  table.sort(r.done)
  assert.same({ "(store id)", "a", "b", "b", "flaky", "flaky0", "later", "slow" }, r.done)
  assert.same({ bad = "failed", stall = "stalled" }, r.dead)
  assert.same({ flaky = 2, flaky0 = 2 }, r.flaky_attempts)
  assert.same({ ready = 0, active = 0, delayed = 0, dead = 1 }, r.stats) -- dead_max = 1
end

return M
