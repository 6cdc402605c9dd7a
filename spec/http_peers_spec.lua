-- lowbit's HTTP server and client against other implementations: curl,
-- Node's http module (keep-alive agent, pipelining over a raw socket).
local support = require "support"
local proc = require "support.proc"
local sh, host, tmpfile = support.sh, support.host, support.tmpfile

-- Starts `lowbit script 127.0.0.1:port` (a free port) in the background
-- until it answers; returns the port and a stop function (by pid).
local function start(script)
  local port = support.free_port()
  local f = tmpfile(script, ".lua")
  local p = proc.start({ host, f, "127.0.0.1:" .. port },
    { ready = function() return proc.answers(("http://127.0.0.1:%d/"):format(port)) end })
  return port, function()
    p.cleanup()
    os.remove(f)
  end
end

local SERVER = [[
local http = require "lowbit.http"
return function(ctx, addr)
  local srv = http.server{ handler = function(w, r)
    local body = r.body:read_all()
    w:header():set("Content-Type", "text/plain")
    w:header():set("X-Remote", r.remote_addr)
    if r.url.path == "/stream" then
      for i = 1, 3 do w:write("part" .. i .. "\n"); w:flush() end
      return
    end
    w:write(r.method .. " " .. r.url.path .. " " .. #body .. " " .. (r.headers:get("X-Test") or "-") .. "\n")
  end }
  require("lowbit").go(function() ctx:wait(); srv:shutdown() end)
  srv:listen_and_serve(addr)
end
]]

describe("http with curl", function()
  local port, stop
  setup(function() port, stop = start(SERVER) end)
  teardown(function() stop() end)

  it("GET, with a custom header", function()
    local out, rc = sh(("curl -sf -H 'X-Test: yes' http://127.0.0.1:%d/a/b"):format(port))
    assert.equal(0, rc)
    assert.equal("GET /a/b 0 yes\n", out)
  end)

  it("POST with a body, and a chunked upload", function()
    local out = sh(("curl -sf -d 'hello=1' http://127.0.0.1:%d/p"):format(port))
    assert.equal("POST /p 7 -\n", out)
    out = sh(("printf 'abcdef' | curl -sf -H 'Transfer-Encoding: chunked' -T - -X POST http://127.0.0.1:%d/up"):format(port))
    assert.equal("POST /up 6 -\n", out)
  end)

  it("HEAD has headers and no body", function()
    local out = sh(("curl -sfI http://127.0.0.1:%d/x"):format(port))
    assert.matches("^HTTP/1.1 200 OK\r\n", out)
    assert.matches("Content%-Length: %d+", out)
  end)

  it("streams flushed chunks", function()
    local out = sh(("curl -sfN http://127.0.0.1:%d/stream"):format(port))
    assert.equal("part1\npart2\npart3\n", out)
  end)

  it("reuses one connection for several URLs", function()
    local out = sh(("curl -sf http://127.0.0.1:%d/1 http://127.0.0.1:%d/2 -w '%%{num_connects}\\n'"):format(port, port))
    assert.matches("GET /1 0 %-\n0?1?\nGET /2 0 %-\n0\n$", out)
  end)
end)

describe("http with Node's http client", function()
  local port, stop
  setup(function() port, stop = start(SERVER) end)
  teardown(function() stop() end)

  it("a keep-alive agent sends 200 requests over one socket", function()
    local js = tmpfile(([[
const http = require("http");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let remotes = new Set(), ok = 0;
function one(i) {
  return new Promise((res, rej) => {
    http.get({ host: "127.0.0.1", port: %d, path: "/n" + i, agent }, (r) => {
      let b = ""; r.on("data", (d) => b += d);
      r.on("end", () => { if (b === "GET /n" + i + " 0 -\n") ok++; remotes.add(r.headers["x-remote"]); res(); });
    }).on("error", rej);
  });
}
(async () => {
  for (let i = 0; i < 200; i++) await one(i);
  console.log(ok + " " + remotes.size);
  agent.destroy();
})().catch((e) => { console.log("error " + e.message); process.exit(1); });
]]):format(port), ".js")
    local out, rc = sh("node " .. js)
    os.remove(js)
    assert.equal(0, rc)
    assert.equal("200 1\n", out)
  end)

  it("pipelined requests on a raw socket come back in order", function()
    local js = tmpfile(([[
const net = require("net");
const s = net.connect(%d, "127.0.0.1", () => {
  let reqs = "";
  for (let i = 0; i < 50; i++) reqs += "GET /p" + i + " HTTP/1.1\r\nHost: x\r\n" + (i === 49 ? "Connection: close\r\n" : "") + "\r\n";
  s.write(reqs);
});
let all = "";
s.on("data", (d) => all += d);
s.on("end", () => {
  const paths = [...all.matchAll(/GET \/p(\d+) /g)].map((m) => +m[1]);
  console.log(paths.length + " " + paths.every((p, i) => p === i));
});
]]):format(port), ".js")
    local out, rc = sh("node " .. js)
    os.remove(js)
    assert.equal(0, rc)
    assert.equal("50 true\n", out)
  end)
end)
