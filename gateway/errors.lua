-- errors.lua: the one place where the gateway maps errors onto the public envelope
--   {"detail": {"error": "<code>", "message": "<text>", ...}}
-- render.py inlines this file into envoy.yaml after a generated BODY_RULES table:
--   BODY_RULES = {{"<verb>", "<Lua pattern of the path>", {["<json key>"] = kind}}}
-- where kind is string, integer, number, boolean, list, object or any.
--
-- Request:  rejects body keys the RPC does not have (the transcoder drops them
--           silently) and lists or objects given for scalars: 422 validation_error.
-- Response: a service's x-http-status / x-error-envelope metadata becomes the status
--           and body; the transcoder's own 400s become 400 malformed_request or 422
--           validation_error; anything else that is an error without an envelope gets
--           one. Internal headers never reach the client.

local ARROW = " \226\134\146 " -- " → " (U+2192) in UTF-8
local INTERNAL = {
  "x-http-status", "x-error-envelope", "grpc-status", "grpc-message",
  "grpc-status-details-bin", "grpc-accept-encoding",
}
local PASSED = {"location", "set-cookie", "idempotent-replayed", "retry-after"}
local LABELS = {
  TYPE_STRING = "string", TYPE_BYTES = "string", TYPE_ENUM = "string",
  TYPE_BOOL = "boolean", TYPE_DOUBLE = "number", TYPE_FLOAT = "number",
}
local UNAVAILABLE = "The service is temporarily unavailable."
-- gRPC status without an envelope (a service bug): status, code, message.
local BY_GRPC = {
  [3] = {422, "validation_error", "The request is invalid."},
  [4] = {503, "service_unavailable", UNAVAILABLE},
  [5] = {404, "not_found", "Not found."},
  [7] = {403, "forbidden", "This action is not allowed."},
  -- Without an envelope this is gRPC's own limit (metadata or message too large),
  -- not the rate limit, which always sends one.
  [8] = {400, "malformed_request", "The request's headers or URL are too large."},
  [12] = {404, "not_found", "Not found."}, -- also what Envoy tells gRPC callers
  [14] = {503, "service_unavailable", UNAVAILABLE},
  [16] = {401, "authentication_required", "Authentication required."},
}

local function json_string(s)
  local escaped = s:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end)
  return '"' .. escaped .. '"'
end

local function envelope(code, message, request_id)
  local extra = ""
  if request_id then
    extra = ',"request_id":' .. json_string(request_id)
  end
  return '{"detail":{"error":' .. json_string(code) .. ',"message":'
    .. json_string(message) .. extra .. "}}"
end

