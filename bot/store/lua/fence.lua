-- A record's execution claim is a hash fence:<id> {token, owner, expires_at}; it never expires,
-- so its token only grows. A write carrying a token ('' for none) older than the current one is
-- refused with 'fenced:<current token>:<current owner>' and writes nothing.
local function fence_refusal(fence_key, token)
  if token == '' then return nil end
  local cur = redis.call('HMGET', fence_key, 'token', 'owner')
  if cur[1] and tonumber(cur[1]) > tonumber(token) then
    return 'fenced:' .. cur[1] .. ':' .. (cur[2] or '')
  end
  return nil
end
