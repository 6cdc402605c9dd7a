-- lowbit.stencil.compile: template text -> Lua source -> function.
--
-- Tags (lua-resty-template's): {{ expr }} escaped, {* expr *} raw,
-- {% stmt %} Lua statements, {# text #} comment, {-raw-}...{-raw-} verbatim.
-- While compiling, the HTML context of every {{ }} is tracked (see
-- lowbit.stencil.context) and the action is bound to the escaper pipeline
-- of that context; the block structure of the Lua statements ({% if %},
-- {% else %}, loops, functions) is followed so that branches that end in
-- different contexts are a compile error.
--
-- The generated code keeps the template's line numbers (each node's code
-- sits on the line the node starts on), so Lua's own messages point at the
-- template line. Every free name becomes a local read once per call from
-- the data table, then the helpers; the chunk's environment is empty.
local context = require "lowbit.stencil.context"

local find, sub, byte, format, gsub, match, rep = string.find, string.sub, string.byte, string.format,
  string.gsub, string.match, string.rep
local concat = table.concat

local M = {}

local keywords = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do keywords[w] = true end

local function count_lines(s, i, j)
  local n = 0
  local k = i
  while true do
    local p = find(s, "\n", k, true)
    if not p or p > j then return n end
    n = n + 1
    k = p + 1
  end
end

--- Splits a template into nodes { kind, text, line }: kind is "text",
--- "expr" ({{ }}), "raw" ({* *}), "code" ({% %}). Comments are dropped.
--- Returns nil, line, message on an unclosed or unknown tag.
function M.parse(src)
  local nodes = {}
  local pos, line, n = 1, 1, #src
  local closers = { ["{"] = "}}", ["*"] = "*}", ["%"] = "%}", ["#"] = "#}" }
  local kinds = { ["{"] = "expr", ["*"] = "raw", ["%"] = "code" }
  while pos <= n do
    local i = find(src, "{[{*%%#%-(%[]", pos)
    if not i then
      nodes[#nodes + 1] = { kind = "text", text = sub(src, pos), line = line }
      break
    end
    if i > pos then
      nodes[#nodes + 1] = { kind = "text", text = sub(src, pos, i - 1), line = line }
      line = line + count_lines(src, pos, i - 1)
    end
    local t = sub(src, i + 1, i + 1)
    if t == "(" or t == "[" then
      -- lua-resty-template's {(file)} include and {[expr]} dynamic include.
      local close = t == "(" and ")}" or "]}"
      local j = find(src, close, i + 2, true)
      local nl = find(src, "\n", i + 2, true)
      if j and (not nl or nl > j) then
        return nil, line, "unsupported tag {" .. t .. " " .. close .. " (use {{ partial(name, data) }})"
      end
      nodes[#nodes + 1] = { kind = "text", text = "{" .. t, line = line }
      pos = i + 2
    elseif t == "-" then
      if sub(src, i, i + 6) == "{-raw-}" then
        local j = find(src, "{-raw-}", i + 7, true)
        if not j then return nil, line, "{-raw-} without a closing {-raw-}" end
        nodes[#nodes + 1] = { kind = "text", text = sub(src, i + 7, j - 1), line = line }
        line = line + count_lines(src, i, j - 1)
        pos = j + 7
      else
        local tag = match(src, "^{%-([%w_]+)%-}", i)
        if tag then return nil, line, "unknown tag {-" .. tag .. "-} (only {-raw-} is supported)" end
        nodes[#nodes + 1] = { kind = "text", text = "{-", line = line }
        pos = i + 2
      end
    else
      local close = closers[t]
      local j = find(src, close, i + 2, true)
      if not j then return nil, line, "{" .. t .. " without a closing " .. close end
      local body = sub(src, i + 2, j - 1)
      if t ~= "#" then
        nodes[#nodes + 1] = { kind = kinds[t], text = body, line = line }
      end
      line = line + count_lines(src, i, j + 1)
      pos = j + 2
    end
  end
  return nodes
end

--- Lua tokens of a code fragment: { type = "name"|"kw"|"op"|"str"|"num", v }.
local function lua_tokens(code)
  local toks = {}
  local i, n = 1, #code
  while i <= n do
    local c = sub(code, i, i)
    if find(c, "%s") then
      i = i + 1
    elseif sub(code, i, i + 1) == "--" then
      local lvl = match(code, "^%[(=*)%[", i + 2)
      if lvl then
        local j = find(code, "]" .. lvl .. "]", i, true)
        i = j and j + #lvl + 2 or n + 1
      else
        local j = find(code, "\n", i, true)
        i = j and j + 1 or n + 1
      end
    elseif c == "[" and match(code, "^%[=*%[", i) then
      local lvl = match(code, "^%[(=*)%[", i)
      local j = find(code, "]" .. lvl .. "]", i, true)
      toks[#toks + 1] = { type = "str" }
      i = j and j + #lvl + 2 or n + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = sub(code, j, j)
        if d == "\\" then j = j + 2
        elseif d == c then break
        else j = j + 1 end
      end
      toks[#toks + 1] = { type = "str" }
      i = j + 1
    elseif find(c, "[%a_]") then
      local w = match(code, "^[%w_]+", i)
      toks[#toks + 1] = { type = keywords[w] and "kw" or "name", v = w }
      i = i + #w
    elseif find(c, "%d") or (c == "." and find(sub(code, i + 1, i + 1), "%d")) then
      local w = match(code, "^0[xX]%x+", i) or match(code, "^%d*%.?%d*[eE][%+%-]?%d+", i) or
        match(code, "^%d*%.?%d*", i)
      toks[#toks + 1] = { type = "num" }
      i = i + math.max(#w, 1)
    else
      local op = match(code, "^%.%.%.", i) or match(code, "^[=~<>]=", i) or match(code, "^%.%.", i) or
        match(code, "^::", i) or c
      toks[#toks + 1] = { type = "op", v = op }
      i = i + #op
    end
  end
  return toks
end

-- Free names of a code fragment (names not after '.', ':' or 'goto').
local function collect_names(toks, names)
  for k = 1, #toks do
    local t = toks[k]
    if t.type == "name" then
      local p = toks[k - 1]
      if not (p and ((p.type == "op" and (p.v == "." or p.v == ":" or p.v == "::")) or (p.type == "kw" and p.v == "goto"))) then
        names[t.v] = true
      end
    end
  end
end

local function quote(s)
  return (gsub(format("%q", s), "\\\n", "\\n"))
end

local PREFIX = "__s_"
local EMPTY = setmetatable({}, { __newindex = function() error("read-only", 2) end })

--- Compiles template text. label names it in messages ("views/home.html").
--- Returns { fn, exprs = { [line] = { "{{ expr }}", ... } }, source } or nil
--- and a message "label:line: ...".
function M.compile(src, label, env)
  local nodes, eline, emsg = M.parse(src)
  if not nodes then return nil, format("%s:%d: %s", label, eline, emsg) end

  local c = context.text()
  local stack = {}
  local cerr -- first context error: "line: msg"
  local function fail(line, msg)
    if not cerr then cerr = format("%s:%d: %s", label, line, msg) end
  end

  local pipes, pipe_ids = {}, {}
  local names = {}
  local body = {}
  local cur_line = 1
  local exprs = {}

  local function emit(line, code)
    if line > cur_line then
      body[#body + 1] = rep("\n", line - cur_line)
      cur_line = line
    end
    body[#body + 1] = code
    body[#body + 1] = " "
    cur_line = cur_line + count_lines(code, 1, #code)
  end

  local function join_into(a, b, line, what)
    local j, e = context.join(a, b)
    if not j then fail(line, what .. " " .. e); return a end
    return j
  end

  for _, node in ipairs(nodes) do
    if cerr then break end
    local line = node.line
    if node.kind == "text" then
      local out
      c, out = context.escape_text(c, node.text)
      if c.state == "error" then fail(line, c.err); break end
      if out ~= "" then emit(line, PREFIX .. "b:put(" .. quote(out) .. ")") end
    elseif node.kind == "expr" or node.kind == "raw" then
      local code = node.text
      if not find(code, "%S") then fail(line, "empty {{ }}"); break end
      local toks = lua_tokens(code)
      collect_names(toks, names)
      local shown = node.kind == "expr" and "{{" .. code .. "}}" or "{*" .. code .. "*}"
      local l = exprs[line] or {}
      l[#l + 1] = shown
      exprs[line] = l
      if node.kind == "raw" then
        emit(line, PREFIX .. "b:put(" .. PREFIX .. "raw(" .. code .. "))")
      else
        local stages, c2 = context.stages(c)
        if not stages then fail(line, (c2 or "bad context") .. " at " .. shown); break end
        c = c2
        local k = concat(stages, "+")
        local id = pipe_ids[k]
        if not id then
          pipes[#pipes + 1] = stages
          id = #pipes
          pipe_ids[k] = id
        end
        emit(line, PREFIX .. "b:put(" .. PREFIX .. "e" .. id .. "(" .. code .. "))")
      end
    else -- code
      local toks = lua_tokens(node.text)
      collect_names(toks, names)
      for k = 1, #toks do
        local t = toks[k]
        if t.type == "kw" then
          local w = t.v
          local top = stack[#stack]
          if w == "if" then
            stack[#stack + 1] = { kind = "if", start = c, ends = {} }
          elseif w == "elseif" or w == "else" then
            if not top or top.kind ~= "if" then fail(line, "'" .. w .. "' without 'if'"); break end
            top.ends[#top.ends + 1] = c
            c = top.start
            if w == "else" then top.has_else = true end
          elseif w == "for" or w == "while" then
            stack[#stack + 1] = { kind = "loop", start = c, await_do = true }
          elseif w == "do" then
            if top and top.await_do then top.await_do = false
            else stack[#stack + 1] = { kind = "block", start = c } end
          elseif w == "function" then
            stack[#stack + 1] = { kind = "function", start = c }
          elseif w == "repeat" then
            stack[#stack + 1] = { kind = "loop", start = c, rep = true }
          elseif w == "end" or w == "until" then
            stack[#stack] = nil
            if not top then fail(line, "'" .. w .. "' without an open block"); break end
            if top.kind == "if" then
              local r = c
              for _, e in ipairs(top.ends) do r = join_into(r, e, line, "{% if %}") end
              if not top.has_else then r = join_into(r, top.start, line, "{% if %}") end
              c = r
            elseif top.kind == "loop" or top.kind == "function" then
              local j = join_into(top.start, c, line, top.kind == "loop" and "loop" or "function")
              if not cerr and context.key(j) ~= context.key(top.start) then
                fail(line, (top.kind == "loop" and "loop body" or "function body") ..
                  " ends in a different context: " .. context.describe(top.start) .. ", " .. context.describe(c))
              end
              c = top.start
            end
          end
        end
      end
      -- A trailing line comment would swallow the code after it.
      local last = match(node.text, "[^\n]*$")
      emit(line, find(last, "--", 1, true) and node.text .. "\n" or node.text)
    end
  end

  if not cerr and c.state ~= "text" then
    local last = nodes[#nodes]
    fail(last and last.line or 1, "ends in a non-text context: " .. context.describe(c))
  end

  -- The preamble: on line 1, before the first node's code.
  local locals, inits = {}, {}
  local nn = 0
  for name in pairs(names) do
    if sub(name, 1, #PREFIX) == PREFIX then
      return nil, format("%s:1: names starting with %s are reserved", label, PREFIX)
    end
    if name ~= "data" then
      nn = nn + 1
      locals[#locals + 1] = name
      inits[#inits + 1] = format("local %s = %sd.%s if %s == nil then %s = %sr.%s end", name, PREFIX, name,
        name, name, PREFIX, name)
    end
  end
  if nn > 150 then return nil, format("%s:1: too many distinct names (%d > 150)", label, nn) end
  local head = {}
  head[#head + 1] = "local " .. PREFIX .. "raw, " .. PREFIX .. "EMPTY"
  for i = 1, #pipes do head[#head + 1] = ", " .. PREFIX .. "e" .. i end
  head[#head + 1] = ", " .. PREFIX .. "type = ... return function(data, " .. PREFIX .. "r, " .. PREFIX .. "b) local " ..
    PREFIX .. "d = " .. PREFIX .. "type(data) == 'table' and data or " .. PREFIX .. "EMPTY "
  local source = concat(head) .. concat(inits, " ") .. " " .. concat(body) .. "\nend"
  if cerr then return nil, cerr end
  local chunk, lerr = load(source, "=" .. label, "t", env)
  if not chunk then return nil, lerr end
  local escape = require "lowbit.stencil.escape"
  local args = { escape.raw, EMPTY }
  for i = 1, #pipes do args[#args + 1] = M.pipeline(pipes[i]) end
  args[#args + 1] = type
  local fn = chunk(unpack(args))
  return { fn = fn, exprs = exprs, source = source }
end

--- The function that escapes a value through the stages of a pipeline.
function M.pipeline(stages)
  local escape = require "lowbit.stencil.escape"
  local S, stringify, jsval = escape.stages, escape.stringify, escape.jsval
  if stages[1] == "jsval" then
    local d = stages[2] and S[stages[2]]
    if not d then return jsval end
    return function(v) return d(jsval(v)) end
  end
  if #stages == 1 and stages[1] == "html" then
    local html, type_ = escape.html, type
    return function(v)
      if type_(v) == "string" then return html(v) end
      local s, t = stringify(v)
      if t == "html" then return s end
      return html(s)
    end
  end
  local s1, s2, s3 = S[stages[1]], stages[2] and S[stages[2]], stages[3] and S[stages[3]]
  if not s2 then
    return function(v) local s, t = stringify(v); return s1(s, t) end
  elseif not s3 then
    return function(v) local s, t = stringify(v); return s2(s1(s, t)) end
  end
  return function(v) local s, t = stringify(v); return s3(s2(s1(s, t))) end
end

return M
