-- Input checks shared by the forms, the API and the WebSocket: each returns
-- the clean value, or nil and a sentence for the user (and a JSON pointer
-- to the field, for problem+json).
local cjson = require "cjson.safe"

local M = {}

M.NAME_MAX, M.TEXT_MAX = 32, 500
M.STEPS_MIN, M.STEPS_MAX = 1, 20

-- The code points of a UTF-8 string, or nil when it is not valid UTF-8
-- (overlong forms, surrogates and values past U+10FFFF are not).
local function code_points(s)
  local cps, i, len = {}, 1, #s
  while i <= len do
    local c = s:byte(i)
    local extra, cp, min
    if c < 0x80 then extra, cp, min = 0, c, 0
    elseif c >= 0xC2 and c < 0xE0 then extra, cp, min = 1, c - 0xC0, 0x80
    elseif c >= 0xE0 and c < 0xF0 then extra, cp, min = 2, c - 0xE0, 0x800
    elseif c >= 0xF0 and c < 0xF5 then extra, cp, min = 3, c - 0xF0, 0x10000
    else return nil end
    for k = i + 1, i + extra do
      local b = s:byte(k)
      if not b or b < 0x80 or b > 0xBF then return nil end
      cp = cp * 64 + (b - 0x80)
    end
    if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return nil end
    cps[#cps + 1] = cp
    i = i + extra + 1
  end
  return cps
end

-- Characters that reorder or hide text: bidi embeddings, overrides and
-- isolates (U+202A-202E, U+2066-2069) let one message or name turn the
-- text shown after it around ("exe.txt" spelled backwards).
local function reorders(cp) return (cp >= 0x202A and cp <= 0x202E) or (cp >= 0x2066 and cp <= 0x2069) end
-- In a name, also what cannot be seen: other bidi marks, zero-width
-- characters, the soft hyphen and the spaces that %s does not trim, so that
-- a name is never blank nor a look-alike of another with hidden marks.
local function invisible(cp)
  return reorders(cp) or cp == 0xA0 or cp == 0xAD or cp == 0x61C or cp == 0x1680 or cp == 0x180E
    or (cp >= 0x2000 and cp <= 0x200F) or (cp >= 0x2028 and cp <= 0x202F) or (cp >= 0x205F and cp <= 0x206F)
    or cp == 0x3000 or cp == 0xFEFF
end

-- A trimmed string of 1..max characters. A name (`multiline` false) is one
-- line of visible characters; a text lets \n and \t through.
local function text_field(v, field, max, multiline)
  if type(v) ~= "string" then return nil, field .. " must be a string", "/" .. field end
  v = v:match("^%s*(.-)%s*$")
  local cps = code_points(v)
  if not cps then return nil, field .. " must be valid UTF-8", "/" .. field end
  if #cps == 0 or #cps > max then
    return nil, ("%s must be 1 to %d characters"):format(field, max), "/" .. field
  end
  local bad = multiline and "[%z\1-\8\11-\31\127]" or "[%z\1-\31\127]"
  if v:find(bad) then return nil, field .. " must not hold control characters", "/" .. field end
  local hidden = multiline and reorders or invisible
  for _, cp in ipairs(cps) do
    if hidden(cp) then
      return nil, ("%s must not hold invisible or direction-changing characters (U+%04X)"):format(field, cp),
        "/" .. field
    end
  end
  return v
end

--- A chat message { name, text } from a decoded JSON object or a form:
--- the clean { name, text }, or nil, reason, pointer.
function M.message(t)
  local name, why, ptr = text_field(t.name, "name", M.NAME_MAX)
  if not name then return nil, why, ptr end
  local text
  text, why, ptr = text_field(t.text, "text", M.TEXT_MAX, true)
  if not text then return nil, why, ptr end
  return { name = name, text = text }
end

--- A job's step count: an integer number in 1..20.
function M.steps(v)
  if type(v) ~= "number" or v ~= math.floor(v) or v < M.STEPS_MIN or v > M.STEPS_MAX then
    return nil, ("steps must be a whole number from %d to %d"):format(M.STEPS_MIN, M.STEPS_MAX), "/steps"
  end
  return v
end

--- Whether request r comes from a page of this site (or from a tool, which
--- sends neither header): browsers say where a request comes from in
--- Sec-Fetch-Site and Origin. Without this check another site's page could
--- post chat messages and jobs in its visitors' browsers: a form, or a
--- fetch() with a text/plain body, needs no permission to be sent.
function M.same_origin(r)
  local site = r.headers:get("Sec-Fetch-Site")
  if site then return site == "same-origin" or site == "none" end
  local origin = r.headers:get("Origin")
  return origin == nil or origin == "http://" .. r.host or origin == "https://" .. r.host
end

--- A JSON object from a request body: the table, or nil, reason.
function M.json_object(body)
  local doc, err = cjson.decode(body)
  if doc == nil then return nil, "the body is not JSON (" .. tostring(err) .. ")" end
  if type(doc) ~= "table" or doc[1] ~= nil then return nil, "the body must be a JSON object" end
  return doc
end

return M
