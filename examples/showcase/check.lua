-- Input checks shared by the forms, the API and the WebSocket: each returns
-- the clean value, or nil and a sentence for the user (and a JSON pointer
-- to the field, for problem+json).
local cjson = require "cjson.safe"

local M = {}

M.NAME_MAX, M.TEXT_MAX = 32, 500
M.STEPS_MIN, M.STEPS_MAX = 1, 20

-- Characters in a UTF-8 string, or nil when it is not valid UTF-8.
local function utf8_len(s)
  local n, i, len = 0, 1, #s
  while i <= len do
    local c = s:byte(i)
    local extra = c < 0x80 and 0 or c >= 0xC2 and c < 0xE0 and 1 or c >= 0xE0 and c < 0xF0 and 2
      or c >= 0xF0 and c < 0xF5 and 3 or nil
    if not extra then return nil end
    for k = i + 1, i + extra do
      local b = s:byte(k)
      if not b or b < 0x80 or b > 0xBF then return nil end
    end
    i, n = i + extra + 1, n + 1
  end
  return n
end

-- A trimmed string of 1..max characters; `multiline` lets \n and \t through.
local function text_field(v, field, max, multiline)
  if type(v) ~= "string" then return nil, field .. " must be a string", "/" .. field end
  v = v:match("^%s*(.-)%s*$")
  local n = utf8_len(v)
  if not n then return nil, field .. " must be valid UTF-8", "/" .. field end
  if n == 0 or n > max then
    return nil, ("%s must be 1 to %d characters"):format(field, max), "/" .. field
  end
  local bad = multiline and "[%z\1-\8\11-\31\127]" or "[%z\1-\31\127]"
  if v:find(bad) then return nil, field .. " must not hold control characters", "/" .. field end
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

--- A JSON object from a request body: the table, or nil, reason.
function M.json_object(body)
  local doc, err = cjson.decode(body)
  if doc == nil then return nil, "the body is not JSON (" .. tostring(err) .. ")" end
  if type(doc) ~= "table" or doc[1] ~= nil then return nil, "the body must be a JSON object" end
  return doc
end

return M