local function label(kind) -- TYPE_INT32 (the transcoder's words) or integer (ours)
  return LABELS[kind] or (kind:find("INT", 1, true) and "integer") or kind
end

-- A small scanner for the top level of a JSON object: returns a list of
-- {raw key, kind of value} or nil when the text is not one complete object (then
-- the transcoder reports the syntax error itself).
local function skip_ws(s, i)
  return s:find("[^ \t\r\n]", i) or #s + 1
end

local function scan_string(s, i) -- s[i] is '"'; returns the index after the string
  local j = i + 1
  while true do
    local k = s:find('["\\]', j)
    if not k then return nil end
    if s:byte(k) == 34 then return k + 1 end
    j = k + 2
  end
end

local CLOSE = {["{"] = "}", ["["] = "]"}

local function scan_value(s, i) -- returns the index after the value and its kind
  local c = s:sub(i, i)
  if c == '"' then return scan_string(s, i), "string" end
  if CLOSE[c] then
    local stack, j = {}, i
    while true do
      local k = s:find('[][{}"]', j)
      if not k then return nil end
      local ch = s:sub(k, k)
      if ch == '"' then
        j = scan_string(s, k)
        if not j then return nil end
      else
        if CLOSE[ch] then
          stack[#stack + 1] = CLOSE[ch]
        elseif table.remove(stack) ~= ch then
          return nil
        end
        j = k + 1
        if #stack == 0 then return j, c == "{" and "object" or "list" end
      end
    end
  end
  local k = s:find("[,}%]%s]", i) or #s + 1
  if k == i then return nil end
  local word = s:sub(i, k - 1)
  if word == "null" then return k, "null" end
  if word == "true" or word == "false" then return k, "boolean" end
  local n = tonumber(word)
  if n and n == math.floor(n) and n == n and n ~= math.huge and n ~= -math.huge then
    return k, "integer" -- 5, 5.0 and 1e2 are integers; 2.5 is not
  end
  return k, "number"
end

-- Whether a JSON value of `kind` may stand where the RPC has a field of `expected`.
-- Types are strict, as the contract says: "5" is not an integer, 5 is not a string.
local function fits(expected, kind)
  return expected == "any" or kind == "null" or kind == expected
    or (expected == "number" and kind == "integer")
end

local function object_members(s)
  local i = skip_ws(s, 1)
  if s:sub(i, i) ~= "{" then return nil end
  local members = {}
  i = skip_ws(s, i + 1)
  if s:sub(i, i) == "}" then return skip_ws(s, i + 1) > #s and members or nil end
  while s:sub(i, i) == '"' do
    local j = scan_string(s, i)
    if not j then return nil end
    local key = s:sub(i + 1, j - 2)
    i = skip_ws(s, j)
    if s:sub(i, i) ~= ":" then return nil end
    local k, kind = scan_value(s, skip_ws(s, i + 1))
    if not k then return nil end
    members[#members + 1] = {key, kind}
    i = skip_ws(s, k)
    if s:sub(i, i) == "}" then return skip_ws(s, i + 1) > #s and members or nil end
    if s:sub(i, i) ~= "," then return nil end
    i = skip_ws(s, i + 1)
  end
  return nil
end

local ESCAPES = {b = "\b", f = "\f", n = "\n", r = "\r", t = "\t"}

local function utf8_char(n)
  if n < 0x80 then return string.char(n) end
  if n < 0x800 then return string.char(0xC0 + n / 64, 0x80 + n % 64) end
  if n >= 0xD800 and n < 0xE000 then n = 0xFFFD end -- lone surrogate half
  return string.char(0xE0 + n / 4096, 0x80 + n / 64 % 64, 0x80 + n % 64)
end

local function decode_string(raw) -- the contents of a JSON string, unescaped
  local out, i = {}, 1
  while true do
    local j = raw:find("\\", i, true)
    if not j then break end
    local c = raw:sub(j + 1, j + 1)
    out[#out + 1] = raw:sub(i, j - 1)
    if c == "u" then
      out[#out + 1] = utf8_char(tonumber(raw:sub(j + 2, j + 5), 16) or 0xFFFD)
      i = j + 6
    else
      out[#out + 1] = ESCAPES[c] or c
      i = j + 2
    end
  end
  out[#out + 1] = raw:sub(i)
  return table.concat(out)
end

-- The first problem with a body's top-level keys as (status, code, message), or nil.
-- What does not start like an object is left to the transcoder, which tells "not
-- JSON" from "JSON but not an object"; it would accept `{"a": 1,}`, the gateway not.
local function body_problem(body, fields)
  local members = object_members(body)
  if not members then
    if body:match("^%s*{") then
      return 400, "malformed_request", "The body is not valid JSON."
    end
    return nil
  end
  for _, member in ipairs(members) do
    local key, kind = decode_string(member[1]), member[2]
    local expected = fields[key]
    if not expected then
      return 422, "validation_error", "body" .. ARROW .. key .. ": unknown field"
    end
    if not fits(expected, kind) then
      local message = "body" .. ARROW .. key .. ": Input should be a valid "
      return 422, "validation_error", message .. label(expected)
    end
  end
  return nil
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local request_id = headers:get("x-request-id") or ""
  local method = headers:get(":method")
  local meta = handle:streamInfo():dynamicMetadata()
  meta:set("tollgate", "request_id", request_id)
  meta:set("tollgate", "method", method)
  -- gRPC's own request headers are the gateway's to set, never a client's: a
  -- client's grpc-timeout would become the services' deadline.
  local own = {}
  for name, _ in pairs(headers) do
    if name:sub(1, 5) == "grpc-" then own[#own + 1] = name end
  end
  for _, name in ipairs(own) do headers:remove(name) end
  local full = headers:get(":path") or ""
  local path = full:gsub("%?.*", "")
  -- No /api/ route takes query parameters; left in, the transcoder would bind them
  -- to request fields (?job_id= would override the job id of the path).
  if path:sub(1, 5) == "/api/" and path ~= full then
    headers:replace(":path", path)
  end
  for _, rule in ipairs(BODY_RULES) do
    if rule[1] == method and path:match(rule[2]) then
      local body = handle:body()
      if not body or body:length() == 0 then -- nothing is not a JSON object
        handle:respond({[":status"] = "400"}, "The body is empty; send a JSON object.")
      else
        local status, code, message = body_problem(body:getBytes(0, body:length()),
          rule[3])
        if status == 400 then -- local_reply_config wraps every 400 as malformed_request
          handle:respond({[":status"] = "400"}, message)
        elseif status then
          handle:respond({[":status"] = tostring(status),
            ["content-type"] = "application/json"}, envelope(code, message))
        end
      end
      return
    end
  end
end

-- The public form of an error the transcoder or Envoy produced itself. `message` is
-- the text of a local reply (local_reply_config already wrapped it, with code
-- malformed_request for every 400).
local function gateway_error(status, message, request_id)
  if status == 400 then
    if message:find("Root element must be a message", 1, true) then
      return 400, envelope("malformed_request", "The body must be a JSON object.")
    end
    if message:find("\n", 1, true) then -- JSON syntax errors quote the input
      return 400, envelope("malformed_request", "The body is not valid JSON.")
    end
    local loc, kind = message:match(
      "^([%w_.%[%]]+): invalid value .* for type (%u[%u%d_]+)$")
    if loc then -- "amount: invalid value 2.5 for type TYPE_INT32"
      return 422, envelope("validation_error",
        "body" .. ARROW .. loc .. ": Input should be a valid " .. label(kind))
    end
    local where, problem = message:match("^([%w_.%[%]]*): (.+)$")
    if where then -- ": Proto field is not repeating, cannot start list." and the like
      local field = where ~= "" and ARROW .. where or ""
      return 422, envelope("validation_error", "body" .. field .. ": " .. problem)
    end
    return 400, envelope("malformed_request", message)
  end
  if status == 404 or status == 405 then
    return 404, envelope("not_found", "Not found.")
  end
  if status == 413 then
    return 413, envelope("payload_too_large", "The body is too large.")
  end
  if status == 501 then -- a Transfer-Encoding Envoy does not speak, and the like
    return 400, envelope("malformed_request", "The request could not be read.")
  end
  if status == 503 or status == 504 then
    return 503, envelope("service_unavailable", UNAVAILABLE)
  end
  if status >= 500 then
    return 500, envelope("internal_error", "Internal server error.", request_id)
  end
  -- Anything else Envoy refused (a request its HTTP parser could not read) is, for
  -- the client, a request that is not well formed.
  return status, envelope("malformed_request", message ~= "" and message
    or "The request could not be read.")
end

local function shape_response(handle, body)
  local headers, trailers = handle:headers(), handle:trailers()
  local meta = {}
  for _, name in ipairs(INTERNAL) do
    meta[name] = headers:get(name) or (trailers and trailers:get(name))
    headers:remove(name)
    if trailers then trailers:remove(name) end
  end
  for _, name in ipairs(trailers and PASSED or {}) do -- metadata sent as trailers
    for i = 0, trailers:getNumValues(name) - 1 do
      headers:add(name, trailers:getAtIndex(name, i))
    end
    trailers:remove(name)
  end
  local status = tonumber(headers:get(":status")) or 500
  local wanted = tonumber(meta["x-http-status"] or "")
  local text = body:getBytes(0, body:length())
  -- convert_grpc_status turned an error status into {"code": N, "message": ...}
  local converted = status >= 400 and text:match('^{"code":(%d+)')
  local grpc = tonumber(meta["grpc-status"] or converted or "")
  local stored = handle:streamInfo():dynamicMetadata():get("tollgate") or {}
  local request_id = stored.request_id or ""
  local new_status, new_body = nil, nil

  if meta["x-error-envelope"] then
    new_status, new_body = wanted or status, meta["x-error-envelope"]
  elseif grpc and grpc ~= 0 then
    local known = BY_GRPC[grpc]
    if known then
      new_status, new_body = known[1], envelope(known[2], known[3])
    else
      new_status = 500
      new_body = envelope("internal_error", "Internal server error.", request_id)
    end
  elseif wanted then
    headers:replace(":status", tostring(wanted)) -- success: only the status changes
    return
  elseif status >= 400 then
    local wrapped = text:match(
      '^{"detail":{"error":"malformed_request","message":"(.*)"}}')
    if text:match('^%s*{%s*"detail"%s*:') and not wrapped then
      return -- already in the envelope (a local reply, or 422 from envoy_on_request)
    end
    local message = wrapped and decode_string(wrapped) or text
    new_status, new_body = gateway_error(status, message, request_id)
  else
    return
  end
  headers:replace(":status", tostring(new_status))
  headers:replace("content-type", "application/json")
  body:setBytes(new_body)
end

function envoy_on_response(handle)
  local body = handle:body(true) -- waits for the whole body; fetch headers after it
  shape_response(handle, body)
  local stored = handle:streamInfo():dynamicMetadata():get("tollgate") or {}
  if stored.method == "HEAD" then -- a HEAD response has headers only (RFC 9110 9.3.2)
    body:setBytes("")
  end
end
